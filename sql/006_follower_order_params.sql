-- 006_follower_order_params: what it takes to send a journaled intent again after a restart.
--
-- Start-up reconciliation resends an intent the exchange confirms it never received (while it is
-- still fresh). side, qty, reduce_only and order_type were already here; a hedge-mode follower's
-- order also needs its position side, and a limit_ioc order its limit price. NULL in rows written
-- before this migration (such a hedge-mode order is looked up but never resent).
ALTER TABLE follower_orders
    ADD COLUMN position_side text CHECK (position_side IN ('BOTH', 'LONG', 'SHORT')),
    ADD COLUMN limit_price numeric CHECK (limit_price > 0 AND limit_price < 'Infinity');

-- Reconciliation reads every order without a final state at start-up.
CREATE INDEX follower_orders_open ON follower_orders (id)
    WHERE status IN ('intent', 'sent', 'unknown', 'acked', 'partially_filled');
