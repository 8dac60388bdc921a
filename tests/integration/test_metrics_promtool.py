#!/usr/bin/env python3
"""/metrics passes `promtool check metrics`, and config/alerts.yml passes `promtool check rules` and
its unit tests (`promtool test rules`, config/alerts_test.yml). Also checks that
config/grafana-dashboard.json parses and only queries metric families the daemon exports.

Real PostgreSQL and Redis (from with-services), the simulator and the daemon; a few leader trades are
copied first so the labelled series (orders by result, skips, histograms) exist. Fails, never skips,
when promtool is missing (Debian package prometheus, see scripts/deps)."""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Daemon, Sim, TestFailure, free_port, http, metric, parse_metrics,  # noqa: E402
                     require_env, wait_for, fresh_database, write_secret, stop_clean)

SYMBOLS = [
    {"symbol": "BTCUSDT", "price": "50000", "step_size": "0.001", "min_qty": "0.001", "max_qty": "1000",
     "market_step_size": "0.001", "market_min_qty": "0.001", "market_max_qty": "120", "tick_size": "0.10",
     "min_price": "0.10", "max_price": "1000000", "min_notional": "5"},
]
# Metric families the existing tests and alerts rely on: renaming one breaks them.
KEEP = ["ct_leader_fills_total", "ct_follower_orders_total", "ct_copy_skips_total",
        "ct_leader_fills_duplicate_total", "ct_rule_status", "ct_rule_stops_total", "ct_stream_up",
        "ct_journal_up", "ct_rules", "ct_copy_send_latency_seconds", "ct_copy_ack_latency_seconds"]


def promtool(*args, stdin=None):
    r = subprocess.run(["promtool", *args], input=stdin, capture_output=True, text=True)
    return r.returncode, (r.stdout + r.stderr).strip()


def families(text):
    """Metric family names declared by # TYPE lines."""
    return {m.group(1) for m in re.finditer(r"^# TYPE (\S+) \S+$", text, re.M)}


def check_dashboard(path, fams):
    with open(path) as f:
        dash = json.load(f)  # raises on bad JSON: the test fails
    exprs = []

    def walk(o):
        if isinstance(o, dict):
            if isinstance(o.get("expr"), str):
                exprs.append(o["expr"])
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(dash)
    if not exprs:
        raise TestFailure("grafana-dashboard.json: no panel queries")
    # Every ct_* name a query uses must be an exported series (family, or a histogram's
    # _bucket/_sum/_count).
    series = set(fams)
    for f in fams:
        series |= {f + "_bucket", f + "_sum", f + "_count"}
    for e in exprs:
        for name in re.findall(r"\b(ct_[a-zA-Z0-9_]+)", e):
            if name not in series:
                raise TestFailure(f"grafana-dashboard.json queries {name}, which /metrics does not export ({e})")
    return len(exprs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    args = ap.parse_args()
    if not shutil.which("promtool"):
        sys.exit("FAIL: promtool not found: install the Debian package prometheus (scripts/deps does)")
    pg = fresh_database(require_env("CT_TEST_PG"), "promtool")
    redis = require_env("CT_TEST_REDIS")
    tmp = require_env("CT_TEST_TMP")
    work = os.path.join(tmp, "promtool")
    os.makedirs(os.path.join(work, "secrets"), exist_ok=True)
    cfgdir = os.path.join(args.source_dir, "config")

    # 1. The rules and their unit tests, which need no daemon.
    rc, out = promtool("check", "rules", os.path.join(cfgdir, "alerts.yml"))
    if rc != 0:
        raise TestFailure(f"promtool check rules config/alerts.yml failed:\n{out}")
    rc, out = promtool("test", "rules", os.path.join(cfgdir, "alerts_test.yml"))
    if rc != 0:
        raise TestFailure(f"promtool test rules config/alerts_test.yml failed:\n{out}")

    accounts = [{"name": n, "api_key": f"key-{n}-0123456789abcdef", "api_secret": f"secret-{n}-fedcba9876543210",
                 "balance": "1000000"} for n in ["leader", "f1"]]
    sim = Sim(args.build_dir, work, accounts, SYMBOLS)
    daemon = None
    try:
        for a in accounts:
            write_secret(os.path.join(work, "secrets"), a)
        http_port = free_port()
        acct_yaml = "".join(
            f"  - name: {a['name']}\n    exchange: binance-usdm\n    rest_url: {sim.rest_url}\n"
            f"    ws_url: {sim.ws_url}\n    secret_file: secrets/{a['name']}.yaml\n" for a in accounts)
        config = (f"daemon:\n  log_level: info\n  http_listen: 127.0.0.1:{http_port}\n"
                  f"  database: \"{pg}\"\n  redis: {redis}\n\naccounts:\n{acct_yaml}\ncopy_rules:\n"
                  f"  - id: f1-copies-leader\n    leader: leader\n    follower: f1\n    sizing: multiplier\n"
                  f"    multiplier: 0.5\n")
        base = f"http://127.0.0.1:{http_port}"
        daemon = Daemon(args.build_dir, work, config)
        wait_for("daemon /health/ready", lambda: http("GET", base + "/health/ready")[0] == 200, timeout=30)

        for side, qty in [("BUY", "0.010"), ("BUY", "0.001"), ("SELL", "0.011")]:
            o = sim.leader_order("leader", "BTCUSDT", side, qty)
            if o.get("status") != "FILLED":
                raise TestFailure(f"leader order not filled: {o}")
        wait_for("3 leader fills counted", lambda: metric(
            parse_metrics(http("GET", base + "/metrics")[1]), "ct_leader_fills_total") >= 3)
        wait_for("follower orders answered", lambda: len(sim.orders("f1")) >= 2)

        st, text = http("GET", base + "/metrics")
        if st != 200:
            raise TestFailure(f"/metrics -> {st}")
        with open(os.path.join(work, "metrics.txt"), "w") as f:
            f.write(text)
        rc, out = promtool("check", "metrics", stdin=text)
        if rc != 0 or out:
            raise TestFailure(f"promtool check metrics complains (exit {rc}):\n{out}")

        fams = families(text)
        missing = [k for k in KEEP if k not in fams]
        if missing:
            raise TestFailure(f"/metrics lacks {missing}")
        m = parse_metrics(text)
        if metric(m, "ct_rules", state="active") != 1 or metric(m, "ct_rules", state="close_only") != 0:
            raise TestFailure("ct_rules{state} does not count the one active rule")
        if metric(m, "ct_journal_writes_total") < 3:
            raise TestFailure("ct_journal_writes_total below the 3 fills journaled")
        if metric(m, "ct_copy_send_latency_seconds_count") < 1:
            raise TestFailure("no copy send latency observed")
        # Answered orders: end-to-end latency observed, and the order endpoint's REST latency and
        # its 200 answers are in the per-endpoint series.
        if metric(m, "ct_copy_e2e_latency_seconds_count") < 1:
            raise TestFailure("no end-to-end copy latency observed")
        ep = {"exchange": "binance-usdm", "endpoint": "POST /fapi/v1/order"}
        if metric(m, "ct_rest_request_seconds_count", **ep) < 2 or \
                metric(m, "ct_rest_responses_total", code="200", **ep) < 2:
            raise TestFailure("the follower orders are not in ct_rest_request_seconds / ct_rest_responses_total")
        if metric(m, "ct_rate_limit_headroom") <= 0:
            raise TestFailure("no rate-limit headroom exported")
        n = check_dashboard(os.path.join(cfgdir, "grafana-dashboard.json"), fams)
        d, daemon = daemon, None
        stop_clean(d)
        print(f"ok: promtool check metrics clean ({len(fams)} families), alert rules and their tests pass, "
              f"dashboard parses ({n} queries, all on exported metrics)")
    finally:
        if daemon:
            daemon.stop()
        sim.stop()


if __name__ == "__main__":
    try:
        main()
    except TestFailure as e:
        sys.exit(f"FAIL: {e}")
