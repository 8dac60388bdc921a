#!/usr/bin/env python3
"""PostgreSQL down while the leader trades: copying goes on through the journal's local spool, and
the spool is replayed into PostgreSQL exactly once when it is back (DESIGN.md invariant 7).

The test runs its OWN throwaway PostgreSQL cluster (harness.PrivatePostgres: a unix socket in a
directory under CT_TEST_TMP), never the shared one of with-services, plus the simulator and the
daemon with `spool_dir` set. One leader, three followers (multiplier 1). The leader trades every
100 ms for the whole test; PostgreSQL is stopped (`pg_ctl stop -m fast`) for 5 s, then started.
Asserted:
  - copying never paused: every follower order of a leader fill made during the outage (and during
    the replay after it) reached the simulator within MAX_DELAY_MS of the leader's trade (simulator
    order time minus the leader's order time, both the simulator's clock);
  - /health/ready answered 200 throughout, with "journal":"spool" while PostgreSQL was away;
  - ct_journal_spooling went 1, then back to 0, and ct_journal_spool_records drained to 0;
  - afterwards the journal is complete and has no duplicates: every leader fill once in
    leader_fills, every follower order at the simulator once in follower_orders with a final
    status matching the simulator's, no client id twice at the simulator, and each follower's
    position equals the leader's.
A daemon restart while PostgreSQL is down is out of scope (start-up migrates the journal)."""

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BTC_SYMBOL, Daemon, PrivatePostgres, Sim, TestFailure, free_port, http,  # noqa: E402
                     metric, parse_metrics, psql, require_env, stop_clean, wait_for, write_secret)

LEADER = "pgo-lead"
FOLLOWERS = ["pgo-f1", "pgo-f2", "pgo-f3"]
TICK_S = 0.1          # one leader fill every 100 ms
OUTAGE_S = 5.0        # PostgreSQL away this long
MAX_DELAY_MS = 2000   # leader trade -> follower order at the simulator, during the outage and replay
MIN_OUTAGE_FILLS = 20  # the outage must have seen real trading for the test to prove anything


def check(cond, what):
    if not cond:
        raise TestFailure(what)


class Ticker(threading.Thread):
    """The leader trades BUY, BUY, SELL 0.002 BTCUSDT (opens, adds, 50% / 33% ratio closes) every
    TICK_S until stopped; a failed leader order stops it with the error kept."""

    def __init__(self, sim):
        super().__init__(daemon=True)
        self.sim, self.n, self.error = sim, 0, None
        self.halt = threading.Event()

    def run(self):
        t0 = time.monotonic()
        while not self.halt.is_set():
            try:
                o = self.sim.leader_order(LEADER, "BTCUSDT", "BUY" if self.n % 3 != 2 else "SELL", "0.002")
                if o.get("status") != "FILLED":
                    raise TestFailure(f"leader order not filled: {o}")
            except Exception as e:  # noqa: BLE001 (kept and raised by the main thread)
                self.error = e
                return
            self.n += 1
            self.halt.wait(max(0.0, t0 + self.n * TICK_S - time.monotonic()))

    def stop(self):
        self.halt.set()
        self.join(10)
        if self.error:
            raise TestFailure(f"leader trading failed: {self.error!r}")


class Sampler(threading.Thread):
    """Polls /health/ready and /metrics every 50 ms, keeping (wall time, HTTP status, "journal"
    field, the journal gauges). A request that fails is kept as status None."""

    def __init__(self, base):
        super().__init__(daemon=True)
        self.base, self.samples = base, []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            t = time.time()
            s = {"t": t, "status": None, "journal": None}
            try:
                st, body = http("GET", self.base + "/health/ready", timeout=2)
                s["status"] = st
                s["journal"] = json.loads(body).get("journal")
                st, text = http("GET", self.base + "/metrics", timeout=2)
                m = parse_metrics(text)
                for k in ("ct_journal_spooling", "ct_journal_spool_records", "ct_journal_up",
                          "ct_journal_lag_seconds"):
                    s[k] = metric(m, k)
            except (OSError, ValueError, TestFailure) as e:
                s["error"] = repr(e)
            self.samples.append(s)
            self.halt.wait(0.05)

    def stop(self):
        self.halt.set()
        self.join(10)

    def between(self, t0, t1):
        return [s for s in self.samples if t0 <= s["t"] <= t1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    args = ap.parse_args()
    redis, tmp = require_env("CT_TEST_REDIS"), require_env("CT_TEST_TMP")
    work = os.path.join(tmp, "pg_outage")
    secrets, spool = os.path.join(work, "secrets"), os.path.join(work, "spool")
    os.makedirs(secrets, exist_ok=True)
    os.makedirs(spool, mode=0o700, exist_ok=True)
    os.chmod(spool, 0o700)
    accounts = []
    for n in [LEADER, *FOLLOWERS]:
        a = {"name": n, "api_key": f"key-{n}-0123456789", "api_secret": f"secret-{n}-9876543210",
             "balance": "10000000"}
        accounts.append(a)
        write_secret(secrets, a)

    pgs = PrivatePostgres(work, "pg")
    sim = daemon = ticker = sampler = None
    try:
        sim = Sim(args.build_dir, work, accounts, [BTC_SYMBOL])
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cfg = (f"daemon:\n  http_listen: 127.0.0.1:{port}\n  database: \"{pgs.conninfo}\"\n  redis: {redis}\n"
               f"  spool_dir: {spool}\n"
               "accounts:\n" + "".join(
                   f"  - name: {n}\n    exchange: binance-usdm\n    rest_url: {sim.rest_url}\n"
                   f"    ws_url: {sim.ws_url}\n    secret_file: secrets/{n}.yaml\n" for n in [LEADER, *FOLLOWERS])
               + "copy_rules:\n" + "".join(
                   f"  - id: {f}-r\n    leader: {LEADER}\n    follower: {f}\n    sizing: multiplier\n"
                   "    multiplier: 1\n" for f in FOLLOWERS))
        daemon = Daemon(args.build_dir, work, cfg)

        def ready():
            st, body = http("GET", base + "/health/ready", timeout=2)
            return json.loads(body) if st == 200 else None
        r = wait_for("daemon ready", ready, timeout=40, interval=0.05)
        check(r.get("journal") == "up", f"/health/ready before the outage: {r}")

        def n_orders(f):
            return len(sim.orders(f))

        sampler = Sampler(base)
        sampler.start()
        ticker = Ticker(sim)
        ticker.start()
        wait_for("copies flowing before the outage", lambda: all(n_orders(f) >= 10 for f in FOLLOWERS),
                 timeout=20, interval=0.05)

        # PostgreSQL away for OUTAGE_S while the leader trades on.
        t_stop = time.time()
        pgs.stop("fast")
        t_down = time.time()

        def journal_field():
            st, body = http("GET", base + "/health/ready", timeout=2)
            return json.loads(body).get("journal") if st == 200 else f"HTTP {st}: {body}"
        seen = []
        try:
            wait_for("/health/ready says journal spool", lambda: seen.append(journal_field()) or seen[-1] == "spool",
                     timeout=5, interval=0.02)
        except TestFailure as e:
            raise TestFailure(f"{e}; /health/ready journal field: {seen[-1] if seen else None}") from None
        t_spool = time.time()
        time.sleep(max(0.0, t_down + OUTAGE_S - time.time()))  # the outage itself, deliberately
        check(ticker.is_alive(), f"leader trading stopped during the outage: {ticker.error!r}")
        t_start = time.time()
        pgs.start()
        t_up = time.time()

        def drained():
            m = parse_metrics(http("GET", base + "/metrics", timeout=2)[1])
            return (metric(m, "ct_journal_up") == 1 and metric(m, "ct_journal_spooling") == 0
                    and metric(m, "ct_journal_spool_records") == 0)
        wait_for("the spool replayed into PostgreSQL (spooling 0, spool records 0)", drained, timeout=30,
                 interval=0.05)
        t_drained = time.time()
        n_at_drain = ticker.n
        wait_for("a second of trading after the replay", lambda: ticker.n >= n_at_drain + 10, timeout=10,
                 interval=0.05)
        ticker.stop()
        n = ticker.n
        want = n * len(FOLLOWERS)
        wait_for(f"{n} orders per follower at the simulator", lambda: all(n_orders(f) >= n for f in FOLLOWERS),
                 timeout=20, interval=0.05)
        wait_for(f"{want} final follower orders in the journal", lambda: psql(
            pgs.conninfo, "select count(*), count(*) filter (where status in "
                          "('intent','sent','unknown','acked','partially_filled')) from follower_orders")
            == [[str(want), "0"]], timeout=20, interval=0.1)
        sampler.stop()
        m_end = parse_metrics(http("GET", base + "/metrics")[1])

        # 1. The journal against the simulator: complete, no duplicates, same final states.
        lead_orders = sim.orders(LEADER)
        check(len(lead_orders) == n and all(o["status"] == "FILLED" for o in lead_orders),
              f"leader: {len(lead_orders)} orders at the simulator, want {n} filled")
        lead_time = {str(o["orderId"]): o["time"] for o in lead_orders}
        lf = psql(pgs.conninfo, f"select order_id::text, trade_id::text from leader_fills where account = '{LEADER}'")
        check(len(lf) == n, f"leader_fills holds {len(lf)} rows for {n} leader fills")
        check(len({r[1] for r in lf}) == n, "leader_fills: a trade id twice")
        check({r[0] for r in lf} == set(lead_time),
              f"leader_fills order ids differ from the simulator's: missing "
              f"{sorted(set(lead_time) - {r[0] for r in lf})[:10]}, extra {sorted({r[0] for r in lf} - set(lead_time))[:10]}")
        rows = psql(pgs.conninfo, "select o.client_order_id, o.follower, o.status, o.side, o.qty::text, "
                                  "coalesce(o.executed_qty::text, ''), l.order_id::text from follower_orders o "
                                  "join leader_fills l on l.id = o.leader_fill_id")
        jby = {r[0]: r for r in rows}
        check(len(jby) == len(rows), "follower_orders: a client id twice")
        check(len(rows) == want, f"follower_orders holds {len(rows)} rows, want {want}")
        per = Counter((r[1], r[6]) for r in rows)
        check(all(per[(f, oid)] == 1 for f in FOLLOWERS for oid in lead_time),
              "follower_orders: not exactly one order per (follower, leader fill)")
        delays = []  # (leader trade time ms, delay ms)
        for f in FOLLOWERS:
            got = sim.orders(f)
            dup = [c for c, k in Counter(o["clientOrderId"] for o in got).items() if k > 1]
            check(not dup, f"{f}: client ids at the simulator more than once: {dup[:5]}")
            check(len(got) == n, f"{f}: {len(got)} orders at the simulator, want {n}")
            for o in got:
                j = jby.get(o["clientOrderId"])
                check(j is not None and j[1] == f, f"{f}: {o['clientOrderId']} at the simulator, not in the journal")
                check(o["status"] == "FILLED" and not o.get("errorCode") and j[2] == "filled"
                      and Decimal(j[5] or "0") == Decimal(o["origQty"]),
                      f"{f}: {o['clientOrderId']}: simulator {o['status']} {o.get('errorCode')}, journal {j}")
                check(j[3] == o["side"] and Decimal(j[4]) == Decimal(o["origQty"]),
                      f"{f}: {o['clientOrderId']}: journal {j[3]} {j[4]}, simulator {o['side']} {o['origQty']}")
                delays.append((lead_time[j[6]], o["time"] - lead_time[j[6]]))
        lead_pos = sum((Decimal(p["positionAmt"]) for p in sim.positions(LEADER)), Decimal(0))
        for f in FOLLOWERS:
            pos = sum((Decimal(p["positionAmt"]) for p in sim.positions(f)), Decimal(0))
            check(pos == lead_pos, f"{f}: position {pos}, leader {lead_pos}")

        # 2. Copying never paused: delays of the fills made while PostgreSQL was away or replaying.
        ms = lambda t: t * 1000  # noqa: E731
        outage = [d for lt, d in delays if ms(t_stop) <= lt <= ms(t_up)]
        replay = [d for lt, d in delays if ms(t_up) < lt <= ms(t_drained)]
        n_down_fills = sum(1 for lt in lead_time.values() if ms(t_down) <= lt <= ms(t_start))
        check(len(outage) >= MIN_OUTAGE_FILLS * len(FOLLOWERS),
              f"only {len(outage)} follower orders for fills during the outage")
        max_out = max(outage)
        max_rep = max(replay, default=0)
        check(max_out <= MAX_DELAY_MS, f"copying paused during the outage: a follower order {max_out} ms "
                                       f"after its leader fill (bound {MAX_DELAY_MS} ms)")
        check(max_rep <= MAX_DELAY_MS, f"copying paused during the replay: a follower order {max_rep} ms "
                                       f"after its leader fill (bound {MAX_DELAY_MS} ms)")

        # 3. Health and the spool gauges, as sampled every 50 ms.
        before = sampler.between(0, t_stop)
        check(before and all(s["status"] == 200 and s["journal"] == "up" for s in before[-5:]),
              f"before the outage: {before[-5:]}")
        during = sampler.between(t_stop, t_drained)
        bad = [s for s in during if s["status"] != 200]
        check(not bad, f"/health/ready not 200 during the outage or replay: {bad[:5]}")
        down = sampler.between(t_spool, t_start)
        check(len(down) >= 10, f"only {len(down)} samples while PostgreSQL was down")
        bad = [s for s in down if s["journal"] != "spool" or s["ct_journal_spooling"] != 1
               or s["ct_journal_up"] != 0]
        check(not bad, f"while PostgreSQL was down: samples not journal spool / spooling 1 / up 0: {bad[:5]}")
        max_records = max(s.get("ct_journal_spool_records", 0) for s in during)
        max_lag = max(s.get("ct_journal_lag_seconds", 0) for s in during)
        check(max_records > 0, "ct_journal_spool_records never rose above 0 during the outage")
        after = sampler.between(t_drained, time.time())
        check(after and after[-1]["ct_journal_spooling"] == 0 and after[-1]["ct_journal_spool_records"] == 0,
              f"after the replay: {after[-1:]}")
        spooled = metric(m_end, "ct_journal_spooled_fills_total")
        replayed = metric(m_end, "ct_journal_spool_replayed_total")
        check(spooled >= n_down_fills, f"ct_journal_spooled_fills_total {spooled} < {n_down_fills} fills made "
                                       "while PostgreSQL was down")
        check(replayed > 0, "ct_journal_spool_replayed_total is 0")
        for name in ("ct_journal_spool_replay_dropped_total", "ct_journal_spool_errors_total",
                     "ct_journal_fill_failures_total", "ct_copy_journal_failures_total",
                     "ct_journal_results_dropped_total"):
            check(metric(m_end, name) == 0, f"{name} = {metric(m_end, name)}")
        check(metric(m_end, "ct_journal_spooling") == 0 and metric(m_end, "ct_journal_spool_records") == 0,
              "the spool is not empty at the end")

        stop_clean(daemon)
        daemon = None
        all_max = max(d for _, d in delays)
        print(f"ok test_pg_outage: {n} leader fills x {len(FOLLOWERS)} followers exactly once; PostgreSQL down "
              f"{t_start - t_down:.1f} s with {len(outage) // len(FOLLOWERS)} leader fills: max copy delay "
              f"{max_out} ms during the outage, {max_rep} ms during the replay, {all_max} ms overall; "
              f"'spool' reported {t_spool - t_down:.2f} s after the stop; spooled fills {spooled:.0f}, "
              f"max spool records {max_records:.0f}, max journal lag {max_lag:.2f} s, replayed {replayed:.0f} "
              f"records in {t_drained - t_up:.2f} s after PostgreSQL was back")
    except Exception:
        if daemon:
            print("--- daemon log tail:\n" + daemon.p.tail(60), file=sys.stderr)
        if sim:
            print("--- exsim log tail:\n" + sim.p.tail(15), file=sys.stderr)
        try:
            with open(pgs.log_path) as f:
                print("--- private PostgreSQL log tail:\n" + "".join(f.readlines()[-15:]), file=sys.stderr)
        except OSError:
            pass
        raise
    finally:
        # Every step runs whatever the one before did: a stray simulator or server outlives the test.
        for step in (lambda: ticker and ticker.halt.set(), lambda: sampler and sampler.halt.set(),
                     lambda: daemon and daemon.p.alive() and daemon.p.stop(timeout=5),
                     lambda: sim and sim.stop(), pgs.close):
            try:
                step()
            except Exception as e:  # noqa: BLE001 (keep the first failure, not this one)
                print(f"--- cleanup: {e}", file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except TestFailure as e:
        print(f"FAIL test_pg_outage: {e}", file=sys.stderr)
        sys.exit(1)
