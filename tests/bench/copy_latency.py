#!/usr/bin/env python3
"""Copy latency benchmark (issue 7): one leader, N followers, each its own simulator account.

    copy_latency.py --build DIR [--n "1 10 100"] [--full] [--fills 1000] [--warmup 20]
                    [--durability "fsync os"] [--out DIR] [--wrk-seconds 5] [--wrk-connections 64]

Run it under tests/integration/with-services (scripts/bench does): CT_TEST_PG, CT_TEST_REDIS and
CT_TEST_TMP must be set. For each N and journal durability it starts the simulator with N+1
accounts (rate limits off, event log bounded), a fresh database and copytraderd with N
multiplier-1 rules, waits for /health/ready, then trades the leader: MARKET orders of 0.001
BTCUSDT, BUY and SELL alternately (an open, then a full close: every follower copies each one).
A fill is made only once the previous one's copies are all answered, as measured: the simulator
has every follower's order (GET /admin/accounts) and the daemon has counted every answer
(ct_copy_ack_latency_seconds_count). Nothing is timed by sleeping.

What is measured per leader fill (the daemon exposes no per-fill series, and the simulator's
clock is in milliseconds; see tests/bench/README.md for what each number is exactly):
  (a) internal, leader frame received -> last follower request handed to the REST pool: the
      per-fill increase of ct_copy_send_latency_seconds, scraped after every fill. With N = 1 it
      is the exact value (the histogram's _sum grew by it); with N > 1 only the bucket of the
      slowest request is known, and (a) is that bucket's upper bound (0.1, 0.25, 0.5, 1, 2.5, 5,
      10 ms, ...): a conservative figure, flagged "bucket" in the output.
  (a') the same per request: every request's bucket, percentiles read from the daemon's buckets.
  (ack) internal, leader frame received -> last follower order answered (ct_copy_ack_latency),
      exact for N = 1, bucket upper bound for N > 1.
  (b) end to end on the simulator's clock: the leader order's time (it fills on arrival) -> the
      arrival of the last follower order copying it (answered in the same loop turn), both in
      whole milliseconds, so each value is +-1 ms.
Per-fill values go into HdrHistogram-style histograms (hdr.py), not sample lists.

The ceiling (same run, same simulator, after the fills): wrk with keep-alive against GET
/fapi/v1/ping (the simulator's cheapest route; a signed order cannot be replayed because of its
timestamp, and HMAC-SHA256 per request in wrk's Lua would measure Lua): requests/s the simulator
serves on one core, against the daemon's orders/s in the run.

Output: a table on stdout, OUT/<timestamp>.json (every run: settings, summaries, the histograms
losslessly) and OUT/<timestamp>.png (gnuplot: latency by percentile, one line per N and durability).
"""

import argparse
import datetime
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness  # noqa: E402
from harness import TestFailure  # noqa: E402
from hdr import Hdr  # noqa: E402

SYMBOL = dict(harness.BTC_SYMBOL)
QTY = "0.001"
SEND = "ct_copy_send_latency_seconds"
ACK = "ct_copy_ack_latency_seconds"
E2E = "ct_copy_e2e_latency_seconds"


class Keep:
    """A keep-alive HTTP/1.1 connection (reopened if the server closed it); JSON in and out."""

    def __init__(self, hostport):
        self.host, self.port = hostport.split(":")
        self.c = None

    def call(self, method, path, body=None):
        for attempt in (0, 1):
            try:
                if self.c is None:
                    self.c = http.client.HTTPConnection(self.host, int(self.port), timeout=30)
                data = None if body is None else json.dumps(body)
                self.c.request(method, path, body=data,
                               headers={"Content-Type": "application/json"} if data else {})
                r = self.c.getresponse()
                text = r.read().decode()
                return r.status, text
            except (http.client.HTTPException, ConnectionError):
                self.c.close()
                self.c = None
                if attempt:
                    raise


def start_sim(build, work, accounts, event_log_limit):
    cfg = {"port": 0, "admin_port": 0, "event_log_limit": event_log_limit,
           "rate_limits": {"enabled": False}, "accounts": accounts, "symbols": [SYMBOL]}
    path = os.path.join(work, "exsim.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    exe = os.path.join(build, "exchange", "sim", "copytrader-exsim")
    p = harness.Process("exsim", [exe, "--config", path, "--log-level", "warn"], os.path.join(work, "exsim.log"))
    m = re.match(r"READY rest=([\d.]+:\d+) admin=([\d.]+:\d+)", p.read_line("READY"))
    if not m:
        raise TestFailure("exsim: bad READY line")
    sim = type("SimInfo", (), {})()
    sim.p, sim.rest, sim.admin = p, m.group(1), m.group(2)
    sim.rest_url, sim.ws_url = f"http://{sim.rest}", f"ws://{sim.rest}"
    return sim


def hist_state(metrics, name):
    """{"buckets": {le: cumulative count}, "sum", "count"} of one histogram (no labels)."""
    b, s, c = {}, 0.0, 0.0
    for (n, ls), v in metrics.items():
        if n == name + "_bucket":
            le = dict(ls)["le"]
            b[float("inf") if le == "+Inf" else float(le)] = v
        elif n == name + "_sum":
            s = v
        elif n == name + "_count":
            c = v
    return {"buckets": b, "sum": s, "count": c}


def hist_delta(new, old):
    """Per-bucket (non-cumulative) counts, sum and count added between two scrapes."""
    les = sorted(new["buckets"])
    cum = [new["buckets"][le] - old["buckets"].get(le, 0.0) for le in les]
    per = [cum[0]] + [cum[i] - cum[i - 1] for i in range(1, len(cum))]
    return {"les": les, "per": per, "sum": new["sum"] - old["sum"], "count": new["count"] - old["count"]}


def fill_value_ns(d, n):
    """A fill's slowest value from its delta: exact when it holds one observation (n == 1), else
    the upper bound of the highest bucket that grew. Returns (ns, exact?)."""
    if d["count"] == 1 and n == 1:
        return max(0, round(d["sum"] * 1e9)), True
    top = max(i for i, c in enumerate(d["per"]) if c > 0)
    le = d["les"][top]
    if le == float("inf"):  # above the last bound: the sum bounds it from above
        return round(d["sum"] * 1e9), False
    return round(le * 1e9), False


class PromBuckets:
    """Per-request distribution as the daemon's buckets give it (cumulative over measured fills)."""

    def __init__(self):
        self.les, self.per, self.count = None, None, 0

    def add(self, d):
        if self.les is None:
            self.les, self.per = d["les"], [0.0] * len(d["les"])
        for i, c in enumerate(d["per"]):
            self.per[i] += c
        self.count += d["count"]

    def percentile_bound_ns(self, p):
        """Upper bound of the bucket holding percentile p (None above the last finite bound)."""
        if not self.count:
            return None
        want, seen = p / 100.0 * self.count, 0.0
        for le, c in zip(self.les, self.per):
            seen += c
            if seen >= want - 1e-9:
                return None if le == float("inf") else round(le * 1e9)
        return None

    def share_within(self, le_s):
        seen = sum(c for le, c in zip(self.les, self.per) if le <= le_s + 1e-12)
        return seen / self.count if self.count else None


def poll(what, fn, timeout, first_wait, interval):
    """fn() until truthy: first after first_wait s, then every interval s; fails after timeout."""
    t0 = time.monotonic()
    if first_wait > 0:
        time.sleep(first_wait)
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() - t0 > timeout:
            raise TestFailure(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def run_one(args, n, durability):
    pg_root, redis, tmp = (harness.require_env(v) for v in ("CT_TEST_PG", "CT_TEST_REDIS", "CT_TEST_TMP"))
    name = f"bench_n{n}_{durability}"
    work = tempfile.mkdtemp(prefix=name + ".", dir=tmp)
    secrets = os.path.join(work, "secrets")
    followers = [f"f{i:04d}" for i in range(1, n + 1)]
    accounts = harness.make_accounts(secrets, ["leader"] + followers, "bench-0123456789", "bench-9876543210",
                                     balance="100000000")
    sim = start_sim(args.build, work, accounts, event_log_limit=200)
    daemon = None
    try:
        pg = harness.fresh_database(pg_root, name)
        port = harness.free_port()
        base = f"http://127.0.0.1:{port}"
        cfg = harness.daemon_config(port, pg, redis, sim, ["leader"] + followers,
                                    harness.multiplier_rules("leader", followers, 1),
                                    daemon_extra=f"  log_level: warn\n  journal_durability: {durability}\n")
        daemon = harness.Daemon(args.build, work, cfg)
        t_start = time.monotonic()
        harness.wait_http_ok(f"{name}: daemon ready", base, timeout=max(60, n * 0.3), interval=0.1)
        startup_s = time.monotonic() - t_start
        adm = Keep(sim.admin)

        def sim_orders_done(target):
            st, text = adm.call("GET", "/admin/accounts")
            if st != 200:
                raise TestFailure(f"/admin/accounts -> {st}")
            counts = {a["name"]: a["orders"] for a in json.loads(text)}
            return all(counts[f] >= target for f in followers)

        def scrape():
            return harness.fetch_metrics(base)

        base_m = scrape()
        acked0 = hist_state(base_m, ACK)["count"]
        prev = {h: hist_state(base_m, h) for h in (SEND, ACK, E2E)}
        h_a, h_ack, h_b = Hdr(), Hdr(), Hdr()
        req_send, req_ack = PromBuckets(), PromBuckets()
        exact = True
        total = args.warmup + args.fills
        est = 0.002  # running estimate of a fill's copy time (s): first poll a bit before it
        t_meas = None
        leader_times = []
        for i in range(total):
            if i == args.warmup:
                t_meas = time.monotonic()
            side = "BUY" if i % 2 == 0 else "SELL"
            t0 = time.monotonic()
            st, text = adm.call("POST", "/admin/order", {"account": "leader", "symbol": SYMBOL["symbol"],
                                                         "side": side, "type": "MARKET", "quantity": QTY})
            o = json.loads(text)
            if st != 200 or o.get("status") != "FILLED":
                raise TestFailure(f"{name}: leader order {i} not filled: {st} {text}")
            poll(f"{name}: fill {i}: every follower's order at the simulator", lambda: sim_orders_done(i + 1),
                 timeout=60, first_wait=0.8 * est, interval=max(0.0002, est / 20))
            want = acked0 + n * (i + 1)
            m = poll(f"{name}: fill {i}: the daemon's answers", lambda: (lambda mm: mm if hist_state(
                mm, ACK)["count"] >= want else None)(scrape()), timeout=60, first_wait=0, interval=0.0005)
            est = 0.7 * est + 0.3 * (time.monotonic() - t0)
            cur = {h: hist_state(m, h) for h in (SEND, ACK, E2E)}
            if i >= args.warmup:
                ds, da = hist_delta(cur[SEND], prev[SEND]), hist_delta(cur[ACK], prev[ACK])
                if ds["count"] != n or da["count"] != n:
                    raise TestFailure(f"{name}: fill {i}: {ds['count']} sends, {da['count']} answers, want {n}")
                va, ea = fill_value_ns(ds, n)
                vk, _ = fill_value_ns(da, n)
                exact = exact and ea
                h_a.record(va)
                h_ack.record(vk)
                req_send.add(ds)
                req_ack.add(da)
            prev = cur
        wall = time.monotonic() - t_meas
        # (b) on the simulator's clock: order i of every account belongs to leader fill i.
        _, text = adm.call("GET", "/admin/orders?account=leader")
        leader_times = [o["time"] for o in json.loads(text)]
        last = [0] * total
        first = [None] * total
        bad = 0
        for f in followers:
            _, text = adm.call("GET", f"/admin/orders?account={f}")
            ol = json.loads(text)
            if len(ol) != total:
                raise TestFailure(f"{name}: {f} has {len(ol)} orders at the simulator, want {total}")
            for k, o in enumerate(ol):
                bad += o["status"] != "FILLED"
                last[k] = max(last[k], o["time"])
                first[k] = o["time"] if first[k] is None else min(first[k], o["time"])
        if bad:
            raise TestFailure(f"{name}: {bad} follower orders not FILLED")
        spans = []
        for k in range(args.warmup, total):
            h_b.record(max(0, last[k] - leader_times[k]) * 10**6)
            spans.append(last[k] - first[k])
        ceiling = run_wrk(args, sim.rest)
        m = scrape()
        e2e_daemon = hist_delta(hist_state(m, E2E), hist_state(base_m, E2E))
        harness.stop_clean(daemon)
        daemon = None
        res = {
            "n": n, "durability": durability, "fills": args.fills, "warmup_fills": args.warmup,
            "startup_s": round(startup_s, 3), "wall_s": round(wall, 3),
            "orders_per_s_paced": round(n * args.fills / wall, 1),
            "a_exact": exact,
            "a_send_last_per_fill": h_a.summary_ns(), "ack_last_per_fill": h_ack.summary_ns(),
            "b_e2e_sim_clock_per_fill": h_b.summary_ns(),
            "a_send_per_request_bucket_bounds": {p: req_send.percentile_bound_ns(float(p))
                                                 for p in ("50", "99", "99.9")},
            "ack_per_request_bucket_bounds": {p: req_ack.percentile_bound_ns(float(p)) for p in ("50", "99", "99.9")},
            "send_share_within_0.25ms": req_send.share_within(0.00025),
            "send_share_within_2.5ms": req_send.share_within(0.0025),
            "follower_spread_ms_p50": sorted(spans)[len(spans) // 2],
            "daemon_e2e_buckets": {"le": e2e_daemon["les"], "count": e2e_daemon["per"]},
            "send_buckets": {"le": req_send.les, "count": req_send.per},
            "ceiling": ceiling,
            "hist": {"a": h_a.to_json(), "ack": h_ack.to_json(), "b": h_b.to_json()},
            "_hdr": {"a": h_a, "b": h_b, "ack": h_ack},
        }
        return res
    except BaseException:
        if daemon:
            print(f"--- {name}: daemon log tail:\n{daemon.p.tail(40)}", file=sys.stderr)
            daemon.p.stop(timeout=10)
        print(f"--- {name}: exsim log tail:\n{sim.p.tail(20)}", file=sys.stderr)
        raise
    finally:
        sim.p.stop()
        if os.environ.get("CT_KEEP_TMP", "0") != "1":
            shutil.rmtree(work, ignore_errors=True)


def run_wrk(args, rest):
    """wrk -t1 -c C -d S (keep-alive) on GET /fapi/v1/ping: requests/s of the simulator."""
    if args.wrk_seconds <= 0 or not shutil.which("wrk"):
        return None
    lua = os.path.join(HERE, "ping.lua")
    r = subprocess.run(["wrk", "-t", "1", "-c", str(args.wrk_connections), "-d", f"{args.wrk_seconds}s",
                        "--latency", "-s", lua, f"http://{rest}/fapi/v1/ping"],
                       capture_output=True, text=True, timeout=args.wrk_seconds + 60)
    m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", r.stdout)
    errs = re.search(r"Socket errors:.*", r.stdout)
    lat = dict(re.findall(r"^\s+(50|99)(?:\.000)?%\s+(\S+)", r.stdout, re.M))
    return {"endpoint": "GET /fapi/v1/ping", "connections": args.wrk_connections, "threads": 1,
            "seconds": args.wrk_seconds, "requests_per_s": float(m.group(1)) if m else None,
            "non_2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errs.group(0) if errs else None,
            "latency_p50": lat.get("50"), "latency_p99": lat.get("99"), "rc": r.returncode}


def ms(ns, bound=False):
    if ns is None:
        return "-"
    return ("<=" if bound else "") + f"{ns / 1e6:.3f}"


def table(results):
    hdr = (f"{'N':>5} {'durab':>5} {'fills':>5} | {'(a) p50':>9} {'p99':>9} {'p99.9':>9} {'max':>9} |"
           f" {'(b) p50':>7} {'p99':>5} {'p99.9':>5} {'max':>5} | {'ack p50':>9} {'p99':>9} |"
           f" {'ord/s paced':>11} {'ord/s fan-out':>13} {'ceiling rps':>11} {'ratio':>6}")
    lines = ["latencies in ms; (a) frame -> last request to the REST pool, per fill"
             " ('<=' = bucket upper bound); (b) leader fill -> last follower order, simulator clock"
             " (1 ms resolution); ack = frame -> last answer, per fill", hdr, "-" * len(hdr)]
    for r in results:
        a, b, k = r["a_send_last_per_fill"], r["b_e2e_sim_clock_per_fill"], r["ack_last_per_fill"]
        bound = not r["a_exact"]
        fan = r["n"] / (b["p50"] / 1e9) if b["p50"] else None
        ceil = (r["ceiling"] or {}).get("requests_per_s")
        ratio = f"{ceil / fan:.1f}" if ceil and fan else "-"
        lines.append(
            f"{r['n']:>5} {r['durability']:>5} {r['fills']:>5} | {ms(a['p50'], bound):>9} {ms(a['p99'], bound):>9}"
            f" {ms(a['p99.9'], bound):>9} {ms(a['max'], bound):>9} | {b['p50'] / 1e6:>7.0f} {b['p99'] / 1e6:>5.0f}"
            f" {b['p99.9'] / 1e6:>5.0f} {b['max'] / 1e6:>5.0f} | {ms(k['p50'], bound):>9} {ms(k['p99'], bound):>9} |"
            f" {r['orders_per_s_paced']:>11.0f} {(f'{fan:.0f}' if fan else '-'):>13}"
            f" {(f'{ceil:.0f}' if ceil else '-'):>11} {ratio:>6}")
    lines.append("per request (daemon buckets, upper bounds): " + "; ".join(
        f"N={r['n']} {r['durability']}: send p50 {ms(r['a_send_per_request_bucket_bounds']['50'], True)}"
        f" p99 {ms(r['a_send_per_request_bucket_bounds']['99'], True)}"
        f" p99.9 {ms(r['a_send_per_request_bucket_bounds']['99.9'], True)},"
        f" <=0.25ms {100 * r['send_share_within_0.25ms']:.1f}%, <=2.5ms {100 * r['send_share_within_2.5ms']:.1f}%"
        for r in results))
    return "\n".join(lines)


def plot(results, png, datadir):
    """gnuplot PNG: (a) and (b) by percentile (x = 1/(1-p), log), one line per run."""
    if not shutil.which("gnuplot"):
        print("bench: gnuplot not installed: no plot", file=sys.stderr)
        return False
    panels = []
    for key, title in (("a", "(a) frame received -> last follower request (ms)"),
                       ("b", "(b) leader fill -> last follower order, simulator clock (ms)")):
        lines = []
        for r in results:
            f = os.path.join(datadir, f"{key}_n{r['n']}_{r['durability']}.dat")
            with open(f, "w") as out:
                for p, v in r["_hdr"][key].distribution():
                    x = 1.0 / (1.0 - p / 100.0) if p < 100.0 else 1.0 / (0.5 / r["_hdr"][key].total)
                    out.write(f"{x} {v / 1e6}\n")
            lines.append(f"'{f}' using 1:2 with steps lw 2 title 'N={r['n']} {r['durability']}'")
        panels.append((title, lines))
    gp = [f"set terminal pngcairo size 1400,600 font ',10'" if _has_cairo() else "set terminal png size 1400,600",
          f"set output '{png}'", "set multiplot layout 1,2", "set logscale x", "set logscale y",
          "set grid", "set key top left",
          "set xtics ('50%%' 2, '90%%' 10, '99%%' 100, '99.9%%' 1000, '99.99%%' 10000)",
          "set xlabel 'percentile'"]
    for title, lines in panels:
        gp += [f"set title \"{title}\"", "set ylabel 'ms'", "plot " + ", ".join(lines)]
    gp.append("unset multiplot")
    r = subprocess.run(["gnuplot"], input="\n".join(gp) + "\n", capture_output=True, text=True)
    if r.returncode != 0:
        print(f"bench: gnuplot failed: {r.stderr}", file=sys.stderr)
        return False
    return True


def _has_cairo():
    r = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True)
    return "pngcairo" in (r.stdout + r.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="RelWithDebInfo build directory")
    ap.add_argument("--n", default="1 10 100", help="follower counts (space separated)")
    ap.add_argument("--full", action="store_true", help="add N = 1000")
    ap.add_argument("--fills", type=int, default=1000, help="measured leader fills per run")
    ap.add_argument("--warmup", type=int, default=20, help="leader fills before measuring (connections, caches)")
    ap.add_argument("--durability", default="fsync os")
    ap.add_argument("--out", default="bench-results")
    ap.add_argument("--wrk-seconds", type=int, default=5)
    ap.add_argument("--wrk-connections", type=int, default=64)
    args = ap.parse_args()
    ns = [int(x) for x in args.n.split()]
    if args.full and 1000 not in ns:
        ns.append(1000)
    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    results = []
    for n in ns:
        for d in args.durability.split():
            t0 = time.monotonic()
            r = run_one(args, n, d)
            results.append(r)
            print(f"bench: N={n} {d}: {args.fills} fills in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    print(table(results))
    datadir = os.path.join(args.out, stamp + ".data")
    os.makedirs(datadir, exist_ok=True)
    png = os.path.join(args.out, stamp + ".png")
    plotted = plot(results, png, datadir)
    host = {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg(), "uname": " ".join(os.uname())}
    out = {"stamp": stamp, "host": host, "settings": vars(args), "plot": png if plotted else None,
           "runs": [{k: v for k, v in r.items() if k != "_hdr"} for r in results]}
    path = os.path.join(args.out, stamp + ".json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"bench: wrote {path}" + (f" and {png}" if plotted else ""))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TestFailure as e:
        print(f"bench: FAIL: {e}", file=sys.stderr)
        sys.exit(1)
