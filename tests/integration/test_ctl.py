#!/usr/bin/env python3
"""copytraderctl against a running daemon, the simulator and the journal (with-services).

One leader, two followers: fa (multiplier 1) and fb (multiplier 0.5, daily_loss_limit 100).
  1. The leader opens 0.1: rules / orders / explain / status (--json and human) show it.
  2. pause fa-r: the next leader fill is skipped for fa with rule_paused (journal, explain), fa gets
     no order at the simulator, fb does; ctl shows paused, and so does the journal.
  3. resume fa-r: the next fill is copied to fa again.
  4. fb's equity drops: its rule goes close_only (metric and ctl); reset fb-r makes it active again
     (metric, ctl, journal).
  5. Errors: unknown rule, unknown follower, unknown trade id, daemon not reachable: clear message,
     non-zero exit. No output ever contains an API key or secret.
  6. A daemon listening on 0.0.0.0 answers reads but keeps rule control (POST) off."""

import argparse
import json
import os
import subprocess
import sys
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BTC_SYMBOL, FAST_REFRESH_YAML, Daemon, Sim, TestFailure, daemon_config,  # noqa: E402
                     fetch_metrics, free_port, fresh_database, http, journal_settled, make_accounts, metric, psql,
                     require_env, wait_for, wait_http_ok)

RULES = {"fa": ["sizing: multiplier", "multiplier: 1"],
         "fb": ["sizing: multiplier", "multiplier: 0.5", "daily_loss_limit: 100"]}
SECRETS = []


class Ctl:
    def __init__(self, exe, cfg):
        self.exe, self.cfg = exe, cfg

    def run(self, *args, expect=0, cfg=None):
        r = subprocess.run([self.exe, "--config", cfg or self.cfg, *args], capture_output=True, text=True,
                           timeout=30)
        for s in SECRETS:
            if s in r.stdout or s in r.stderr:
                raise TestFailure(f"copytraderctl {' '.join(args)} printed a secret")
        if (r.returncode == 0) != (expect == 0):
            raise TestFailure(f"copytraderctl {' '.join(args)}: exit {r.returncode}, wanted "
                              f"{'0' if expect == 0 else 'non-zero'}\nstdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def json(self, *args):
        out = self.run("--json", *args).stdout
        try:
            return json.loads(out)
        except ValueError as e:
            raise TestFailure(f"copytraderctl --json {' '.join(args)}: not JSON ({e}): {out!r}")


def check(cond, what):
    if not cond:
        raise TestFailure(what)


def by(rows, key):
    return {r[key]: r for r in rows}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    args = ap.parse_args()
    pg = fresh_database(require_env("CT_TEST_PG"), "ctl")
    redis, tmp = require_env("CT_TEST_REDIS"), require_env("CT_TEST_TMP")
    work = os.path.join(tmp, "ctl")
    os.makedirs(os.path.join(work, "secrets"), exist_ok=True)
    names = ["lead", *RULES]
    accounts = make_accounts(os.path.join(work, "secrets"), names, "0a1b2c3d4e", "5f6a7b8c9d")
    for a in accounts:
        SECRETS.extend([a["api_key"], a["api_secret"]])
    sim = Sim(args.build_dir, work, accounts, [BTC_SYMBOL])
    daemon = None
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"

        def config(p):
            return daemon_config(p, pg, redis, sim, names, [(f"{f}-r", "lead", f, lines) for f, lines in RULES.items()],
                                 daemon_extra=FAST_REFRESH_YAML)
        daemon = Daemon(args.build_dir, work, config(port))
        ctl = Ctl(os.path.join(args.build_dir, "daemon", "copytraderctl"), daemon.cfg_path)
        wait_http_ok("daemon /health/live", base, "/health/live")
        wait_for("leader stream", lambda: sim.streams("lead")["connections"] >= 1)

        def metrics():
            return fetch_metrics(base)

        def settled():
            return journal_settled(pg)

        def n_orders(f):
            return len(sim.orders(f))

        def last_trade_id():
            return psql(pg, "select trade_id from leader_fills order by id desc limit 1")[0][0]

        # 1. A copied open.
        sim.leader_order("lead", "BTCUSDT", "BUY", "0.1")
        wait_for("first copies", lambda: n_orders("fa") == 1 and n_orders("fb") == 1)
        wait_for("journal settled", settled)
        wait_for("stream up in /state", lambda: ctl.json("status")["leaders"][0]["stream_up"] is True)
        rules = by(ctl.json("rules"), "id")
        check(set(rules) == {"fa-r", "fb-r"}, f"rules: {rules}")
        check(rules["fa-r"]["status"] == "active" and rules["fa-r"]["leader"] == "lead"
              and rules["fa-r"]["follower"] == "fa" and rules["fa-r"]["sizing"] == "multiplier"
              and Decimal(rules["fb-r"]["multiplier"]) == Decimal("0.5"), f"rules: {rules}")
        human = ctl.run("rules").stdout.splitlines()
        check(human[0].split()[:5] == ["RULE", "STATE", "LEADER", "FOLLOWER", "SIZING"], f"rules header: {human}")
        check(any(l.split()[:4] == ["fb-r", "active", "lead", "fb"] for l in human), f"rules rows: {human}")
        # Columns are aligned: the STATE column starts at the same offset on every line.
        col = human[0].index("STATE")
        check(all(l[col - 2:col] == "  " and l[col] != " " for l in human), f"rules not aligned: {human}")

        orders = ctl.json("orders", "--follower", "fa", "--since", "1h")
        check(len(orders) == 1 and orders[0]["side"] == "BUY" and Decimal(orders[0]["qty"]) == Decimal("0.1")
              and orders[0]["status"] == "filled" and orders[0]["symbol"] == "BTCUSDT"
              and orders[0]["rule_id"] == "fa-r", f"orders fa: {orders}")
        human = ctl.run("orders", "--follower", "fb").stdout.splitlines()
        parts = human[1].split() if len(human) == 2 else []
        check(human[0].split()[:6] == ["TIME", "RULE", "SYMBOL", "SIDE", "QTY", "STATUS"]
              and parts[1:4] == ["fb-r", "BTCUSDT", "BUY"] and Decimal(parts[4]) == Decimal("0.05")
              and parts[5] == "filled", f"orders fb: {human}")

        trade1 = last_trade_id()
        ex = ctl.json("explain", trade1)
        check(len(ex) == 1 and ex[0]["account"] == "lead" and ex[0]["symbol"] == "BTCUSDT"
              and ex[0]["trade_id"] == trade1, f"explain: {ex}")
        dec = by(ex[0]["rules"], "rule")
        check(dec["fa-r"]["status"] == "filled" and Decimal(dec["fa-r"]["qty"]) == Decimal("0.1")
              and dec["fb-r"]["status"] == "filled" and Decimal(dec["fb-r"]["qty"]) == Decimal("0.05"),
              f"explain decisions: {dec}")
        human = ctl.run("explain", trade1, "--account", "lead", "--symbol", "BTCUSDT").stdout
        check(f"trade {trade1}" in human and "fa-r" in human and "filled" in human, f"explain human: {human}")

        st = ctl.json("status")
        check(st["ready"] is True and st["leaders"][0]["account"] == "lead" and st["leaders"][0]["fills"] == 1
              and st["leaders"][0]["last_trade_id"] == trade1 and st["leaders"][0]["journal_lag_ms"] >= 0
              and st["rules_live"] == {"active": 2}, f"status: {st}")
        human = ctl.run("status").stdout
        check("ready" in human and "lead" in human and " up " in human and "active 2" in human,
              f"status human: {human}")

        # 2. Pause fa-r: the next fill is skipped for fa with rule_paused.
        r = ctl.json("pause", "fa-r")
        check(r == {"rule": "fa-r", "status": "paused"}, f"pause: {r}")
        check(by(ctl.json("rules"), "id")["fa-r"]["status"] == "paused", "rules does not show fa-r paused")
        check(metric(metrics(), "ct_rule_status", rule="fa-r") == 1, "ct_rule_status of fa-r is not 1")
        wait_for("paused journaled", lambda: psql(pg, "select status from copy_rules where id='fa-r'") == [["paused"]])
        sim.leader_order("lead", "BTCUSDT", "BUY", "0.02")
        wait_for("fb's second copy", lambda: n_orders("fb") == 2)
        wait_for("journal settled", settled)
        trade2 = last_trade_id()
        check(trade2 != trade1, "no second leader fill journaled")
        dec = by(ctl.json("explain", trade2)[0]["rules"], "rule")
        check(dec["fa-r"]["status"] == "skipped" and dec["fa-r"]["skip_reason"] == "rule_paused"
              and dec["fb-r"]["status"] == "filled", f"explain after pause: {dec}")
        check(psql(pg, "select o.status, o.skip_reason from follower_orders o join leader_fills f on "
                   f"f.id = o.leader_fill_id where f.trade_id = '{trade2}' and o.rule_id = 'fa-r'")
              == [["skipped", "rule_paused"]], "journal: fa's intent is not skipped rule_paused")
        check(n_orders("fa") == 1, "a paused rule sent an order")
        human = ctl.run("orders", "--follower", "fa").stdout
        check("rule_paused" in human and "skipped" in human, f"orders human after pause: {human}")

        # 2b. The pause survives a restart (the config sync must not turn it back to active).
        wait_for("pause switch journaled", lambda: psql(
            pg, "select operator_paused from copy_rules where id='fa-r'") == [["t"]])
        check(daemon.stop() == 0, "daemon exited non-zero on restart")
        daemon = Daemon(args.build_dir, work, config(port))
        wait_http_ok("restarted daemon", base, "/health/live")
        wait_for("leader stream after restart", lambda: sim.streams("lead")["connections"] >= 1)
        check(metric(metrics(), "ct_rule_status", rule="fa-r") == 1, "fa-r not paused after a restart")
        check(by(ctl.json("rules"), "id")["fa-r"]["status"] == "paused", "rules: fa-r not paused after a restart")

        # 3. Resume: copied again.
        check(ctl.json("resume", "fa-r")["status"] == "active", "resume did not answer active")
        sim.leader_order("lead", "BTCUSDT", "BUY", "0.03")
        wait_for("fa copied after resume", lambda: n_orders("fa") == 2)
        wait_for("resume journaled", lambda: psql(
            pg, "select status, operator_paused from copy_rules where id='fa-r'") == [["active", "f"]])
        wait_for("journal settled", settled)
        orders = ctl.json("orders", "--follower", "fa")
        check([o["status"] for o in orders] == ["filled", "skipped", "filled"]
              and Decimal(orders[2]["qty"]) == Decimal("0.031"), f"orders fa after resume: {orders}")
        # 0.031, not 0.03: the skipped fill left fa 0.02 below leader x 1, so the engine's rounding
        # carry (copy_engine.c) adds one step to each open until it has caught up.

        # 4. close_only, then reset.
        sim._json("POST", "/admin/balance", {"account": "fb", "balance": "998000"})
        wait_for("fb's rule in close_only", lambda: metric(metrics(), "ct_rule_status", rule="fb-r") == 2)
        check(by(ctl.json("rules"), "id")["fb-r"]["status"] == "close_only", "rules does not show close_only")
        check(ctl.json("status")["rules_live"] == {"active": 1, "close_only": 1}, "status: rules by state")
        r = ctl.json("reset", "fb-r")
        check(r == {"rule": "fb-r", "status": "active"}, f"reset: {r}")
        check(metric(metrics(), "ct_rule_status", rule="fb-r") == 0, "ct_rule_status of fb-r after reset")
        wait_for("reset journaled", lambda: psql(pg, "select status from copy_rules where id='fb-r'") == [["active"]])
        check(by(ctl.json("rules"), "id")["fb-r"]["status"] == "active", "rules does not show fb-r active")
        sim.leader_order("lead", "BTCUSDT", "BUY", "0.04")  # an open: close_only would skip it
        wait_for("fb copies opens after reset", lambda: n_orders("fb") == 4)

        # 5. Errors.
        r = ctl.run("pause", "nosuch", expect=1)
        check("unknown rule nosuch" in r.stderr, f"unknown rule: {r.stderr}")
        r = ctl.run("orders", "--follower", "nobody", expect=1)
        check("unknown follower nobody" in r.stderr, f"unknown follower: {r.stderr}")
        r = ctl.run("explain", "999999999", expect=1)
        check("no leader fill with trade id 999999999" in r.stderr, f"unknown trade: {r.stderr}")
        r = ctl.run("orders", "--follower", "fa", "--since", "yesterday", expect=1)
        check("--since" in r.stderr, f"bad --since: {r.stderr}")
        dead = os.path.join(work, "dead.yaml")
        dead_port = free_port()
        with open(dead, "w") as f:
            f.write(config(dead_port))
        r = ctl.run("pause", "fa-r", expect=1, cfg=dead)
        check(f"daemon not reachable at http://127.0.0.1:{dead_port}" in r.stderr, f"dead daemon: {r.stderr}")
        r = ctl.run("status", expect=1, cfg=dead)
        check("daemon not reachable" in r.stderr, f"dead daemon status: {r.stderr}")
        check(by(ctl.json("rules"), "id")["fa-r"]["status"] == "active", "a failed pause changed the rule")

        rc = daemon.stop()
        daemon = None
        check(rc == 0, f"daemon exit {rc}")

        # 6. A listener opened beyond loopback keeps rule control off (reads still work).
        port2 = free_port()
        daemon = Daemon(args.build_dir, work, config(port2).replace("127.0.0.1:", "0.0.0.0:", 1), name="wide")
        ctl2 = Ctl(ctl.exe, daemon.cfg_path)
        base2 = f"http://127.0.0.1:{port2}"
        wait_http_ok("wide daemon /health/live", base2, "/health/live")
        check(http("POST", base2 + "/rules/fa-r/pause", {})[0] == 404, "rule control open on 0.0.0.0")
        r = ctl2.run("pause", "fa-r", expect=1)
        check("unknown rule fa-r" in r.stderr, f"pause on a wide listener: {r.stderr}")
        wait_for("wide daemon /state", lambda: http("GET", base2 + "/state")[0] == 200)
        check(by(ctl2.json("rules"), "id")["fa-r"]["status"] == "active", "rules on the wide daemon")
        rc = daemon.stop()
        daemon = None
        check(rc == 0, f"wide daemon exit {rc}")
        print("ok: copytraderctl rules/orders/explain/status, pause/resume (rule_paused), reset of close_only, "
              "errors, rule control off on a non-loopback listener")
    finally:
        if daemon:
            daemon.stop()
        sim.stop()


if __name__ == "__main__":
    try:
        main()
    except TestFailure as e:
        sys.exit(f"FAIL: {e}")
