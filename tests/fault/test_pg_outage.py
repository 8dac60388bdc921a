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
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from harness import (BTC_SYMBOL, Daemon, PrivatePostgres, Sim, TestFailure, cleanup, daemon_config,  # noqa: E402
                     fetch_metrics, free_port, http, make_accounts, metric, multiplier_rules, parse_metrics,
                     require_env, stop_clean, wait_for)
from outage import Sampler, Ticker, check, check_copied_once, wait_copied  # noqa: E402

LEADER = "pgo-lead"
FOLLOWERS = ["pgo-f1", "pgo-f2", "pgo-f3"]
TICK_S = 0.1          # one leader fill every 100 ms
OUTAGE_S = 5.0        # PostgreSQL away this long
MAX_DELAY_MS = 2000   # leader trade -> follower order at the simulator, during the outage and replay
MIN_OUTAGE_FILLS = 20  # the outage must have seen real trading for the test to prove anything


def sample(base, s):
    """One Sampler sample: /health/ready's HTTP status and "journal" field, the journal gauges (a
    request that fails leaves status None)."""
    s["status"] = s["journal"] = None
    st, body = http("GET", base + "/health/ready", timeout=2)
    s["status"] = st
    s["journal"] = json.loads(body).get("journal")
    m = parse_metrics(http("GET", base + "/metrics", timeout=2)[1])
    for k in ("ct_journal_spooling", "ct_journal_spool_records", "ct_journal_up", "ct_journal_lag_seconds"):
        s[k] = metric(m, k)


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
    accounts = make_accounts(secrets, [LEADER, *FOLLOWERS], "0123456789", "9876543210", balance="10000000")

    pgs = PrivatePostgres(work, "pg")
    sim = daemon = ticker = sampler = None
    try:
        sim = Sim(args.build_dir, work, accounts, [BTC_SYMBOL])
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cfg = daemon_config(port, pgs.conninfo, redis, sim, [LEADER, *FOLLOWERS], multiplier_rules(LEADER, FOLLOWERS),
                            daemon_extra=f"  spool_dir: {spool}\n")
        daemon = Daemon(args.build_dir, work, cfg)

        def ready():
            st, body = http("GET", base + "/health/ready", timeout=2)
            return json.loads(body) if st == 200 else None
        r = wait_for("daemon ready", ready, timeout=40, interval=0.05)
        check(r.get("journal") == "up", f"/health/ready before the outage: {r}")

        sampler = Sampler(lambda s: sample(base, s))
        sampler.start()
        ticker = Ticker(sim, LEADER, TICK_S)
        ticker.start()
        wait_for("copies flowing before the outage", lambda: all(len(sim.orders(f)) >= 10 for f in FOLLOWERS),
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
            m = fetch_metrics(base, timeout=2)
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
        wait_copied(pgs.conninfo, sim, FOLLOWERS, n)
        sampler.stop()
        m_end = fetch_metrics(base)

        # 1. Health and the spool gauges, as sampled every 50 ms.
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
        check(replayed > 0, "ct_journal_spool_replayed_total is 0")
        for name in ("ct_journal_spool_replay_dropped_total", "ct_journal_spool_errors_total",
                     "ct_journal_fill_failures_total", "ct_copy_journal_failures_total",
                     "ct_journal_results_dropped_total"):
            check(metric(m_end, name) == 0, f"{name} = {metric(m_end, name)}")
        check(metric(m_end, "ct_journal_spooling") == 0 and metric(m_end, "ct_journal_spool_records") == 0,
              "the spool is not empty at the end")

        # 2. The end check: the journal against the simulator, complete, no duplicates, same final
        # states (harness.check_exactly_once); its copy delays are bounded below.
        lead_time, delays, _ = check_copied_once(pgs.conninfo, sim, LEADER, FOLLOWERS, ticker.fills)

        # 3. Copying never paused: delays of the fills made while PostgreSQL was away or replaying.
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

        check(spooled >= n_down_fills, f"ct_journal_spooled_fills_total {spooled} < {n_down_fills} fills made "
                                       "while PostgreSQL was down")

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
        cleanup(lambda: ticker and ticker.halt.set(), lambda: sampler and sampler.halt.set(),
                lambda: daemon and daemon.p.alive() and daemon.p.stop(timeout=5), lambda: sim and sim.stop(),
                pgs.close)


if __name__ == "__main__":
    try:
        main()
    except TestFailure as e:
        print(f"FAIL test_pg_outage: {e}", file=sys.stderr)
        sys.exit(1)
