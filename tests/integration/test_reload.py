#!/usr/bin/env python3
"""SIGHUP reload of the copy rules against the simulator and the journal (with-services).

Accounts live in the main file; the rules in traders.d/team.yaml. One leader, three followers.
  1. Start: fa-r (x1) and fb-r (x0.5). A leader open of 0.1 gives fa 0.1 and fb 0.05.
  2. Reload: fa-r becomes x2 (changed), fb-r is gone (removed), fc-r (x1) is new. The leader
     stream is not reconnected; the journal marks fb-r removed and fc-r active; audit_log holds the
     reload with what changed and a rule_state row per change. The next open of 0.1 gives fa 0.2,
     fc 0.1 and fb nothing.
  3. A broken trader file (an unknown key) is rejected as a whole: the log and the audit log name
     file and line, ct_config_reloads_total{result="rejected"} counts it, and the running rules
     copy the next open exactly as before.
  4. A trader file that adds an account is rejected too (accounts need a restart).
  5. enabled: false pauses fc-r: the next open goes to fa only.
  6. PostgreSQL refuses one rule of a reload (a test trigger): the reload's journal update is one
     transaction on a pool connection, so nothing of it is recorded (the other rule change
     neither), the audit log says rejected with PostgreSQL's message, the running rules stay.
     Then it refuses the reload's audit row: the rule changes roll back with it.
  7. The database refuses new connections and the pool's connections are killed: the reload gets
     no pool connection within db_pool_acquire_timeout_ms and is rejected (nothing recorded, the
     running rules stay); once connections are allowed again the pool recovers and the same
     reload is applied.
  8. SIGTERM: a clean exit."""

import argparse
import json
import os
import re
import signal
import sys
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Daemon, Sim, TestFailure, free_port, fresh_database, http, metric,  # noqa: E402
                     parse_metrics, psql, require_env, stop_clean, wait_for, write_secret)

BTC = {"symbol": "BTCUSDT", "price": "50000", "step_size": "0.001", "min_qty": "0.001", "max_qty": "1000",
       "market_step_size": "0.001", "market_min_qty": "0.001", "market_max_qty": "120", "tick_size": "0.10",
       "min_price": "0.10", "max_price": "1000000", "min_notional": "5"}
NAMES = ["lead", "fa", "fb", "fc"]


def check(cond, what):
    if not cond:
        raise TestFailure(what)


STEP = Decimal("0.001")


def carry(t, holding, leader_after, k):
    """The engine's rounding carry (copy_engine.h): a multiplier copy of t is sent one step larger
    while that keeps the follower at or below floor(|leader after| x k), so a follower whose
    multiplier was raised catches up with its new target step by step."""
    target = (leader_after * k).quantize(STEP, rounding="ROUND_FLOOR")
    return t + STEP if holding + t + STEP <= target else t


def rules_yaml(rules):
    out = "copy_rules:\n"
    for rid, follower, lines in rules:
        out += f"  - id: {rid}\n    leader: lead\n    follower: {follower}\n"
        out += "".join(f"    {x}\n" for x in lines)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    args = ap.parse_args()
    base_pg = require_env("CT_TEST_PG")
    pg = fresh_database(base_pg, "reload")
    dbname = re.search(r"dbname=(\S+)", pg).group(1)
    redis, tmp = require_env("CT_TEST_REDIS"), require_env("CT_TEST_TMP")
    work = os.path.join(tmp, "reload")
    os.makedirs(os.path.join(work, "secrets"), exist_ok=True)
    os.makedirs(os.path.join(work, "traders.d"), exist_ok=True)
    team = os.path.join(work, "traders.d", "team.yaml")
    accounts = []
    for n in NAMES:
        a = {"name": n, "api_key": f"key-{n}-reload", "api_secret": f"secret-{n}-reload", "balance": "1000000"}
        accounts.append(a)
        write_secret(os.path.join(work, "secrets"), a)
    sim = Sim(args.build_dir, work, accounts, [BTC])
    daemon = None
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        main_cfg = (f"daemon:\n  http_listen: 127.0.0.1:{port}\n  database: \"{pg}\"\n  redis: {redis}\n"
                    "  account_refresh_ms: 200\n  cache_ttl_balances_ms: 200\n"
                    "  db_pool_acquire_timeout_ms: 1500\n  db_pool_health_idle_ms: 0\n"
                    "accounts:\n" + "".join(
                        f"  - name: {n}\n    exchange: binance-usdm\n    rest_url: {sim.rest_url}\n"
                        f"    ws_url: {sim.ws_url}\n    secret_file: secrets/{n}.yaml\n" for n in NAMES))
        with open(team, "w") as f:
            f.write(rules_yaml([("fa-r", "fa", ["sizing: multiplier", "multiplier: 1"]),
                                ("fb-r", "fb", ["sizing: multiplier", "multiplier: 0.5"])]))
        daemon = Daemon(args.build_dir, work, main_cfg)

        def metrics():
            return parse_metrics(http("GET", base + "/metrics")[1])

        def qtys(acct):
            return [Decimal(o["origQty"]) for o in sim.orders(acct)]

        def settled():
            return psql(pg, "select count(*) from follower_orders where status in ('intent','sent','unknown')") == [["0"]]

        def reloads():
            return psql(pg, "select ok, detail::text from audit_log where kind = 'config_reload' order by id")

        def hup_and_wait(n_before):
            daemon.p.proc.send_signal(signal.SIGHUP)
            wait_for("the reload in the audit log", lambda: len(reloads()) == n_before + 1)
            ok, detail = reloads()[-1]
            return ok == "t", json.loads(detail)

        wait_for("daemon ready", lambda: http("GET", base + "/health/ready")[0] == 200, timeout=30)
        conns = sim.streams("lead")["connections"]
        changes = metric(metrics(), "ct_stream_state_changes_total")

        # 1. Start.
        sim.leader_order("lead", "BTCUSDT", "BUY", "0.1")
        wait_for("first copies", lambda: len(sim.orders("fa")) == 1 and len(sim.orders("fb")) == 1)
        wait_for("journal settled", settled)
        check(qtys("fa") == [Decimal("0.1")] and qtys("fb") == [Decimal("0.05")], f"start: {qtys('fa')} {qtys('fb')}")
        check(psql(pg, "select kind, ok from audit_log where kind like 'config%' order by id limit 1") == [["config_load", "t"]],
              "the start-up load is not in the audit log")

        # 2. Change fa-r, remove fb-r, add fc-r.
        with open(team, "w") as f:
            f.write(rules_yaml([("fa-r", "fa", ["sizing: multiplier", "multiplier: 2"]),
                                ("fc-r", "fc", ["sizing: multiplier", "multiplier: 1"])]))
        ok, detail = hup_and_wait(0)
        check(ok and detail["added"] == ["fc-r"] and detail["changed"] == ["fa-r"] and detail["removed"] == ["fb-r"],
              f"reload audit: {ok} {detail}")
        st = psql(pg, "select id, status from copy_rules order by id")
        check(st == [["fa-r", "active"], ["fb-r", "removed"], ["fc-r", "active"]], f"copy_rules after reload: {st}")
        audit = psql(pg, "select subject, detail->>'to' from audit_log where kind = 'rule_state' "
                         "and detail ? 'from' and detail->>'from' is not null order by id")
        check(["fb-r", "removed"] in audit and ["fa-r", "active"] in audit, f"rule_state audit rows: {audit}")
        # What each rule_state row says (sql/009 writes them per statement): fa-r's parameters
        # changed, fb-r's state, fc-r was inserted with its parameters.
        rows = {r[0]: json.loads(r[1]) for r in psql(
            pg, "select subject, detail::text from audit_log where kind = 'rule_state' and id > "
                "(select max(id) from audit_log where kind = 'config_load') order by id")}
        check(rows.get("fa-r", {}).get("changed") == ["params"] and rows["fa-r"].get("from") == "active"
              and rows.get("fb-r", {}).get("changed") == [] and rows["fb-r"].get("to") == "removed"
              and rows.get("fc-r", {}).get("from", "x") is None and rows["fc-r"].get("follower") == "fc"
              and rows["fc-r"].get("to") == "active", f"rule_state details: {rows}")
        state = json.loads(http("GET", base + "/state")[1])
        check(sorted(r["id"] for r in state["rules"]) == ["fa-r", "fc-r"], f"/state rules: {state['rules']}")
        m = metrics()
        check(metric(m, "ct_config_reloads_total", result="applied") == 1, "reload not counted as applied")
        check(metric(m, "ct_rule_status", rule="fb-r") == 3, "fb-r status gauge is not 'removed'")
        # The journal update went through the database pool, and gave its connection back.
        check(metric(m, "ct_db_pool_created_total") >= 1, "the database pool set up no connection")
        check(metric(m, "ct_db_pool_acquire_wait_seconds_count") >= 1, "no pool acquire observed")
        check(metric(m, "ct_db_pool_connections", state="in_use") == 0, "the reload kept its pool connection")
        sim.leader_order("lead", "BTCUSDT", "BUY", "0.1")
        wait_for("copies after the reload", lambda: len(sim.orders("fa")) == 2 and len(sim.orders("fc")) == 1)
        wait_for("journal settled", settled)
        check(qtys("fa")[1] == carry(Decimal("0.2"), Decimal("0.1"), Decimal("0.2"), 2)
              and qtys("fc") == [carry(Decimal("0.1"), Decimal(0), Decimal("0.2"), 1)] and len(sim.orders("fb")) == 1,
              f"after reload: fa {qtys('fa')} fb {qtys('fb')} fc {qtys('fc')}")
        # The drift gauge: |follower - leader x multiplier| in steps, from the positions the daemon
        # tracks, which must be what the simulator holds.
        lead_pos = sum(Decimal(p["positionAmt"]) for p in sim.positions("lead"))
        fa_pos = sum(Decimal(p["positionAmt"]) for p in sim.positions("fa"))
        fc_pos = sum(Decimal(p["positionAmt"]) for p in sim.positions("fc"))
        want_fa, want_fc = abs(fa_pos - 2 * lead_pos) / STEP, abs(fc_pos - lead_pos) / STEP
        check(want_fa > 0, f"fa should still be catching up: fa {fa_pos} lead {lead_pos}")
        wait_for("drift gauges", lambda: (metric(metrics(), "ct_rule_position_drift_steps", rule="fa-r"),
                                          metric(metrics(), "ct_rule_position_drift_steps", rule="fc-r"))
                 == (float(want_fa), float(want_fc)))
        # fc-r's route came with the reload: it is controllable like the others.
        st, body = http("POST", base + "/rules/fc-r/pause")
        check(st == 200 and json.loads(body)["status"] == "paused", f"pause fc-r: {st} {body}")
        st, body = http("POST", base + "/rules/fc-r/resume")
        check(st == 200, f"resume fc-r: {st} {body}")
        st, body = http("POST", base + "/rules/fb-r/pause")
        check(st == 404, f"a removed rule must be unknown to the control endpoints: {st} {body}")

        # 3. A broken trader file: rejected, the running rules stay.
        with open(team, "w") as f:
            f.write(rules_yaml([("fa-r", "fa", ["sizing: multiplier", "multiplier: 3", "multiplyer: 4"])]))
        ok, detail = hup_and_wait(1)
        check(not ok and any("team.yaml:" in e and "multiplyer" in e for e in detail["errors"]),
              f"broken file audit: {ok} {detail}")
        wait_for("rejection counted", lambda: metric(metrics(), "ct_config_reloads_total", result="rejected") == 1)
        check("reload rejected" in daemon.p.tail(200) and "team.yaml:" in daemon.p.tail(200),
              "the log does not name the rejected file")
        sim.leader_order("lead", "BTCUSDT", "BUY", "0.1")
        wait_for("copies with the running rules", lambda: len(sim.orders("fa")) == 3 and len(sim.orders("fc")) == 2)
        wait_for("journal settled", settled)
        check(qtys("fa")[2] == carry(Decimal("0.2"), sum(qtys("fa")[:2]), Decimal("0.3"), 2)
              and qtys("fc")[1] == carry(Decimal("0.1"), qtys("fc")[0], Decimal("0.3"), 1),
              f"after a rejected reload: fa {qtys('fa')} fc {qtys('fc')}")

        # 4. A new account in a trader file needs a restart.
        with open(team, "w") as f:
            f.write("accounts:\n  - name: fd\n    exchange: binance-usdm\n"
                    f"    rest_url: {sim.rest_url}\n    ws_url: {sim.ws_url}\n    secret_file: ../secrets/fa.yaml\n"
                    + rules_yaml([("fa-r", "fa", ["sizing: multiplier", "multiplier: 2"]),
                                  ("fd-r", "fd", ["sizing: multiplier", "multiplier: 1"])]))
        ok, detail = hup_and_wait(2)
        check(not ok and any("account fd is new" in e for e in detail["errors"]), f"new account audit: {ok} {detail}")

        # 5. enabled: false.
        with open(team, "w") as f:
            f.write(rules_yaml([("fa-r", "fa", ["sizing: multiplier", "multiplier: 2"]),
                                ("fc-r", "fc", ["sizing: multiplier", "multiplier: 1", "enabled: false"])]))
        ok, detail = hup_and_wait(3)
        check(ok and detail["changed"] == ["fc-r"] and not detail["added"] and not detail["removed"],
              f"disable audit: {ok} {detail}")
        check(psql(pg, "select status from copy_rules where id = 'fc-r'") == [["paused"]], "fc-r not paused in the journal")
        sim.leader_order("lead", "BTCUSDT", "BUY", "0.1")
        wait_for("copy to fa", lambda: len(sim.orders("fa")) == 4)
        wait_for("journal settled", settled)
        check(len(sim.orders("fc")) == 2, f"a disabled rule copied: {sim.orders('fc')}")

        # 6. PostgreSQL refuses one statement of the reload's journal update: all of it rolls back.
        psql(pg, "create function test_refuse_rule() returns trigger language plpgsql as $$ begin "
                 "raise exception 'test: copy rule % refused', new.id; end $$; "
                 "create trigger test_refuse_rule before insert or update on copy_rules for each row "
                 "when (new.id = 'fx-r') execute function test_refuse_rule()")
        with open(team, "w") as f:
            f.write(rules_yaml([("fa-r", "fa", ["sizing: multiplier", "multiplier: 3"]),
                                ("fc-r", "fc", ["sizing: multiplier", "multiplier: 1", "enabled: false"]),
                                ("fx-r", "fb", ["sizing: multiplier", "multiplier: 1"])]))
        ok, detail = hup_and_wait(4)
        check(not ok and any("fx-r" in e and "refused" in e for e in detail["errors"]),
              f"refused reload audit: {ok} {detail}")
        wait_for("refusal counted", lambda: metric(metrics(), "ct_config_reloads_total", result="rejected") == 3)
        st = psql(pg, "select id, status, params->>'multiplier' from copy_rules order by id")
        check(st == [["fa-r", "active", "2"], ["fb-r", "removed", "0.5"], ["fc-r", "paused", "1"]],
              f"a refused reload changed the journal: {st}")
        check("reload rejected: the journal refused the new rules" in daemon.p.tail(200),
              "the log does not say the journal refused the reload")
        psql(pg, "drop trigger test_refuse_rule on copy_rules; drop function test_refuse_rule()")
        # The audit row is part of the same transaction: one PostgreSQL refuses takes the rule
        # changes with it (and the rejection is recorded instead).
        psql(pg, "create function test_refuse_audit() returns trigger language plpgsql as $$ begin "
                 "raise exception 'test: audit row refused'; end $$; "
                 "create trigger test_refuse_audit before insert on audit_log for each row "
                 "when (new.kind = 'config_reload' and new.ok) execute function test_refuse_audit()")
        with open(team, "w") as f:
            f.write(rules_yaml([("fa-r", "fa", ["sizing: multiplier", "multiplier: 3"]),
                                ("fc-r", "fc", ["sizing: multiplier", "multiplier: 1", "enabled: false"])]))
        ok, detail = hup_and_wait(5)
        check(not ok and any("audit row refused" in e for e in detail["errors"]), f"refused audit row: {ok} {detail}")
        wait_for("refusal counted", lambda: metric(metrics(), "ct_config_reloads_total", result="rejected") == 4)
        check(psql(pg, "select params->>'multiplier' from copy_rules where id = 'fa-r'") == [["2"]],
              "the rules of a reload whose audit row failed were recorded")
        psql(pg, "drop trigger test_refuse_audit on audit_log; drop function test_refuse_audit()")
        sim.leader_order("lead", "BTCUSDT", "BUY", "0.1")
        wait_for("copy to fa with the running rules", lambda: len(sim.orders("fa")) == 5)
        wait_for("journal settled", settled)
        check(qtys("fa")[4] == carry(Decimal("0.2"), sum(qtys("fa")[:4]), Decimal("0.5"), 2)
              and len(sim.orders("fb")) == 1 and len(sim.orders("fc")) == 2,
              f"after a refused reload: fa {qtys('fa')} fb {qtys('fb')} fc {qtys('fc')}")

        # 7. No database connection for the pool: rejected, nothing recorded; then it recovers.
        with open(team, "w") as f:
            f.write(rules_yaml([("fa-r", "fa", ["sizing: multiplier", "multiplier: 4"]),
                                ("fc-r", "fc", ["sizing: multiplier", "multiplier: 1", "enabled: false"])]))
        timeouts = metric(metrics(), "ct_db_pool_acquire_timeouts_total")
        psql(base_pg, f'alter database "{dbname}" allow_connections false')
        try:
            psql(base_pg, "select pg_terminate_backend(pid) from pg_stat_activity "
                          f"where datname = '{dbname}' and application_name = 'copytrader'")
            wait_for("the pool's connections gone", lambda: (
                metric(metrics(), "ct_db_pool_connections", state="idle") == 0
                and metric(metrics(), "ct_db_pool_broken_total") >= 1))
            daemon.p.proc.send_signal(signal.SIGHUP)
            wait_for("rejection counted", lambda: metric(metrics(), "ct_config_reloads_total", result="rejected") == 5)
            check(metric(metrics(), "ct_db_pool_acquire_timeouts_total") == timeouts + 1,
                  "the pool did not count the acquire timeout")
            log = daemon.p.tail(200)
            check("reload rejected: no database connection" in log, "the log does not say why the reload failed")
            check("database pool: " in log, "the pool's connect errors are not logged")
        finally:
            psql(base_pg, f'alter database "{dbname}" allow_connections true')
        check(len(reloads()) == 6, f"a reload without a connection wrote to the journal: {reloads()}")
        check(psql(pg, "select params->>'multiplier' from copy_rules where id = 'fa-r'") == [["2"]],
              "a reload without a connection changed the journal")
        # The journal's own session was never touched: copying went on.
        check(metric(metrics(), "ct_journal_up") == 1, "the journal session went down")
        wait_for("the pool reconnected", lambda: metric(metrics(), "ct_db_pool_connections", state="idle") >= 1)
        ok, detail = hup_and_wait(6)
        check(ok and detail["changed"] == ["fa-r"], f"reload after the pool recovered: {ok} {detail}")
        check(psql(pg, "select params->>'multiplier' from copy_rules where id = 'fa-r'") == [["4"]],
              "the recovered reload is not in the journal")
        check(metric(metrics(), "ct_config_reloads_total", result="applied") == 3, "applied reloads miscounted")

        # The leader stream was never dropped by any of this.
        check(sim.streams("lead")["connections"] == conns, "the leader stream was reconnected")
        check(metric(metrics(), "ct_stream_state_changes_total") == changes, "stream state changed during reloads")
        # Every intent was journaled once and answered.
        dup = psql(pg, "select count(*) - count(distinct client_order_id) from follower_orders")
        check(dup == [["0"]], f"duplicate intents: {dup}")
        stop_clean(daemon)
        daemon = None
        print("ok test_reload: 8 reloads (3 applied with added/changed/removed/disabled rules, 5 rejected: "
              "bad file, new account, a rule and an audit row refused by PostgreSQL (atomically), "
              "no pool connection); "
              "stream kept; audit log complete")
    except Exception:
        if daemon:
            print(daemon.p.tail(60), file=sys.stderr)
        raise
    finally:
        if daemon:
            daemon.stop(signal.SIGKILL)
        sim.stop()


if __name__ == "__main__":
    try:
        main()
    except TestFailure as e:
        print(f"FAIL test_reload: {e}", file=sys.stderr)
        sys.exit(1)
