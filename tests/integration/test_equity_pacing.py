#!/usr/bin/env python3
"""Followers' equity refreshes are paced within half of Binance's IP weight budget (copier_cache.c,
the equity pacer; refresh_pace.h), and every follower still gets its turn.

20 Binance followers, account_refresh_ms 200 and cache_ttl_balances_ms 1000: unpaced, that is up to
100 account requests a second (every follower stale every second, looked at 5 times a second),
20 times the 4 a second the pacing allows (2,400 weight a minute, half of it, weight 5 each). After
the followers' state is in, every follower's balance changes on the simulator; the test waits until
Redis (ct:balances:<follower>, written by each refresh) shows every follower's new equity, then
checks how many account requests the daemon made meanwhile: at most the paced rate (plus one
leader refreshed whenever stale, and two ticks of banked credit), while every follower was
refreshed at least once.
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import CopyScenario, TestFailure, wait_for  # noqa: E402

N = 20
PACED_PER_S = 2400 / 5 * 0.5 / 60  # refresh_equity's budget, Binance


def redis_get(key):
    sock = harness.require_env("CT_TEST_REDIS").split(":", 1)[1]
    out = subprocess.run(["redis-cli", "-s", sock, "--raw", "GET", key], capture_output=True,
                         text=True, timeout=10)
    return out.stdout.strip()


def account_requests(sc):
    return harness.metric(sc.metrics(), "ct_rest_responses_total", endpoint="GET /fapi/v3/account")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir")
    a = ap.parse_args()
    tag = f"eqp{os.getpid()}"
    leader = f"{tag}l"
    followers = [f"{tag}f{i:02d}" for i in range(N)]
    accounts = [(leader, "binance-usdm")] + [(f, "binance-usdm") for f in followers]
    rules = [(f"r{i}", leader, f, 1) for i, f in enumerate(followers)]
    with CopyScenario(a.build_dir, tag, accounts, rules,
                      daemon_yaml="  account_refresh_ms: 200\n  cache_ttl_balances_ms: 1000\n") as sc:
        sc.wait_ready()
        wait_for("followers' state loaded",
                 lambda: json.loads(harness.http("GET", sc.base + "/health/ready")[1]).get("followers_loading") == 0,
                 timeout=60, interval=0.1)
        if account_requests(sc) == 0:
            raise TestFailure("no account requests counted: is the endpoint label still 'GET /fapi/v3/account'?")
        r0, t0 = account_requests(sc), time.monotonic()
        for i, f in enumerate(followers):
            sc.sim._json("POST", "/admin/balance", {"account": f, "balance": f"{2000000 + i}"})
        seen = set()

        def all_refreshed():
            for i, f in enumerate(followers):
                if f in seen:
                    continue
                v = redis_get(f"ct:balances:{f}")
                if v and json.loads(v).get("wallet", "").split(".")[0] == f"{2000000 + i}":
                    seen.add(f)
            return len(seen) == N

        wait_for("every follower's new equity in Redis", all_refreshed, timeout=60, interval=0.05)
        dt = time.monotonic() - t0
        made = account_requests(sc) - r0
        # the leader whenever stale (at most once a second with a 1 s TTL), the paced followers,
        # two ticks' credit banked, and one answer in flight per side at either end
        bound = dt * (PACED_PER_S + 1.0) + 2 * PACED_PER_S * 0.2 + 4
        print(f"{N} followers refreshed in {dt:.1f} s with {made:.0f} account requests "
              f"(paced bound {bound:.0f}; unpaced would be ~{N * dt:.0f})")
        if made > bound:
            raise TestFailure(f"{made:.0f} account requests in {dt:.1f} s: more than the paced {bound:.0f}")
        if "equity refreshes paced" not in sc.log():
            raise TestFailure("no 'equity refreshes paced' warning in the daemon's log")
    print("ok")


if __name__ == "__main__":
    try:
        main()
    except TestFailure as e:
        print(f"FAIL: {e}")
        sys.exit(1)
