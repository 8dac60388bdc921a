#!/usr/bin/env python3
"""Issue 3 end to end: one follower per sizing mode and per rule feature, copied through the
simulator and the journal (real PostgreSQL and Redis from with-services).

Followers of one leader (BTCUSDT at a constant 50000, step 0.001, tick 0.10):
  fm  multiplier 0.5, max_leverage 10      fn  fixed_notional 1000
  fe  equity_ratio (equity 250k vs 1M)     fr  multiplier 1, reverse
  fd  multiplier 1, dry_run                fh  multiplier 1, hedge-mode account
  fc  multiplier 1, daily_loss_limit 100   fl  multiplier 1, limit_ioc, 50 bps
The leader opens 0.1, then fc's equity drops by 2,000 (its rule must go close_only), the leader
adds 0.05, raises its leverage to 50, and closes all 0.15. Asserts every order each follower
received (side, exact quantity, type, price, reduce-only, position side), final positions,
leverages, the journal's skip reasons and the rule-state metric."""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BTC_SYMBOL, FAST_REFRESH_YAML, Daemon, Sim, TestFailure, daemon_config,  # noqa: E402
                     fetch_metrics, free_port, fresh_database, journal_settled, make_accounts, metric, psql,
                     require_env, wait_for, wait_http_ok)

RULES = {  # follower -> YAML lines of its rule (after leader/follower)
    "fm": ["sizing: multiplier", "multiplier: 0.5", "max_leverage: 10"],
    "fn": ["sizing: fixed_notional", "notional: 1000"],
    "fe": ["sizing: equity_ratio"],
    "fr": ["sizing: multiplier", "multiplier: 1", "reverse: true"],
    "fd": ["sizing: multiplier", "multiplier: 1", "dry_run: true"],
    "fh": ["sizing: multiplier", "multiplier: 1"],
    "fc": ["sizing: multiplier", "multiplier: 1", "daily_loss_limit: 100"],
    "fl": ["sizing: multiplier", "multiplier: 1", "order_type: limit_ioc", "max_slippage_bps: 50"],
}

# (side, type, origQty, price or None, reduceOnly, positionSide) per follower, in order.
M, L = "MARKET", "LIMIT"
WANT = {
    "fm": [("BUY", M, "0.05", None, False, "BOTH"), ("BUY", M, "0.025", None, False, "BOTH"),
           ("SELL", M, "0.075", None, True, "BOTH")],
    "fn": [("BUY", M, "0.02", None, False, "BOTH"), ("BUY", M, "0.02", None, False, "BOTH"),
           ("SELL", M, "0.04", None, True, "BOTH")],
    "fe": [("BUY", M, "0.025", None, False, "BOTH"), ("BUY", M, "0.012", None, False, "BOTH"),
           ("SELL", M, "0.037", None, True, "BOTH")],
    "fr": [("SELL", M, "0.1", None, False, "BOTH"), ("SELL", M, "0.05", None, False, "BOTH"),
           ("BUY", M, "0.15", None, True, "BOTH")],
    "fd": [],
    "fh": [("BUY", M, "0.1", None, False, "LONG"), ("BUY", M, "0.05", None, False, "LONG"),
           ("SELL", M, "0.15", None, False, "LONG")],
    "fc": [("BUY", M, "0.1", None, False, "BOTH"), ("SELL", M, "0.1", None, True, "BOTH")],
    "fl": [("BUY", L, "0.1", "50250", False, "BOTH"), ("BUY", L, "0.05", "50250", False, "BOTH"),
           ("SELL", L, "0.15", "49750", True, "BOTH")],
}
WANT_SKIPS = {"fd": ["dry_run", "dry_run", "no_follower_position"], "fc": ["rule_close_only"]}
WANT_LEVERAGE = {"fm": 10, "fn": 50, "fr": 50, "fh": 50, "fc": 20, "fd": 20}


def norm(x):
    """Decimal text without trailing zeros ("50250.0" -> "50250")."""
    if x is None:
        return None
    s = str(x)
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    args = ap.parse_args()
    pg = fresh_database(require_env("CT_TEST_PG"), "modes")
    redis, tmp = require_env("CT_TEST_REDIS"), require_env("CT_TEST_TMP")
    work = os.path.join(tmp, "modes")
    os.makedirs(os.path.join(work, "secrets"), exist_ok=True)
    names = ["lead", *RULES]
    accounts = make_accounts(os.path.join(work, "secrets"), names, "00112233", "44556677",
                             extra={"fe": {"balance": "250000"}, "fh": {"position_mode": "hedge"}})
    sim = Sim(args.build_dir, work, accounts, [BTC_SYMBOL])
    daemon = None
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        config = daemon_config(port, pg, redis, sim, names,
                               [(f"{f}-r", "lead", f, lines) for f, lines in RULES.items()],
                               daemon_extra=FAST_REFRESH_YAML)
        daemon = Daemon(args.build_dir, work, config)
        wait_http_ok("daemon /health/live", base, "/health/live")
        wait_for("leader stream", lambda: sim.streams("lead")["connections"] >= 1)

        def metrics():
            return fetch_metrics(base)

        def count_orders():
            return {f: len(sim.orders(f)) for f in RULES}

        # 1. Open. Wait for the copies so the equity drop below lands on a known position.
        sim.leader_order("lead", "BTCUSDT", "BUY", "0.1")
        wait_for("first copies", lambda: all(count_orders()[f] >= min(1, len(WANT[f])) for f in RULES))
        # 2. fc loses 2,000 of equity: its daily-loss stop (100) must trip.
        sim._json("POST", "/admin/balance", {"account": "fc", "balance": "998000"})
        wait_for("fc's rule in close_only", lambda: metric(metrics(), "ct_rule_status", rule="fc-r") == 2)
        if metric(metrics(), "ct_rule_status", rule="fm-r") != 0:
            raise TestFailure("fm's rule left active state")
        # 3. Add, 4. leverage, 5. full close.
        sim.leader_order("lead", "BTCUSDT", "BUY", "0.05")
        wait_for("second copies", lambda: all(count_orders()[f] >= min(2, len(WANT[f])) for f in RULES
                                              if f != "fc"))
        sim._json("POST", "/admin/leverage", {"account": "lead", "symbol": "BTCUSDT", "leverage": 50})
        sim.leader_order("lead", "BTCUSDT", "SELL", "0.15")
        wait_for("every copy", lambda: all(count_orders()[f] >= len(WANT[f]) for f in RULES))
        wait_for("journal settled", lambda: journal_settled(pg))

        def leverage(f):
            for p in sim._json("GET", f"/admin/positions?account={f}&all=1"):
                if p["symbol"] == "BTCUSDT":
                    return int(p["leverage"])
            return None
        wait_for("leverages copied", lambda: all(leverage(f) == v for f, v in WANT_LEVERAGE.items()))
        # The same leverage again: every follower is known to be at its value already (its table,
        # loaded at start-up and kept on each change the daemon made), so nothing is sent.
        def lev_results():
            m = metrics()
            return {r: metric(m, "ct_leverage_changes_total", result=r) for r in ("set", "failed", "skipped")}
        l0 = lev_results()
        sim._json("POST", "/admin/leverage", {"account": "lead", "symbol": "BTCUSDT", "leverage": 50})
        wait_for("the repeated leverage judged by every rule",
                 lambda: sum(lev_results().values()) >= sum(l0.values()) + len(RULES))
        l1 = lev_results()
        if l1["set"] != l0["set"] or l1["failed"] != l0["failed"] or l1["skipped"] != l0["skipped"] + len(RULES):
            raise TestFailure(f"repeated leverage 50: leverage changes {l0} -> {l1}, want only "
                              f"{len(RULES)} more skipped")
        if not all(leverage(f) == v for f, v in WANT_LEVERAGE.items()):
            raise TestFailure("a follower's leverage changed on the repeat")

        for f in RULES:
            got = [(o["side"], o["type"], o["origQty"], norm(o.get("price")) if o["type"] == L else None,
                    bool(o["reduceOnly"]), o.get("positionSide") or "BOTH") for o in sim.orders(f)]
            if got != WANT[f]:
                raise TestFailure(f"{f}: orders differ\n got:  {got}\n want: {WANT[f]}")
            bad = [o for o in sim.orders(f) if o["status"] != "FILLED"]
            if bad:
                raise TestFailure(f"{f}: orders not filled: {bad}")
            left = [p for p in sim.positions(f) if float(p["positionAmt"]) != 0]
            if left:
                raise TestFailure(f"{f}: position left after the leader closed: {left}")
            skips = [r[0] for r in psql(pg, f"select skip_reason from follower_orders where follower='{f}' "
                                            "and status='skipped' order by id")]
            if skips != WANT_SKIPS.get(f, []):
                raise TestFailure(f"{f}: journal skips {skips}, want {WANT_SKIPS.get(f, [])}")
            sent = psql(pg, f"select count(*) from follower_orders where follower='{f}' and status='filled'")
            if sent != [[str(len(WANT[f]))]]:
                raise TestFailure(f"{f}: journal has {sent} filled orders, want {len(WANT[f])}")
        m = metrics()
        if metric(m, "ct_copy_skips_total", reason="dry_run") != 2:
            raise TestFailure("dry_run skips not counted")
        if metric(m, "ct_rule_stops_total") != 1:
            raise TestFailure("loss stop not counted once")
        # The stop is in the journal, and a restart keeps the rule stopped.
        wait_for("close_only journaled", lambda: psql(
            pg, "select status from copy_rules where id = 'fc-r'") == [["close_only"]])
        if daemon.stop() != 0:
            raise TestFailure("daemon exited non-zero")
        daemon = Daemon(args.build_dir, work, config)
        wait_http_ok("restarted daemon", base, "/health/live")
        if metric(metrics(), "ct_rule_status", rule="fc-r") != 2:
            raise TestFailure("fc's rule is not close_only after a restart")
        if metric(metrics(), "ct_rule_status", rule="fm-r") != 0:
            raise TestFailure("fm's rule is not active after a restart")
        print("ok: 8 followers, every sizing mode, reverse, dry run, hedge, close_only (kept across a "
              "restart), limit_ioc, leverage")
        if daemon.stop() != 0:
            raise TestFailure("daemon exited non-zero")
        daemon = None
    except TestFailure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        if daemon:
            print("--- daemon log tail:\n" + daemon.p.tail(80), file=sys.stderr)
        return 1
    finally:
        if daemon and daemon.p.alive():
            daemon.p.stop(timeout=5)
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
