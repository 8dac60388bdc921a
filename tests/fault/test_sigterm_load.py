#!/usr/bin/env python3
"""SIGTERM under load (with-services: real PostgreSQL and Redis, the simulator). test_systemd.py
(tests/integration) checks the notify protocol of a stop (STOPPING=1, STATUS=draining, exit 0)
with nothing in flight; this is the fault: a stop while follower orders are in flight and queued.

One Binance leader copied x1 by three Binance followers and one Bybit follower; the leader
trades BUY, BUY, SELL 0.002 every 100 ms for the whole scenario (through the stop and the
restart); every follower order answers late (a simulator latency fault after placement), so
orders are in flight and queued when SIGTERM comes. The daemon's drain bound is the daemon
section's drain_timeout_ms (daemon/config.h: on SIGTERM, the longest wait for orders in flight
and the journal before exiting; daemon/main.c on_signal -> copier_drain).

  drain     answers 150 ms late, drain_timeout_ms 4000: the drain finishes inside the bound
            ("drained; flushing the journal", no "drain deadline passed"), the journal is
            flushed, exit 0 within the bound (+ a margin for the flush and the teardown). What the
            drain promises is checked in the journal right after the exit: no order left 'sent' or
            'unknown' (every request in flight got its answer recorded), and every order still
            'intent' (queued, never sent) is absent from the simulator.
  deadline  answers 5 s late, drain_timeout_ms 1000: the bound passes with orders in flight
            ("drain deadline passed with N orders in flight"), exit 0 within the bound (+ margin).
Then both restart with the fault cleared (start-up reconciliation of the open orders by client id,
backfill of the fills made while down) and end with the fault suite's check: every order the rules
call for exactly once at the simulator, the journal agreeing."""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from harness import CopyScenario, TestFailure, psql, scenarios_main, wait_for  # noqa: E402
from outage import Ticker, check  # noqa: E402

TICK_S = 0.1
FOLLOWERS = [("f1", "binance-usdm"), ("f2", "binance-usdm"), ("f3", "binance-usdm"), ("fy", "bybit-linear")]
ORDER_EP = {"binance-usdm": "POST /fapi/v1/order", "bybit-linear": "POST /v5/order/create"}
# Beyond the drain bound: the journal's final flush and the teardown (ASan builds are slow).
EXIT_MARGIN_S = 5.0


def sigterm_under_load(build_dir, name, latency_ms, drain_ms, expect_deadline):
    accounts = [("lead", "binance-usdm")] + FOLLOWERS
    rules = [(f"{f}-r", "lead", f, 1) for f, _ in FOLLOWERS]
    with CopyScenario(build_dir, name, accounts, rules, daemon_yaml=f"  drain_timeout_ms: {drain_ms}\n") as sc:
        sc.wait_ready()
        for ex in sorted({ex for _, ex in FOLLOWERS}):
            sc.sim.fault("latency", account="*", endpoint=ORDER_EP[ex], ms=latency_ms)
        ticker = Ticker(sc.sim, "lead", TICK_S)
        ticker.start()
        try:
            # Load: orders placed (their answers held back) on every follower before the stop.
            wait_for(f"{name}: orders placed on every follower",
                     lambda: all(len(sc.sim.orders(f)) >= (3 if latency_ms < 1000 else 1) for f, _ in FOLLOWERS),
                     timeout=30, interval=0.05)
            at_stop = sum(len(sc.sim.orders(f)) for f, _ in FOLLOWERS)
            n_stop = ticker.n
            t0 = time.monotonic()
            sc.daemon.p.proc.send_signal(signal.SIGTERM)
            try:
                rc = sc.daemon.p.proc.wait(drain_ms / 1000 + EXIT_MARGIN_S)
            except subprocess.TimeoutExpired:
                raise TestFailure(f"{name}: no exit within {drain_ms / 1000 + EXIT_MARGIN_S:.1f} s of SIGTERM "
                                  f"(drain_timeout_ms {drain_ms})") from None
            took = time.monotonic() - t0
            sc.daemon.p.stop()  # closes its log
            log = sc.log()
            check(rc == 0, f"{name}: exit {rc} after SIGTERM")
            check(f"draining (at most {drain_ms} ms)" in log, f"{name}: the log does not announce the drain bound")
            check("journal: flushed" in log, f"{name}: the journal was not flushed before the exit")
            for bad in ("AddressSanitizer", "runtime error", "LeakSanitizer"):
                check(bad not in log, f"{name}: {bad} in the daemon's log")
            if expect_deadline:
                check("drain deadline passed" in log, f"{name}: the drain did not run into its bound "
                                                      f"(answers {latency_ms} ms late, bound {drain_ms} ms)")
                outcome = log[log.index("drain deadline passed"):].split("\n")[0]
            else:
                check("drained; flushing the journal" in log and "drain deadline passed" not in log,
                      f"{name}: the drain did not finish inside its bound")
                # The drain's promise, in the journal: nothing in flight left unanswered; what is
                # still 'intent' was queued and never sent.
                rows = psql(sc.pg, "select client_order_id, follower, status from follower_orders "
                                   "where status in ('intent', 'sent', 'unknown')")
                inflight = [r for r in rows if r[2] != "intent"]
                check(not inflight, f"{name}: orders left without their answer after a completed drain: {inflight[:5]}")
                placed = {o["clientOrderId"] for f, _ in FOLLOWERS for o in sc.sim.orders(f)}
                sent = [r for r in rows if r[0] in placed]
                check(not sent, f"{name}: orders journaled 'intent' (never sent) exist at the simulator: {sent[:5]}")
                outcome = f"drained, {len(rows)} queued orders left as 'intent'"
            open_rows = int(psql(sc.pg, "select count(*) from follower_orders where status in "
                                        "('intent', 'sent', 'unknown', 'acked', 'partially_filled')")[0][0])

            # Restart with the fault cleared; the leader still trading.
            sc.sim.clear_faults()
            down_fills = ticker.n - n_stop
            sc.restart()
            sc.wait_ready(timeout=60)
            check(f"reconciling {open_rows} orders" in sc.log() if open_rows else True,
                  f"{name}: the restart did not reconcile the {open_rows} open orders")
            n1 = ticker.n
            wait_for(f"{name}: a second of trading after the restart", lambda: ticker.n >= n1 + 10 or ticker.error,
                     timeout=10, interval=0.05)
        finally:
            ticker.stop()
        s = sc.check_exactly_once(ticker.fills["lead"], timeout=60, what="the end check")
        return (f"SIGTERM with {at_stop} orders placed, {n_stop} leader fills made: exit 0 after {took:.2f} s "
                f"(bound {drain_ms / 1000:.1f} s): {outcome}; {open_rows} open orders reconciled at the restart, "
                f"{down_fills} fills made while stopping or down; {s['fills']} leader fills, {s['orders']} "
                f"follower orders exactly once")


def scenarios(b):
    return [("drain", lambda: sigterm_under_load(b, "term_drain", 150, 4000, False)),
                 ("deadline", lambda: sigterm_under_load(b, "term_deadline", 5000, 1000, True))]


if __name__ == "__main__":
    sys.exit(scenarios_main("test_sigterm_load", scenarios))
