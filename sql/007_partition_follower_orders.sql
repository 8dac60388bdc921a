-- 007_partition_follower_orders: follower orders partitioned by month, and indexes that follow
-- the real queries.
--
-- Applied by journal_migrate() in one transaction: the old table is renamed, a partitioned one
-- with the same columns (same order, same defaults, same checks) takes its name, the rows are
-- copied, the old table is dropped and the keys and indexes are built on the new one (after the
-- copy: cheaper than maintaining them row by row). The id sequence moves over, so ids go on.
--
-- Constraint names are the old ones (explicit: PostgreSQL would pick new ones while the old table
-- still exists), so errors read as before.
--
-- Partition key: leader_event_time, the leader fill's exchange trade time (see 001's header). It
-- is the same whether the fill came over the stream or from a REST backfill, and whatever the
-- time the intent was written, so:
--   * UNIQUE (client_order_id) becomes UNIQUE (client_order_id, leader_event_time) (a unique key
--     on a partitioned table must contain the partition key) and still refuses a duplicate
--     intent: the client order id is deterministic per (fill, rule), and one fill always carries
--     the same leader_event_time, so a second write of the same intent lands in the same
--     partition and hits the same key. (Two different fills cannot produce one client order id.)
--   * the primary key becomes (id, leader_event_time); ids still come from one sequence.
-- intent_at would not do: a replayed spool or a restart writes the same intent at another time.
--
-- Partitions: follower_orders_YYYYMM for [first of the month, first of the next) in UTC, plus
-- follower_orders_default, so that an insert never fails for want of a partition. Here: every
-- month the existing rows touch, and this month and the next three. After that
-- ensure_follower_order_partitions() keeps three months ahead (the daemon calls it at start-up
-- and once a day), so the default partition only ever sees fills older than the first monthly
-- partition (a backfill far into the past) or with a nonsensical time.
--
-- leader_fills stays one table: it holds one row per leader fill, a small fraction of the
-- follower orders (one per fill and rule), its unique key (account, symbol, trade_id) is what
-- SQL_FILL's ON CONFLICT and the intents' lookup use, and partitioning it would force event_time
-- into that key and into the foreign key from follower_orders for little gain. The foreign key
-- follower_orders (leader_fill_id) -> leader_fills (id) stays as it was (a partitioned table may
-- reference a plain one).

-- ---- the partitioned table --------------------------------------------------------------------

ALTER TABLE follower_orders RENAME TO follower_orders_unpartitioned;
-- The sequence belongs to the old table's id column: keep it when that table is dropped.
ALTER SEQUENCE follower_orders_id_seq OWNED BY NONE;

CREATE TABLE follower_orders (
    id                  bigint NOT NULL DEFAULT nextval('follower_orders_id_seq'),
    client_order_id     text NOT NULL
                        CONSTRAINT follower_orders_client_order_id_check
                        CHECK (client_order_id ~ '^[A-Za-z0-9_-]{1,36}$'),
    leader_fill_id      bigint NOT NULL,
    leader_event_time   timestamptz NOT NULL,          -- the partition key (see the top)
    rule_id             text NOT NULL,
    follower            text NOT NULL,
    symbol              text NOT NULL CONSTRAINT follower_orders_symbol_check CHECK (symbol <> ''),
    side                text NOT NULL
                        CONSTRAINT follower_orders_side_check CHECK (side IN ('BUY', 'SELL')),
    qty                 numeric NOT NULL
                        CONSTRAINT follower_orders_qty_check CHECK (qty >= 0 AND qty < 'Infinity'),
    reduce_only         boolean NOT NULL DEFAULT false,
    order_type          text NOT NULL
                        CONSTRAINT follower_orders_order_type_check CHECK (order_type <> ''),
    status              text NOT NULL DEFAULT 'intent'
                        CONSTRAINT follower_orders_status_check CHECK (status IN ('intent', 'sent', 'acked', 'filled', 'partially_filled',
                                          'rejected', 'skipped', 'unknown', 'reconciled',
                                          'canceled', 'expired')),
    skip_reason         text,
    exchange_order_id   text,
    executed_qty        numeric CONSTRAINT follower_orders_executed_qty_check
                        CHECK (executed_qty >= 0 AND executed_qty < 'Infinity'),
    avg_price           numeric CONSTRAINT follower_orders_avg_price_check
                        CHECK (avg_price >= 0 AND avg_price < 'Infinity'),
    error_code          integer,
    error_msg           text,
    intent_at           timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz,
    acked_at            timestamptz,
    partially_filled_at timestamptz,
    filled_at           timestamptz,
    rejected_at         timestamptz,
    skipped_at          timestamptz,
    unknown_at          timestamptz,
    reconciled_at       timestamptz,
    canceled_at         timestamptz,
    expired_at          timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    position_side       text CONSTRAINT follower_orders_position_side_check
                        CHECK (position_side IN ('BOTH', 'LONG', 'SHORT')),
    limit_price         numeric CONSTRAINT follower_orders_limit_price_check
                        CHECK (limit_price > 0 AND limit_price < 'Infinity'),
    -- A skip always has a reason, and only skips have one.
    CONSTRAINT follower_orders_skip_reason CHECK ((status = 'skipped') = (skip_reason IS NOT NULL))
) PARTITION BY RANGE (leader_event_time);

CREATE TABLE follower_orders_default PARTITION OF follower_orders DEFAULT;

-- Creates the partition of the month that contains `month` (UTC) unless it exists. Rows of that
-- month already in the default partition (possible only when partitions were not created ahead
-- in time) are moved into it: PostgreSQL refuses to create a partition while the default one
-- holds rows of its range. true when it created one.
CREATE FUNCTION create_follower_order_partition(month timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    parent regclass := 'follower_orders'::regclass;
    nsp text;
    lo timestamptz := date_trunc('month', month AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi timestamptz := (date_trunc('month', month AT TIME ZONE 'UTC') + interval '1 month')
                      AT TIME ZONE 'UTC';
    part text := 'follower_orders_' || to_char(month AT TIME ZONE 'UTC', 'YYYYMM');
    lo_lit text := to_char(lo AT TIME ZONE 'UTC', 'YYYY-MM-DD') || ' 00:00:00+00';
    hi_lit text := to_char(hi AT TIME ZONE 'UTC', 'YYYY-MM-DD') || ' 00:00:00+00';
    moved bigint;
BEGIN
    SELECT n.nspname INTO nsp FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = parent;
    IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = nsp AND c.relname = part) THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM follower_orders_default
                WHERE leader_event_time >= lo AND leader_event_time < hi) THEN
        -- A plain table with the parent's columns, filled from the default partition, then
        -- attached (attaching builds its indexes and checks its foreign keys).
        EXECUTE format('CREATE TABLE %I.%I (LIKE %I.follower_orders INCLUDING DEFAULTS'
                       ' INCLUDING CONSTRAINTS)', nsp, part, nsp);
        EXECUTE format('WITH m AS (DELETE FROM %I.follower_orders_default'
                       ' WHERE leader_event_time >= $1 AND leader_event_time < $2 RETURNING *)'
                       ' INSERT INTO %I.%I SELECT * FROM m', nsp, nsp, part) USING lo, hi;
        GET DIAGNOSTICS moved = ROW_COUNT;
        EXECUTE format('ALTER TABLE %I.follower_orders ATTACH PARTITION %I.%I'
                       ' FOR VALUES FROM (%L) TO (%L)', nsp, nsp, part, lo_lit, hi_lit);
        RAISE NOTICE 'follower_orders: % row(s) moved from the default partition into %',
                     moved, part;
    ELSE
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.follower_orders'
                       ' FOR VALUES FROM (%L) TO (%L)', nsp, part, nsp, lo_lit, hi_lit);
    END IF;
    RETURN true;
END
$$;

-- Keeps partitions ahead: this month (UTC) and the next months_ahead ones, each created when
-- missing. Idempotent; returns how many it created. Concurrent callers (several daemons) are
-- serialized by a transaction-level advisory lock, so they never race on the same CREATE TABLE.
-- Creating a partition briefly locks follower_orders (and scans the default partition, which is
-- small): the daemon calls this at start-up and once a day, and the partition it creates on a
-- given day is normally three months away.
CREATE FUNCTION ensure_follower_order_partitions(months_ahead integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    created integer := 0;
    this_month timestamptz := date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
BEGIN
    IF months_ahead IS NULL OR months_ahead < 0 OR months_ahead > 120 THEN
        RAISE EXCEPTION 'ensure_follower_order_partitions: months_ahead must be 0..120, not %',
                        months_ahead USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(7165535298129736050); -- any fixed key: "ctpartit"
    FOR i IN 0 .. months_ahead LOOP
        IF create_follower_order_partition(
               ((this_month AT TIME ZONE 'UTC') + make_interval(months => i)) AT TIME ZONE 'UTC') THEN
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END
$$;

-- Every month the existing rows touch, then this month and three ahead; then the rows.
SELECT create_follower_order_partition(m)
  FROM (SELECT DISTINCT date_trunc('month', leader_event_time AT TIME ZONE 'UTC')
                        AT TIME ZONE 'UTC' AS m
          FROM follower_orders_unpartitioned) months
 ORDER BY m;
SELECT ensure_follower_order_partitions(3);

INSERT INTO follower_orders SELECT * FROM follower_orders_unpartitioned;
DROP TABLE follower_orders_unpartitioned;
ALTER SEQUENCE follower_orders_id_seq OWNED BY follower_orders.id;

-- ---- keys and indexes on follower_orders (each one is created on every partition) --------------

ALTER TABLE follower_orders
    ADD CONSTRAINT follower_orders_pkey PRIMARY KEY (id, leader_event_time),
    -- The durable dedupe of intents (see the top): SQL_INTENTS' ON CONFLICT target. Also the
    -- result updates' lookup by client order id (its leading column), in every partition.
    ADD CONSTRAINT follower_orders_client_order_id UNIQUE (client_order_id, leader_event_time),
    ADD CONSTRAINT follower_orders_leader_fill_id_fkey
        FOREIGN KEY (leader_fill_id) REFERENCES leader_fills (id),
    ADD CONSTRAINT follower_orders_rule_id_fkey FOREIGN KEY (rule_id) REFERENCES copy_rules (id),
    ADD CONSTRAINT follower_orders_follower_fkey FOREIGN KEY (follower) REFERENCES accounts (name);

-- "This follower's open (or failed, ...) orders, oldest first": dashboards.
CREATE INDEX follower_orders_by_follower ON follower_orders (follower, status, intent_at);
-- "This follower's orders since T, in time order" (copytraderctl orders --follower X --since):
-- a merge of ordered index scans, one per partition, stopped by the LIMIT.
CREATE INDEX follower_orders_by_follower_time ON follower_orders (follower, intent_at, id);
-- Joins from a fill to its copies (copytraderctl explain) and the foreign key's own lookups.
CREATE INDEX follower_orders_by_fill ON follower_orders (leader_fill_id);
-- Start-up reconciliation reads every order without a final state, in id order.
CREATE INDEX follower_orders_open ON follower_orders (id)
    WHERE status IN ('intent', 'sent', 'unknown', 'acked', 'partially_filled');

-- ---- leader_fills: indexes for the start-up queries and the dashboards ------------------------

-- The identity also carries trade_seq, so the start-up high-water mark (max(trade_seq) per
-- account and symbol) is an index-only scan. ON CONFLICT (account, symbol, trade_id) still
-- infers it.
ALTER TABLE leader_fills
    DROP CONSTRAINT leader_fills_identity,
    ADD CONSTRAINT leader_fills_identity UNIQUE (account, symbol, trade_id) INCLUDE (trade_seq);
-- Per leader in time order, covering what copytraderctl status and the backfill start read
-- (last fill per leader, its trade id, times, count): index-only scans. Replaces 001's
-- (account, received_at), which no query used.
DROP INDEX leader_fills_by_account;
CREATE INDEX leader_fills_by_account ON leader_fills (account, event_time)
    INCLUDE (id, trade_id, received_at);
-- copytraderctl explain TRADE_ID (account and symbol optional).
CREATE INDEX leader_fills_by_trade_id ON leader_fills (trade_id);
