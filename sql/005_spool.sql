-- 005_spool: how far each journal spool has been replayed into this database.
--
-- When PostgreSQL is down or slow the journal appends to a local spool (daemon/spool.h) and
-- replays it later. Every replayed batch moves its spool's row here in the same transaction as the
-- batch itself, so a crash between that commit and the spool's own acknowledgement never applies
-- a record twice: a new session reads seq back and acks the spool up to it before replaying.
-- spool_id is a random id kept in the spool directory (several daemons may share one database,
-- and a spool directory that is wiped starts its sequence numbers again under a new id).
CREATE TABLE spool_applied (
    spool_id    text PRIMARY KEY CHECK (spool_id ~ '^[0-9a-f]{32}$'),
    seq         bigint NOT NULL CHECK (seq >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
