#!/usr/bin/env python3
"""Redis killed while the leader trades: nothing fails, the caches go on in process, and the daemon
reconnects by itself and writes to Redis again (DESIGN.md invariant 7, "Caches").

The daemon gets its OWN redis-server (harness.PrivateRedis, a unix socket in a directory under
CT_TEST_TMP; the shared one of with-services is never touched) and a fresh database on the shared
PostgreSQL. One leader, three followers (multiplier 1); the leader trades every 100 ms for the
whole test. redis-server is SIGKILLed, left dead for 3 s, and a new, empty one is started on the
same socket. Asserted:
  - no follower order was lost, failed or late: every leader fill has its follower orders at the
    simulator, each client id once, all FILLED without an error code, journaled 'filled', and the
    ones of fills made while Redis was away (or reconnecting) arrived within MAX_DELAY_MS of the
    leader's trade (simulator clock);
  - ct_redis_up went 1 -> 0 -> 1 without any help (the daemon reconnects by itself);
  - after the restart the daemon writes to Redis again: the positions it publishes reappear in the
    new, empty server and end equal to each follower's position at the simulator;
  - if the daemon has the two-level caches (ct_cache_* metrics): they kept answering in process
    during the outage (hit ratio >= 0.8), Redis errors were counted during the outage and stopped
    after the reconnect, a refresh after the restart read through the new Redis and wrote its value
    there, and the hit ratio after the restart is >= 0.8 again (misses are TTL expiries)."""

import argparse
import json
import os
import sys
import time
from decimal import Decimal

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from harness import (BTC_SYMBOL, Daemon, PrivateRedis, Sim, TestFailure, cleanup, daemon_config,  # noqa: E402
                     fetch_metrics, free_port, fresh_database, make_accounts, metric, multiplier_rules, require_env,
                     stop_clean, wait_for, wait_http_ok)
from outage import Sampler, Ticker, check, check_copied_once, wait_copied  # noqa: E402

LEADER = "rdo-lead"
FOLLOWERS = ["rdo-f1", "rdo-f2", "rdo-f3"]
TICK_S = 0.1          # one leader fill every 100 ms
OUTAGE_S = 3.0        # redis-server dead this long
MAX_DELAY_MS = 1000   # leader trade -> follower order at the simulator, during the outage
CACHE_COUNTERS = ("ct_cache_hits_total", "ct_cache_misses_total", "ct_cache_stale_hits_total",
                  "ct_cache_redis_hits_total", "ct_cache_redis_misses_total", "ct_cache_redis_errors_total",
                  "ct_cache_loads_total")


def position_keys(redis, account, symbol="BTCUSDT"):
    """The Redis keys under ct:* holding the position the daemon publishes for account/symbol
    (ct:pos:ACCOUNT:SYMBOL, or the positions cache's ct:positions:ACCOUNT/SYMBOL)."""
    keys = [k for k in redis.cli("--raw", "KEYS", "ct:*").splitlines() if k]
    return [k for k in keys if k.endswith(f"{account}:{symbol}") or k.endswith(f"{account}/{symbol}")]


def position_value(redis, key):
    """The net position in a published value: a decimal, or JSON {"net","long","short"}."""
    v = redis.cli("--raw", "GET", key)
    if not v:
        return None
    if v.startswith("{"):
        return Decimal(json.loads(v)["net"])
    return Decimal(v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    args = ap.parse_args()
    pg = fresh_database(require_env("CT_TEST_PG"), "redis_outage")
    tmp = require_env("CT_TEST_TMP")
    work = os.path.join(tmp, "redis_outage")
    secrets = os.path.join(work, "secrets")
    os.makedirs(secrets, exist_ok=True)
    accounts = make_accounts(secrets, [LEADER, *FOLLOWERS], "0123456789", "9876543210", balance="10000000")

    rds = PrivateRedis(work, "redis")
    sim = daemon = ticker = sampler = None
    try:
        sim = Sim(args.build_dir, work, accounts, [BTC_SYMBOL])
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        # account_refresh_ms 200: the refresh asks the caches five times a second, so they are busy.
        cfg = daemon_config(port, pg, rds.address, sim, [LEADER, *FOLLOWERS], multiplier_rules(LEADER, FOLLOWERS),
                            daemon_extra="  account_refresh_ms: 200\n")
        daemon = Daemon(args.build_dir, work, cfg)
        wait_http_ok("daemon ready", base, timeout=40, interval=0.05, http_timeout=2)

        def metrics():
            return fetch_metrics(base, timeout=2)

        def redis_up():
            return metric(metrics(), "ct_redis_up")

        check(redis_up() == 1, "ct_redis_up is not 1 with Redis running")
        has_caches = any(name == "ct_cache_hits_total" for name, _ in metrics())

        def snap():
            m = metrics()
            return {k: metric(m, k) for k in CACHE_COUNTERS + ("ct_redis_dropped_writes_total",)}

        def sample(s):  # ct_redis_up every 50 ms
            s["ct_redis_up"] = redis_up()

        sampler = Sampler(sample)
        sampler.start()
        ticker = Ticker(sim, LEADER, TICK_S)
        ticker.start()
        wait_for("copies flowing and positions published to Redis", lambda: all(
            len(sim.orders(f)) >= 5 and position_keys(rds, f) for f in FOLLOWERS), timeout=20, interval=0.1)
        n0 = ticker.n
        m_base0 = snap()
        wait_for("two seconds of trading before the outage", lambda: ticker.n >= n0 + 20, timeout=10, interval=0.05)
        m_base1 = snap()

        # redis-server dies (SIGKILL) and stays dead for OUTAGE_S; a new, empty one comes up.
        t_kill = time.time()
        rds.kill()
        wait_for("ct_redis_up 0 after the kill", lambda: redis_up() == 0, timeout=10, interval=0.02)
        t_noticed = time.time()
        m_out0 = snap()
        time.sleep(max(0.0, t_kill + OUTAGE_S - time.time()))  # the outage itself, deliberately
        check(ticker.is_alive(), f"leader trading stopped during the outage: {ticker.error!r}")
        m_out1 = snap()
        t_restart = time.time()
        rds.start()
        check(rds.cli("DBSIZE") == "0", "the restarted redis-server is not empty")
        wait_for("ct_redis_up 1 again (the daemon reconnects by itself)", lambda: redis_up() == 1, timeout=15,
                 interval=0.02)
        t_reconnected = time.time()
        wait_for("the daemon writes positions to the new Redis", lambda: all(position_keys(rds, f)
                                                                           for f in FOLLOWERS),
                 timeout=10, interval=0.05)
        t_rewritten = time.time()
        n1 = ticker.n
        wait_for("half a second of trading after the reconnect", lambda: ticker.n >= n1 + 5, timeout=10,
                 interval=0.05)
        m_after0 = snap()
        n2 = ticker.n
        wait_for("two seconds of trading after the reconnect", lambda: ticker.n >= n2 + 20, timeout=10,
                 interval=0.05)
        m_after1 = snap()
        if has_caches:
            # A cache refresh after the restart (the tickers' TTL is 5 s) must go through the new
            # Redis again: a read-through answered (a miss in the empty server), then the value set.
            def cache_keys():
                pos = tuple(f"{a}{sep}BTCUSDT" for a in [LEADER, *FOLLOWERS] for sep in ":/")
                return [k for k in rds.cli("--raw", "KEYS", "ct:*").splitlines() if k and not k.endswith(pos)]
            def read_through():
                m = snap()
                return (m["ct_cache_redis_hits_total"] + m["ct_cache_redis_misses_total"]
                        > m_after0["ct_cache_redis_hits_total"] + m_after0["ct_cache_redis_misses_total"])
            wait_for("a cache entry (tickers, balances or instruments) written to the new Redis, after a "
                     "read-through of it (an expired entry asks Redis first)",
                     lambda: cache_keys() and read_through(), timeout=20, interval=0.1)
        m_end = snap()
        ticker.stop()
        sampler.stop()
        n = ticker.n
        wait_copied(pg, sim, FOLLOWERS, n)

        # 1. ct_redis_up 1 -> 0 -> 1, as sampled every 50 ms.
        def ups(t0, t1):
            return [s.get("ct_redis_up") for s in sampler.between(t0, t1)]
        check(ups(0, t_kill) and all(u == 1 for u in ups(0, t_kill)[-5:]), f"before the kill: {ups(0, t_kill)[-5:]}")
        down = ups(t_noticed, t_restart)
        check(down and all(u == 0 for u in down), f"ct_redis_up while redis-server was dead: {down}")
        up_again = ups(t_reconnected, time.time())
        check(up_again and all(u == 1 for u in up_again), f"ct_redis_up after the reconnect: {up_again}")
        dropped = m_out1["ct_redis_dropped_writes_total"] - m_out0["ct_redis_dropped_writes_total"]

        # 2. Redis holds the published positions again, equal to the simulator's.
        lead_pos = sum((Decimal(p["positionAmt"]) for p in sim.positions(LEADER)), Decimal(0))

        def published():
            for f in FOLLOWERS:
                keys = position_keys(rds, f)
                if len(keys) != 1 or position_value(rds, keys[0]) != lead_pos:
                    return False
            return True
        wait_for(f"every follower's published position in Redis equal to the simulator's ({lead_pos})", published,
                 timeout=10, interval=0.05)

        # 3. The two-level caches, if this daemon has them.
        cache_note = "no ct_cache_* metrics in this daemon: cache checks skipped"
        if has_caches:
            def d(a, b, k):
                return b[k] - a[k]

            def ratio(a, b):
                h, mi = d(a, b, "ct_cache_hits_total"), d(a, b, "ct_cache_misses_total")
                return h / (h + mi) if h + mi else None
            r_base, r_out, r_after = ratio(m_base0, m_base1), ratio(m_out0, m_out1), ratio(m_after0, m_end)
            errs_out = d(m_out0, m_out1, "ct_cache_redis_errors_total")
            errs_after = d(m_after0, m_end, "ct_cache_redis_errors_total")
            reads_after = d(m_after0, m_end, "ct_cache_redis_hits_total") + d(m_after0, m_end,
                                                                            "ct_cache_redis_misses_total")
            # Misses are TTL expiries (5 s tickers, 15 s balances): a window may hold a few. Redis
            # trouble would show as far more (lookups failing over and over), so a floor, not equality.
            check(d(m_out0, m_out1, "ct_cache_hits_total") > 0 and r_out is not None and r_out >= 0.8,
                  f"the caches did not keep answering in process while Redis was away (hit ratio {r_out})")
            check(errs_out > 0, "ct_cache_redis_errors_total did not rise while Redis was away")
            check(errs_after == 0, f"ct_cache_redis_errors_total still rising after the reconnect (+{errs_after})")
            check(reads_after > 0, "no cache read-through reached the new Redis after the reconnect")
            check(r_after is not None and r_after >= 0.8,
                  f"cache hit ratio after the restart {r_after} (before the outage {r_base})")

            def hm(a, b):
                return f"{d(a, b, 'ct_cache_hits_total'):.0f}/{d(a, b, 'ct_cache_misses_total'):.0f}"
            cache_note = (f"cache hit ratio (hits/misses) {r_base:.3f} ({hm(m_base0, m_base1)}) before, "
                          f"{r_out:.3f} ({hm(m_out0, m_out1)}) during, {r_after:.3f} ({hm(m_after0, m_end)}) after; "
                          f"cache Redis errors +{errs_out:.0f} during the outage, +{errs_after:.0f} after; "
                          f"{reads_after:.0f} read-throughs answered by the new Redis")

        # 4. The end check: nothing lost, failed or duplicated; the journal agrees with the simulator
        # (harness.check_exactly_once); its copy delays are bounded below.
        _, delays, _ = check_copied_once(pg, sim, LEADER, FOLLOWERS, ticker.fills)

        # 5. Not late while Redis was away or reconnecting.
        outage = [d for lt, d in delays if t_kill * 1000 <= lt <= (t_reconnected + 1) * 1000]
        check(len(outage) >= 20 * len(FOLLOWERS), f"only {len(outage)} follower orders during the outage")
        max_out = max(outage)
        check(max_out <= MAX_DELAY_MS, f"a follower order {max_out} ms after its leader fill while Redis was "
                                       f"away (bound {MAX_DELAY_MS} ms)")

        stop_clean(daemon)
        daemon = None
        print(f"ok test_redis_outage: {n} leader fills x {len(FOLLOWERS)} followers, all filled exactly once; "
              f"redis-server dead {t_restart - t_kill:.1f} s (ct_redis_up 0 after {t_noticed - t_kill:.2f} s, "
              f"1 again {t_reconnected - t_restart:.2f} s after the restart, positions rewritten after "
              f"{t_rewritten - t_restart:.2f} s): max copy delay {max_out} ms during the outage, "
              f"{max(x for _, x in delays)} ms overall; {dropped:.0f} Redis writes dropped; {cache_note}")
    except Exception:
        if daemon:
            print("--- daemon log tail:\n" + daemon.p.tail(60), file=sys.stderr)
        if sim:
            print("--- exsim log tail:\n" + sim.p.tail(15), file=sys.stderr)
        raise
    finally:
        cleanup(lambda: ticker and ticker.halt.set(), lambda: sampler and sampler.halt.set(),
                lambda: daemon and daemon.p.alive() and daemon.p.stop(timeout=5), lambda: sim and sim.stop(),
                rds.close)


if __name__ == "__main__":
    try:
        main()
    except TestFailure as e:
        print(f"FAIL test_redis_outage: {e}", file=sys.stderr)
        sys.exit(1)
