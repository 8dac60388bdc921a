-- 010_deferred_decisions: copy decisions that wait for their follower's state, made durable.
--
-- After READY, followers' state loads in the background (daemon/copier_load.c). A leader fill
-- that a follower still loading must copy is journaled, past daemon.follower_state_wait_ms, with
-- the intents of the followers that have their state; each waiting rule's decision is deferred.
-- Its placeholder is a row here, inserted in the same transaction as the fill (only when the fill
-- is new there), in state 'pending'. It carries what the decision needs that cannot be recomputed
-- later: `input` (written and read by the copier; the fill as the stream gave it, the leader's
-- position before the fill as it was then, the leader's equity, when the fill arrived).
--
-- Resolved exactly once, by the journal write that records the decision: 'decided' in the same
-- transaction as the decision's intents (follower_orders; skipped ones included), or 'skipped'
-- with a reason when no decision is made (the rule was removed or disabled meanwhile; the
-- follower's state never came in within the send window: reason stale_signal, with its skipped
-- intent). A start-up reads the 'pending' rows and decides them once their follower is loaded.
CREATE TABLE deferred_decisions (
    id             bigserial PRIMARY KEY,
    leader_fill_id bigint NOT NULL REFERENCES leader_fills (id),
    account        text NOT NULL,                       -- the leader fill's identity
    symbol         text NOT NULL,
    trade_id       text NOT NULL,
    rule_id        text NOT NULL,
    follower       text NOT NULL,
    input          jsonb NOT NULL,
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'decided', 'skipped')),
    reason         text,                                -- why 'skipped'
    created_at     timestamptz NOT NULL DEFAULT now(),
    resolved_at    timestamptz,
    CONSTRAINT deferred_decisions_identity UNIQUE (account, symbol, trade_id, rule_id),
    CHECK ((status = 'pending') = (resolved_at IS NULL))
);
-- What a start-up reads: the few pending ones, in the order they were deferred.
CREATE INDEX deferred_decisions_pending ON deferred_decisions (id) WHERE status = 'pending';
