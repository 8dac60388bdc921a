-- An operator's pause (copytraderctl pause) is a switch of its own, kept across restarts:
-- copy_rules.status alone cannot tell it from a rule disabled in the config, which the config
-- sync sets and clears.
ALTER TABLE copy_rules ADD COLUMN operator_paused boolean NOT NULL DEFAULT false;
