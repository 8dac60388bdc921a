#!/usr/bin/env python3
"""Equity refreshes of many followers stay within their share of the exchange host's IP budget,
evenly over time, and every follower still gets its turn (daemon/copier_cache.c's pacer,
daemon/refresh_pace.c).

The pacer lets equity refreshes use half of each exchange host's IP budget, one every interval
(interval = refresh cost x window / (limit / 2)), stale leaders first (taking turns with the
followers while both wait), then the follower that has waited longest. cache_ttl_balances_ms is short here, so every account is always due: unpaced, the
refresh timer would ask for every follower every account_refresh_ms (5 s, the default: bursts of
hundreds at once), and the REST pool would queue them without bound in front of everything else.

  bybit_300     1 Bybit leader, 300 followers, TTL 1 s. Bybit counts 600 requests per 5 s per IP:
                60 refreshes a second, one every 16.7 ms (3-4 per 50 ms tick); the leader takes 1
                a second, so each follower is refreshed every 300 / 59 = 5.1 s.
  binance_60    1 Binance leader, 60 followers, TTL 2 s, the simulator enforcing Binance's 2,400
                weight a minute per IP (429, then 418): GET /fapi/v3/account weighs 5, so 4
                refreshes a second, one every 250 ms; the leader takes 0.5 a second, so each
                follower is refreshed every 60 / 3.5 = 17.1 s. (60, not 300: loading 300 Binance
                followers costs ~4,500 weight, two minutes of the IP's budget, before the test could
                start.)

Each scenario, once every follower's state is in and the loads have left the IP budget's window:
  - samples the daemon's count of balance requests (ct_rest_responses_total by endpoint) every
    0.2 s for a window: the total stays within the paced rate (plus one burst and the requests in
    flight at either end), and so does every 1 s stretch (no burst per refresh tick);
  - changes every follower's balance at the simulator, then waits until Redis
    (ct:balances:<follower>, written by each refresh) shows every follower's new balance: within
    the computed refresh period (plus slack for the answers in flight), for every single one;
  - ct_equity_age_max_seconds stays within that period for followers and within the TTL (plus
    a tick) for the leader; the REST pool's queue stays short (ct_rest_queued);
  - no throttle answer at all (ct_rate_limit_throttles_total 0, no HTTP 429 / 418);
  - the daemon warned once, naming the followers, the cost, the budget and the period.

  single_flight  a follower's equity request answered after 12 s (the simulator's latency fault;
                 the accounts' timeout_ms is 20 s), longer than the cache waits (10 s): no second
                 request for it goes out until the answer, and the late answer is stored.
"""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import CopyScenario, TestFailure, scenarios_main, wait_for  # noqa: E402

SHARE = 0.5  # EQ_SHARE_PCT in daemon/copier_cache.c
TICK_S = {"bybit-linear": 0.05, "binance-usdm": 0.25}  # the pacer's tick (EQ_TICK_MIN_MS, the interval)


def redis_mget(keys):
    sock = harness.require_env("CT_TEST_REDIS").split(":", 1)[1]
    out = subprocess.run(["redis-cli", "-s", sock, "--raw", "MGET", *keys], capture_output=True,
                         text=True, timeout=20)
    if out.returncode != 0:
        raise TestFailure(f"redis-cli MGET failed: {out.stderr.strip()}")
    lines = out.stdout.split("\n")
    return lines[:len(keys)]


def pace(exchange, n_followers, ttl_s):
    """(refreshes a second, burst, each follower's refresh period in s) as the pacer computes them."""
    if exchange == "bybit-linear":
        per_s = 600 / 5 * SHARE / 1
    else:
        per_s = 2400 / 60 * SHARE / 5
    burst = int(-(-TICK_S[exchange] * per_s // 1)) + 1
    # one leader, due every TTL; leaders and followers take turns while both wait
    leader_need, follower_need = 1 / ttl_s, n_followers / ttl_s
    follower_share = min(follower_need, max(per_s / 2, per_s - leader_need))
    return per_s, burst, max(ttl_s, n_followers / follower_share)


def run(build_dir, exchange, n, ttl_ms, window_s, endpoint):
    tag = f"eqs{exchange[:2]}{os.getpid()}"
    leader = f"{tag}l"
    followers = [f"{tag}f{i:03d}" for i in range(n)]
    accounts = [(leader, exchange)] + [(f, exchange) for f in followers]
    rules = [(f"r{i}", leader, f, 1) for i, f in enumerate(followers)]
    per_s, burst, period = pace(exchange, n, ttl_ms / 1000)
    with CopyScenario(build_dir, tag, accounts, rules,
                      daemon_yaml=f"  cache_ttl_balances_ms: {ttl_ms}\n") as sc:
        sc.wait_ready(timeout=120)
        wait_for("followers' state loaded",
                 lambda: json.loads(harness.http("GET", sc.base + "/health/ready")[1]).get("followers_loading") == 0,
                 timeout=240, interval=0.2)

        def balance_requests(m):
            return harness.metric(m, "ct_rest_responses_total", endpoint=endpoint)

        # The loads used the IP budget up (Bybit's rolling 5 s, Binance's minute): refreshes wait
        # (not queue) until it has room again; the steady state is measured from then on.
        limit, unit = (600, "req/5s") if exchange == "bybit-linear" else (2400, "weight/1m")

        def ip_headroom():
            return [v for (name, labels), v in sc.metrics().items() if name == "ct_rate_limit_headroom"
                    and any(k == "budget" and b.startswith("ip:") and b.endswith(unit) for k, b in labels)]

        # Bybit's window rolls: 5 s after the last load it holds none of them any more.
        time.sleep(5.5 if exchange == "bybit-linear" else 0)
        wait_for("room in the IP budget after the loads", lambda: ip_headroom() and ip_headroom()[0] >= 0.3 * limit,
                 timeout=90, interval=0.2)

        # 1. the rate, over the window and over every 1 s stretch of it
        samples = []  # (t, requests, queued)
        t_end = time.monotonic() + window_s
        while time.monotonic() < t_end:
            m = sc.metrics()
            samples.append((time.monotonic(), balance_requests(m), harness.metric(m, "ct_rest_queued")))
            time.sleep(0.2)
        if samples[-1][1] == samples[0][1]:
            raise TestFailure(f"no balance requests counted in {window_s} s: is the endpoint label still {endpoint!r}?")
        slack = 8  # answers in flight at either end of a stretch
        dt = samples[-1][0] - samples[0][0]
        made = samples[-1][1] - samples[0][1]
        if made > per_s * dt + burst + slack:
            raise TestFailure(f"{made:.0f} balance requests in {dt:.1f} s: more than the paced "
                              f"{per_s:.0f}/s (+{burst} burst, +{slack})")
        series = ", ".join(f"{t - samples[0][0]:.1f}:{r - samples[0][1]:.0f}" for t, r, _ in samples)
        if made < per_s * dt * 0.5:
            raise TestFailure(f"only {made:.0f} balance requests in {dt:.1f} s, paced {per_s:.0f}/s: "
                              f"are the followers refreshed at all? (s:requests {series})")
        worst = 0
        for i, (t0, r0, _) in enumerate(samples):
            for t1, r1, _ in samples[i + 1:]:
                if t1 - t0 > 1.0:
                    break
                worst = max(worst, r1 - r0)
        if worst > per_s + burst + slack:
            raise TestFailure(f"{worst:.0f} balance requests within 1 s: a burst, not the paced {per_s:.0f}/s "
                              f"(s:requests {series})")
        queued = max(q for _, _, q in samples)
        if queued > 2 * burst + slack:
            raise TestFailure(f"ct_rest_queued reached {queued:.0f}: refreshes queue in the REST pool")

        # 2. every follower refreshed within the period
        t0 = time.monotonic()
        for i, f in enumerate(followers):
            sc.sim._json("POST", "/admin/balance", {"account": f, "balance": f"{3000000 + i}"})
        t_set = time.monotonic() - t0
        keys = [f"ct:balances:{f}" for f in followers]
        seen = {}

        def all_refreshed():
            for f, v in zip(followers, redis_mget(keys)):
                if f in seen or not v:
                    continue
                if json.loads(v).get("wallet", "").split(".")[0] == str(3000000 + followers.index(f)):
                    seen[f] = time.monotonic() - t0
            return len(seen) == n

        bound = period * 1.25 + t_set + 3
        try:
            wait_for(f"every follower's new balance in Redis within {bound:.1f} s", all_refreshed,
                     timeout=bound, interval=0.2)
        except TestFailure:
            missing = [f for f in followers if f not in seen]
            raise TestFailure(f"{len(missing)} of {n} followers not refreshed within {bound:.1f} s "
                              f"(paced period {period:.1f} s), e.g. {missing[:5]}")
        last = max(seen.values())

        # 3. ages, throttles, the warning
        m = sc.metrics()
        age_f = harness.metric(m, "ct_equity_age_max_seconds", exchange=exchange, role="follower")
        age_l = harness.metric(m, "ct_equity_age_max_seconds", exchange=exchange, role="leader")
        if not 0 < age_f <= period * 1.25 + 3:
            raise TestFailure(f"ct_equity_age_max_seconds{{role=follower}} {age_f}: not within (0, "
                              f"{period * 1.25 + 3:.1f}] s")
        if age_l > ttl_ms / 1000 + 2:
            raise TestFailure(f"ct_equity_age_max_seconds{{role=leader}} {age_l}: the leader's equity is "
                              f"older than its TTL {ttl_ms / 1000} s (+2)")
        throttles = harness.metric(m, "ct_rate_limit_throttles_total")
        bans = harness.metric(m, "ct_rate_limit_bans_total")
        http429 = harness.metric(m, "ct_rest_responses_total", code="429")
        http418 = harness.metric(m, "ct_rest_responses_total", code="418")
        if throttles or bans or http429 or http418:
            raise TestFailure(f"throttled: {throttles:.0f} throttles, {bans:.0f} bans, {http429:.0f} HTTP 429, "
                              f"{http418:.0f} HTTP 418")
        warns = re.findall(r"equity refreshes paced on \S+: (\d+) followers and (\d+) leaders, (\d+) per "
                           r"refresh, .* about every ([\d.]+) s", sc.log())
        if len(warns) != 1:
            raise TestFailure(f"expected one 'equity refreshes paced' warning, found {len(warns)}")
        nf, nl, cost, p_log = warns[0]
        want_cost = "1" if exchange == "bybit-linear" else "5"
        if (int(nf), int(nl), cost) != (n, 1, want_cost) or abs(float(p_log) - period) > 0.2:
            raise TestFailure(f"the warning says {nf} followers, {nl} leaders, {cost} per refresh, every "
                              f"{p_log} s; expected {n}, 1, {want_cost}, {period:.1f} s")
        return (f"{made:.0f} balance requests in {dt:.1f} s ({made / dt:.1f}/s, paced {per_s:.0f}/s), "
                f"worst 1 s {worst:.0f}, queued <= {queued:.0f}; all {n} followers refreshed within "
                f"{last:.1f} s (period {period:.1f} s); oldest equity: followers {age_f:.1f} s, leader "
                f"{age_l:.1f} s")


def single_flight(build_dir):
    """One request per account at a time, also when the exchange answers after the cache stopped
    waiting (its load_timeout_ms, 10 s): the account counts as loading until the answer, so no
    tick sends a second request meanwhile (before, every tick after the cache's 10 s sent another,
    and a slow exchange got one more per TTL). The late answer still counts."""
    tag = f"eqsf{os.getpid()}"
    leader, slow, other = f"{tag}l", f"{tag}fs", f"{tag}fo"
    accounts = [(leader, "binance-usdm"), (slow, "binance-usdm"), (other, "binance-usdm")]
    rules = [("rs", leader, slow, 1), ("ro", leader, other, 1)]
    with CopyScenario(build_dir, tag, accounts, rules, daemon_yaml="  cache_ttl_balances_ms: 1000\n",
                      account_yaml="    timeout_ms: 20000\n") as sc:
        sc.wait_ready()
        wait_for("followers' state loaded",
                 lambda: json.loads(harness.http("GET", sc.base + "/health/ready")[1]).get("followers_loading") == 0,
                 timeout=60, interval=0.1)
        sc.sim._json("POST", "/admin/balance", {"account": slow, "balance": "4000000"})
        fid = sc.sim.fault("latency", account=slow, endpoint="GET /fapi/v3/account", ms=12000)["id"]
        wait_for("the slow follower's next equity request", lambda: sc.sim.fault_hits(fid) >= 1,
                 timeout=10, interval=0.05)
        t_hit = time.monotonic()
        # past the cache's 10 s (and a few of the pacer's ticks), before the 12 s answer
        time.sleep(max(0.0, t_hit + 11.2 - time.monotonic()))
        hits = sc.sim.fault_hits(fid)
        if hits != 1:
            raise TestFailure(f"{hits} equity requests for {slow} within 11.2 s of the first, which was still "
                              "unanswered: a second one went out after the cache stopped waiting")
        wait_for("the slow follower's new balance in Redis (the late answer)",
                 lambda: (redis_mget([f"ct:balances:{slow}"])[0] or "{}").find('"4000000') >= 0,
                 timeout=10, interval=0.1)
        wait_for("the slow follower's next request after the answer", lambda: sc.sim.fault_hits(fid) >= 2,
                 timeout=10, interval=0.1)
        sc.sim.clear_faults()
        return "one request at a time while the exchange took 12 s to answer; the late answer was stored"


def make(build_dir):
    return [
        ("bybit_300", lambda: run(build_dir, "bybit-linear", 300, 1000, 8,
                                  "GET /v5/account/wallet-balance")),
        ("binance_60", lambda: run(build_dir, "binance-usdm", 60, 2000, 15, "GET /fapi/v3/account")),
        ("single_flight", lambda: single_flight(build_dir)),
    ]


if __name__ == "__main__":
    sys.exit(scenarios_main("test_equity_pace_scale", make))
