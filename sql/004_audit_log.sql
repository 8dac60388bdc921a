-- 004_audit_log: who changed what, when. Configuration loads and reloads (written by the daemon,
-- rejected reloads too, with their errors) and every change of a copy rule's state or parameters
-- (written by a trigger, so no path that changes copy_rules can forget it: start-up sync, SIGHUP
-- reload, operator pause/resume/reset, loss stops).
CREATE TABLE audit_log (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    kind     text NOT NULL CHECK (kind IN ('config_load', 'config_reload', 'rule_state')),
    subject  text,                 -- the config file, or the rule id
    ok       boolean NOT NULL DEFAULT true,
    detail   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(detail) = 'object')
);
CREATE INDEX audit_log_by_time ON audit_log (at);
CREATE INDEX audit_log_by_subject ON audit_log (subject, at);

CREATE FUNCTION copy_rules_audit() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO audit_log (kind, subject, detail)
        VALUES ('rule_state', NEW.id,
                jsonb_build_object('from', NULL, 'to', NEW.status,
                                   'operator_paused', NEW.operator_paused,
                                   'leader', NEW.leader, 'follower', NEW.follower,
                                   'sizing', NEW.sizing, 'params', NEW.params));
    ELSIF (OLD.status, OLD.operator_paused, OLD.leader, OLD.follower, OLD.sizing, OLD.params)
          IS DISTINCT FROM
          (NEW.status, NEW.operator_paused, NEW.leader, NEW.follower, NEW.sizing, NEW.params) THEN
        INSERT INTO audit_log (kind, subject, detail)
        VALUES ('rule_state', NEW.id,
                jsonb_build_object('from', OLD.status, 'to', NEW.status,
                                   'operator_paused', NEW.operator_paused,
                                   'changed', (SELECT coalesce(jsonb_agg(k), '[]'::jsonb) FROM (
                                       SELECT 'leader' AS k WHERE OLD.leader IS DISTINCT FROM NEW.leader
                                       UNION ALL SELECT 'follower' WHERE OLD.follower IS DISTINCT FROM NEW.follower
                                       UNION ALL SELECT 'sizing' WHERE OLD.sizing IS DISTINCT FROM NEW.sizing
                                       UNION ALL SELECT 'params' WHERE OLD.params IS DISTINCT FROM NEW.params
                                   ) x),
                                   'params', NEW.params));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER copy_rules_audit AFTER INSERT OR UPDATE ON copy_rules
    FOR EACH ROW EXECUTE FUNCTION copy_rules_audit();
