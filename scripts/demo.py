#!/usr/bin/env python3
"""The demo: one leader, three followers (multipliers 1, 0.5, 0.013) on the simulator; the leader's
scripted trades are copied by copytraderd; prints orders, positions, journal and metrics."""

import argparse
import os
import subprocess
import sys

top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(top, "tests", "integration"))
from harness import (Daemon, Sim, free_port, http, metric, parse_metrics, psql, require_env,  # noqa: E402
                     wait_for, write_secret)
from test_e2e import FOLLOWERS, SYMBOLS, TRADES  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=os.path.join(top, "build"))
    args = ap.parse_args()
    pg, redis, tmp = require_env("CT_TEST_PG"), require_env("CT_TEST_REDIS"), require_env("CT_TEST_TMP")
    accounts = [{"name": n, "api_key": f"demo-key-{n}", "api_secret": f"demo-secret-{n}-0123456789",
                 "balance": "1000000"} for n in ["leader", *FOLLOWERS]]
    sim = Sim(args.build_dir, tmp, accounts, SYMBOLS)
    print(f"simulator: REST {sim.rest_url}, admin {sim.admin}")
    os.makedirs(os.path.join(tmp, "secrets"), exist_ok=True)
    for a in accounts:
        write_secret(os.path.join(tmp, "secrets"), a)
    port = free_port()
    config = (f"daemon:\n  http_listen: 127.0.0.1:{port}\n  database: \"{pg}\"\n  redis: {redis}\n"
              "accounts:\n" + "".join(
                  f"  - name: {a['name']}\n    exchange: binance-usdm\n    rest_url: {sim.rest_url}\n"
                  f"    ws_url: {sim.ws_url}\n    secret_file: secrets/{a['name']}.yaml\n" for a in accounts)
              + "copy_rules:\n" + "".join(
                  f"  - id: {f}-copies-leader\n    leader: leader\n    follower: {f}\n"
                  f"    sizing: multiplier\n    multiplier: {m}\n" for f, m in FOLLOWERS.items()))
    daemon = Daemon(args.build_dir, tmp, config)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for("copytraderd up", lambda: http("GET", base + "/health/live")[0] == 200)
        wait_for("leader stream connected", lambda: sim.streams("leader")["connections"] >= 1)
        print(f"copytraderd: metrics on {base}/metrics\n\nleader trades:")
        for sym, side, qty, price in TRADES:
            if price:
                sim.set_price(sym, price)
            o = sim.leader_order("leader", sym, side, qty)
            print(f"  {side:4} {qty:>6} {sym} filled at {o.get('avgPrice')}")
        wait_for("copies settled", lambda: psql(
            pg, "select count(*) from follower_orders where status in ('intent','sent')") == [["0"]]
            and len(psql(pg, "select 1 from leader_fills")) == len(TRADES), timeout=30)
        for f in FOLLOWERS:
            print(f"\n{f} (multiplier {FOLLOWERS[f]}): orders received by the simulator")
            for o in sim.orders(f):
                ro = " reduce-only" if o["reduceOnly"] else ""
                print(f"  {o['side']:4} {o['origQty']:>6} {o['symbol']}{ro:12} {o['status']:8} {o['clientOrderId']}")
            print("  positions: " + (", ".join(f"{p['symbol']} {p['positionAmt']}" for p in sim.positions(f)
                                               if float(p["positionAmt"]) != 0) or "flat"))
        print("\njournal: follower orders by status and skip reason")
        for row in psql(pg, "select status, coalesce(skip_reason,''), count(*) from follower_orders "
                            "group by 1,2 order by 1,2"):
            print(f"  {row[0]:8} {row[1]:22} {row[2]}")
        _, text = http("GET", base + "/metrics")
        m = parse_metrics(text)
        print("\ncopy latency (mean over every follower order; the ten trades are fired back to back, so this includes\n"
              "waiting behind earlier orders of the same follower and symbol; daemon, simulator, PostgreSQL share 2 cores):")
        for name, what in [("ct_copy_send_latency_seconds", "leader frame received -> order request sent"),
                           ("ct_copy_ack_latency_seconds", "leader frame received -> order answered"),
                           ("ct_copy_e2e_latency_seconds", "leader trade at the exchange -> order answered")]:
            n = metric(m, name + "_count")
            if n:
                print(f"  {what}: {metric(m, name + '_sum') / n * 1e6:.0f} us over {int(n)} orders")
        print("\npositions published to Redis (the positions cache, shared by daemons):")
        sock = redis.split(":", 1)[1]
        keys = subprocess.run(["redis-cli", "-s", sock, "--scan", "--pattern", "ct:positions:*"],
                              capture_output=True, text=True).stdout.split()
        for k in sorted(keys):
            v = subprocess.run(["redis-cli", "-s", sock, "GET", k], capture_output=True, text=True).stdout.strip()
            print(f"  {k} = {v}")
        print("\nmetrics (excerpt):")
        for line in text.splitlines():
            if line.startswith(("ct_leader_fills", "ct_follower_orders_total", "ct_copy_skips_total")) \
                    and not line.endswith(" 0"):
                print("  " + line)
    finally:
        daemon.stop()
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
