-- 003_text_exchange_ids: exchange trade and order ids as text.
--
-- Bybit's execId and orderId are UUIDs; Binance's are integers. Both are kept as the exchange
-- wrote them. Binance's trade id also orders the fills of one symbol: it moves to trade_seq, which
-- feeds the start-up high-water mark (a text max() would compare "9" > "10"). NULL for exchanges
-- whose ids carry no order (Bybit): their fills are deduped by the unique key alone.
ALTER TABLE leader_fills
    ALTER COLUMN trade_id TYPE text USING trade_id::text,
    ALTER COLUMN order_id TYPE text USING order_id::text,
    ALTER COLUMN order_id DROP NOT NULL,
    ADD COLUMN trade_seq bigint CHECK (trade_seq > 0);
UPDATE leader_fills SET trade_seq = trade_id::bigint;
ALTER TABLE leader_fills ADD CONSTRAINT leader_fills_trade_id_nonempty CHECK (trade_id <> '');

ALTER TABLE follower_orders
    ALTER COLUMN exchange_order_id TYPE text USING exchange_order_id::text;
