#!/usr/bin/env python3
"""Cross-exchange copying through the daemon (real PostgreSQL and Redis from with-services, the
simulator speaking Binance USD-M and Bybit v5 linear on one port).

Two scenarios, each with its own simulator, database and daemon:
  bybit -> binance   leader `lb` (bybit-linear, ws <sim>/v5/private) copied x2 by `fb` (binance-usdm)
  binance -> bybit   leader `la` (binance-usdm, ws <sim>) copied x2 by `fy` (bybit-linear)
The leader opens 0.010 in two fills (0.004 + 0.006), adds 0.006 (the test checks the follower holds
twice the leader), closes 0.004 (a ratio close) and then the rest, 0.012, in two fills (0.005 +
0.007). Asserts: the follower received exactly the six orders a model of the multiplier rule calls
for (symbol, side, exact quantity, reduce-only on the closes, in order), each client id once, all
FILLED; the journal has the six leader fills once each and one 'filled' follower order per fill with
the simulator's client ids; the follower is flat at the end like the leader."""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import CopyScenario, TestFailure, multiplier_copies  # noqa: E402

K = 2


def run(build_dir, name, leader, leader_ex, follower, follower_ex):
    t0 = time.monotonic()
    with CopyScenario(build_dir, name, [(leader, leader_ex), (follower, follower_ex)],
                      [(f"{follower}-r", leader, follower, K)], daemon_yaml="  account_refresh_ms: 500\n") as sc:
        sc.wait_ready()
        fills = []
        fills += sc.trade(leader, "BUY", "0.010", fills=["0.004", "0.006"])  # open, two fills
        fills += sc.trade(leader, "BUY", "0.006")                             # add
        want = multiplier_copies(fills, K)
        sc.wait_decided(follower, len(want))
        sc.check_positions(leader, follower, K)
        try:
            sc.check_copies(leader, follower, want, len(fills))
        except TestFailure as e:  # go on: the closes below show whether the sizes stay right
            first = e
        else:
            first = None

        fills += sc.trade(leader, "SELL", "0.004")                            # partial close (25 %)
        fills += sc.trade(leader, "SELL", "0.012", fills=["0.005", "0.007"])  # close the rest, two fills
        want = multiplier_copies(fills, K)
        sc.wait_decided(follower, len(want))
        sc.check_copies(leader, follower, want, len(fills))
        sc.check_positions(leader, follower, K)
        if any(float(p["positionAmt"]) != 0 for p in sc.sim.positions(follower)):
            raise TestFailure(f"{name}: {follower} not flat after the leader closed: {sc.sim.positions(follower)}")
        if first:
            raise first
        if sc.metric("ct_follower_orders_total", follower=follower, result="filled") != len(want):
            raise TestFailure(f"{name}: ct_follower_orders_total{{result=filled}} is not {len(want)}")
        if sc.metric("ct_leader_fills_total", leader=leader) != len(fills):
            raise TestFailure(f"{name}: ct_leader_fills_total is not {len(fills)}")
    print(f"ok {name}: {len(fills)} leader fills -> {len(want)} follower orders, once each "
          f"({time.monotonic() - t0:.1f} s)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    args = ap.parse_args()
    failures = []
    for name, lead, lead_ex, fol, fol_ex in [("xex_by_bn", "lb", "bybit-linear", "fb", "binance-usdm"),
                                             ("xex_bn_by", "la", "binance-usdm", "fy", "bybit-linear")]:
        try:
            run(args.build_dir, name, lead, lead_ex, fol, fol_ex)
        except TestFailure as e:
            print(f"FAIL {name}: {e}", file=sys.stderr)
            failures.append(name)
    if failures:
        print(f"FAIL test_cross_exchange: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
