#!/usr/bin/env python3
"""Restarts while the leader trades (with-services: real PostgreSQL and Redis, the simulator): what
happens at the seams of a restart, where the start-up position snapshot, the start-up backfill and
the live stream meet. One leader, one Binance follower x1; the leader trades BUY, BUY, SELL 0.002
through the stop and the restart; each scenario ends with the fault suite's check.

  bybit_spool       a Bybit leader, the journal with a spool_dir, SIGTERM and a restart. Bybit
                    fills carry no sequence number, so the start-up backfill fetches from the last
                    journaled fill's time on (that fill included) and relies on the journal's
                    unique key to drop what an earlier run took.
  bybit_kill9       the same without a spool, kill -9 and a restart, the leader trading every 50 ms
                    (a fill from the stream may arrive while the re-fetched one is still being
                    journaled).
  slow_positions    a Binance leader, kill -9 and a restart with the leader's start-up position
                    answer held back 300 ms by the simulator (a latency fault after handling) while
                    the leader trades: fills made while the answer is on its way are not in the
                    snapshot, whatever the daemon's clock says when it reads it."""

import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from harness import CopyScenario, require_env, scenarios_main, wait_for  # noqa: E402
from outage import Ticker, check  # noqa: E402


def restart_while_trading(build_dir, name, leader_ex, sig, tick_s, spool=False, slow_positions_ms=0):
    daemon_yaml = ""
    if spool:
        d = os.path.join(require_env("CT_TEST_TMP"), name + "-spool")
        os.makedirs(d, mode=0o700, exist_ok=True)
        os.chmod(d, 0o700)
        daemon_yaml = f"  spool_dir: {d}\n"
    with CopyScenario(build_dir, name, [("lead", leader_ex), ("f1", "binance-usdm")], [("f1-r", "lead", "f1", 1)],
                      daemon_yaml=daemon_yaml) as sc:
        sc.wait_ready()
        ticker = Ticker(sc.sim, "lead", tick_s)
        ticker.start()
        try:
            wait_for(f"{name}: copies flowing", lambda: len(sc.sim.orders("f1")) >= 5 or ticker.error, timeout=20,
                     interval=0.02)
            rc = sc.daemon.p.stop(sig)  # one signal: a second SIGTERM means "exit now" (exit 1)
            check(sig == signal.SIGKILL or rc == 0, f"{name}: exit {rc} after SIGTERM")
            if slow_positions_ms:
                sc.sim.fault("latency", account="lead", endpoint="GET /fapi/v2/positionRisk", ms=slow_positions_ms,
                             count=1)
            sc.restart()
            sc.wait_ready(timeout=60)
            n = ticker.n
            wait_for(f"{name}: ten fills after the restart", lambda: ticker.n >= n + 10 or ticker.error, timeout=20,
                     interval=0.02)
        finally:
            ticker.stop()
        s = sc.check_exactly_once(ticker.fills["lead"], what="the end check")
        return f"{s['fills']} leader fills, {s['orders']} follower orders exactly once"


def scenarios(b):
    return [
        ("bybit_spool", lambda: restart_while_trading(b, "rr_by_spool", "bybit-linear", signal.SIGTERM, 0.2,
                                                      spool=True)),
        ("bybit_kill9", lambda: restart_while_trading(b, "rr_by_kill9", "bybit-linear", signal.SIGKILL, 0.05)),
        ("slow_positions", lambda: restart_while_trading(b, "rr_slowpos", "binance-usdm", signal.SIGKILL, 0.05,
                                                         slow_positions_ms=300)),
    ]


if __name__ == "__main__":
    sys.exit(scenarios_main("test_restart_races", scenarios))
