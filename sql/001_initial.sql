-- 001_initial: accounts, copy rules, leader fills and follower orders.
--
-- Applied by journal_migrate() inside one transaction together with its schema_migrations row, so
-- this file must not contain BEGIN/COMMIT (nor anything that cannot run in a transaction).
--
-- Partitioning by month comes later. To keep that step cheap, every row already carries the
-- column a partition key would use and the identities used for dedupe do not depend on the time
-- a row was written:
--   * leader_fills.event_time is the exchange's trade time, the same whether the fill arrives over
--     the stream or from a REST backfill, so UNIQUE (account, symbol, trade_id) can become
--     UNIQUE (account, symbol, trade_id, event_time) without losing the dedupe (invariant 4);
--   * follower_orders.leader_event_time copies it, so follower orders can be partitioned by the
--     same month and UNIQUE (client_order_id) can become (client_order_id, leader_event_time);
--     the leader_fill_id foreign key then becomes (leader_fill_id, leader_event_time).

CREATE TABLE accounts (
    name        text PRIMARY KEY CHECK (name <> ''),
    exchange    text NOT NULL CHECK (exchange <> ''),  -- binance-usdm, bybit-linear, sim, ...
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE copy_rules (
    id          text PRIMARY KEY CHECK (id <> ''),
    leader      text NOT NULL REFERENCES accounts (name),
    follower    text NOT NULL REFERENCES accounts (name),
    sizing      text NOT NULL CHECK (sizing <> ''),    -- multiplier, fixed_notional, ...
    params      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(params) = 'object'),
    -- close_only is set by the loss stops and survives config syncs until an operator resets it.
    status      text NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'paused', 'close_only', 'removed')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (leader <> follower)
);
-- "Which rules copy this leader?"
CREATE INDEX copy_rules_active_by_leader ON copy_rules (leader) WHERE status = 'active';

-- Decimals are unconstrained numeric: exact, and they keep the exchange's scale ('0.013' stays
-- 0.013). "x < 'Infinity'" also refuses NaN, which sorts above Infinity in PostgreSQL.
CREATE TABLE leader_fills (
    id          bigserial PRIMARY KEY,
    account     text NOT NULL REFERENCES accounts (name),
    symbol      text NOT NULL CHECK (symbol <> ''),
    trade_id    bigint NOT NULL,                       -- Binance trade ids are per symbol
    order_id    bigint NOT NULL,
    side        text NOT NULL CHECK (side IN ('BUY', 'SELL')),
    qty         numeric NOT NULL CHECK (qty > 0 AND qty < 'Infinity'),
    price       numeric NOT NULL CHECK (price > 0 AND price < 'Infinity'),
    event_time  timestamptz NOT NULL,                  -- exchange trade time (see the top)
    received_at timestamptz NOT NULL DEFAULT now(),
    -- The durable half of "a leader fill is processed once" (invariant 4); also serves
    -- "last trade id seen per account and symbol" for the backfill after a reconnect.
    CONSTRAINT leader_fills_identity UNIQUE (account, symbol, trade_id)
);
CREATE INDEX leader_fills_by_account ON leader_fills (account, received_at);

-- One row per intent, written before the order is sent (invariant 2) and updated write-behind
-- with the outcome. Only rows newly inserted by the journal's fill statement are ever sent.
CREATE TABLE follower_orders (
    id                  bigserial PRIMARY KEY,
    client_order_id     text NOT NULL CHECK (client_order_id ~ '^[A-Za-z0-9_-]{1,36}$'),
    leader_fill_id      bigint NOT NULL REFERENCES leader_fills (id),
    leader_event_time   timestamptz NOT NULL,          -- future partition key (see the top)
    rule_id             text NOT NULL REFERENCES copy_rules (id),
    follower            text NOT NULL REFERENCES accounts (name),
    symbol              text NOT NULL CHECK (symbol <> ''),
    side                text NOT NULL CHECK (side IN ('BUY', 'SELL')),
    qty                 numeric NOT NULL CHECK (qty >= 0 AND qty < 'Infinity'),
    reduce_only         boolean NOT NULL DEFAULT false,
    order_type          text NOT NULL CHECK (order_type <> ''),
    status              text NOT NULL DEFAULT 'intent'
                        CHECK (status IN ('intent', 'sent', 'acked', 'filled', 'partially_filled',
                                          'rejected', 'skipped', 'unknown', 'reconciled',
                                          'canceled', 'expired')),
    skip_reason         text,
    exchange_order_id   bigint,
    executed_qty        numeric CHECK (executed_qty >= 0 AND executed_qty < 'Infinity'),
    avg_price           numeric CHECK (avg_price >= 0 AND avg_price < 'Infinity'),
    error_code          integer,
    error_msg           text,
    -- When each state was first reached (NULL: never).
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
    CONSTRAINT follower_orders_client_order_id UNIQUE (client_order_id),
    -- A skip always has a reason, and only skips have one.
    CONSTRAINT follower_orders_skip_reason CHECK ((status = 'skipped') = (skip_reason IS NOT NULL))
);
-- "This follower's open (or failed, ...) orders, oldest first": reconcile at start-up, dashboards.
CREATE INDEX follower_orders_by_follower ON follower_orders (follower, status, intent_at);
-- Joins from a fill to its copies (and the foreign key's own lookups).
CREATE INDEX follower_orders_by_fill ON follower_orders (leader_fill_id);

-- The order in which a follower order's status may move. An update whose status ranks lower than
-- the stored one is ignored, so a late 'sent' never overwrites 'filled'. Final states share the
-- top rank: none of them replaces another. 'unknown' (no answer to the request) ranks below
-- 'acked' because querying the order by its client id may then find it open.
CREATE FUNCTION follower_order_status_rank(s text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT CASE s
        WHEN 'intent' THEN 0
        WHEN 'sent' THEN 1
        WHEN 'unknown' THEN 2
        WHEN 'acked' THEN 3
        WHEN 'partially_filled' THEN 4
        ELSE 5  -- filled, rejected, skipped, canceled, expired, reconciled
    END
$$;
