-- 008_position_snapshots: positions as the exchange reported them at start-up ('exchange') and as
-- the daemon's position book tracked them ('book'), for drift checks and history.
--
-- Written write-behind by journal_record_positions (daemon/journal.h), batched like the results
-- and spooled like them while PostgreSQL is away. A batch may be applied twice (a connection lost
-- with it in flight is resent), so the primary key is the snapshot's identity and the insert
-- does nothing on a conflict.
CREATE TABLE position_snapshots (
    taken_at      timestamptz NOT NULL,
    account       text NOT NULL REFERENCES accounts (name),
    symbol        text NOT NULL CHECK (symbol <> ''),
    position_side text NOT NULL CHECK (position_side IN ('BOTH', 'LONG', 'SHORT')),
    -- Signed in one-way mode (BOTH: negative = short); exact, with the exchange's scale. The
    -- comparisons also refuse NaN, which sorts above Infinity in PostgreSQL.
    amount        numeric NOT NULL CHECK (amount > '-Infinity' AND amount < 'Infinity'),
    source        text NOT NULL CHECK (source IN ('exchange', 'book')),
    -- "Latest snapshot per account and symbol": the leading columns, newest last
    -- (SELECT DISTINCT ON (symbol, position_side) ... WHERE account = $1
    --  ORDER BY symbol, position_side, taken_at DESC).
    PRIMARY KEY (account, symbol, position_side, taken_at, source)
);
-- "History of an account" (WHERE account = $1 AND taken_at >= $2 ORDER BY taken_at).
CREATE INDEX position_snapshots_by_account_time ON position_snapshots (account, taken_at);
