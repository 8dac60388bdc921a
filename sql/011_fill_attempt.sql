-- 011_fill_attempt: which journal write inserted a leader fill and its intents.
--
-- Without a spool, a fill's write can commit and still come back as a lost connection or a
-- timeout (the commit's answer never arrived). The daemon then writes the same fill again, and
-- the unique keys make that a no-op: "not new". Before this column, the intents of that first,
-- committed write were never sent: nothing of them had gone out, yet the second write could not
-- tell its own committed first attempt from a fill an earlier run (or another attempt) had
-- journaled and maybe sent. Now each attempt carries a random 63-bit token (the copier's, the
-- same across the resubmissions of one decision); a write that finds the fill and intents with
-- its own token reports them as its own, to be sent now, exactly as if it had inserted them.
-- NULL: written by a spool replay or before this migration (never "own").
ALTER TABLE leader_fills ADD COLUMN attempt bigint;
ALTER TABLE follower_orders ADD COLUMN attempt bigint;
