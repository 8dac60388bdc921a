#!/usr/bin/env python3
"""Copy latency and throughput benchmark (issue 7): one leader, N followers, each its own
simulator account.

    copy_latency.py --build DIR [--n "1 10 100"] [--full] [--fills 1000] [--warmup 20]
                    [--durability "fsync os"] [--throughput] [--tp-only] [--tp-n 1000]
                    [--tp-seconds 60] [--tp-outstanding 4] [--tp-durability "os fsync"] [--perf]
                    [--cpu-daemon 0] [--cpu-sim 1] [--cpu-wrk 0] [--cpu-services ""] [--wrk-seconds 5]
                    [--wrk-connections 64] [--wrk-accounts 64] [--ready-timeout 600] [--out DIR]

Run it under tests/integration/with-services (scripts/bench does): CT_TEST_PG, CT_TEST_REDIS and
CT_TEST_TMP must be set. tests/bench/README.md defines every number exactly; in short:

Latency (per N and journal durability): the simulator with N+1 accounts (plus the wrk accounts),
a fresh database, copytraderd with N multiplier-1 rules, /health/ready; the leader trades MARKET
0.001 BTCUSDT, BUY and SELL alternately (an open, then a full close: every follower copies each).
A fill is made only once the previous one's copies are all answered, as the daemon reports it
(never by sleeping). Per leader fill:
  (a) leader frame received -> the fill's last follower request written to its socket, and
  (ack) -> the fill's last follower order answered: exact, from the daemon's GET /debug/latency
      (reset after the warm-up, read at the end). A daemon without it (404) falls back to the
      increase of ct_copy_send/ack_latency_seconds between scrapes after every fill: exact for
      N = 1, the slowest request's bucket upper bound for N > 1.
  (b) end to end on the simulator's clock: the leader order's time (it fills on arrival) -> the
      arrival of the last follower order copying it, whole milliseconds (+-1 ms).
Per-fill values go into HdrHistogram-style histograms (hdr.py).

Throughput (--throughput, N = --tp-n, default 1000): leader fills as fast as the daemon takes
them for --tp-seconds: at most --tp-outstanding leader fills not yet fully answered at any time,
the next made as soon as the daemon reports one done. Sustained follower orders answered per
second over the window, CPU per order of copytraderd and of the simulator (utime + stime),
peak RSS (VmHWM), REST connections opened; --perf adds a perf profile of the daemon.

Ceilings (same simulator, after the fills, the daemon idle): wrk with keep-alive against
GET /fapi/v1/ping (ping.lua) and against POST /fapi/v1/order (order.lua: real MARKET orders from
accounts flagged "unsigned_ok", benchmarks only, so no HMAC in Lua).

Processes are pinned with taskset (--cpu-*; "" leaves one unpinned). Output: a table on stdout,
OUT/<timestamp>.json (settings, summaries, lossless histograms) and OUT/<timestamp>.png.
"""

import argparse
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
import benchlib  # noqa: E402
from benchlib import CLK_TCK, Keep, poll, proc_sample  # noqa: E402
from hdr import Hdr  # noqa: E402

SYMBOL = dict(harness.BTC_SYMBOL)
QTY = "0.001"
SEND = "ct_copy_send_latency_seconds"
ACK = "ct_copy_ack_latency_seconds"
E2E = "ct_copy_e2e_latency_seconds"
KEY_SUFFIX, SECRET_SUFFIX = "bench-0123456789", "bench-9876543210"


# ---- the daemon's per-fill histograms (GET /debug/latency) ----

def hdr_from_debug(h, what):
    """An Hdr (ns) from one of /debug/latency's histograms: {"count", "min", "max", "p50", "p99",
    "p999", "buckets": [[upper_us, count], ...]}. Each bucket's count is recorded at its upper
    bound (the daemon's buckets are 1 us wide below 2048 us, then 1/1024 of the value); min and max
    are the daemon's exact ones. Raises TestFailure naming what is wrong."""
    if not isinstance(h, dict):
        raise TestFailure(f"/debug/latency: {what}: not an object")
    for k in ("count", "min", "max", "buckets"):
        if k not in h:
            raise TestFailure(f"/debug/latency: {what}: no '{k}'")
    if not isinstance(h["count"], int) or h["count"] < 0 or not isinstance(h["buckets"], list):
        raise TestFailure(f"/debug/latency: {what}: bad count or buckets")
    out = Hdr()
    for i, b in enumerate(h["buckets"]):
        if (not isinstance(b, list) or len(b) != 2 or not all(isinstance(x, int) for x in b)
                or b[0] < 0 or b[1] <= 0):
            raise TestFailure(f"/debug/latency: {what}.buckets[{i}]: want [upper_us, count > 0], got {b!r}")
        out.record(b[0] * 1000, b[1])
    if out.total != h["count"]:
        raise TestFailure(f"/debug/latency: {what}: buckets hold {out.total} values, count says {h['count']}")
    if out.total:
        if not (isinstance(h["min"], int) and isinstance(h["max"], int) and 0 <= h["min"] <= h["max"]):
            raise TestFailure(f"/debug/latency: {what}: bad min/max")
        out.min, out.max = h["min"] * 1000, h["max"] * 1000
    return out


class DebugLatency:
    """The daemon's GET /debug/latency and POST /debug/latency/reset; available is None until
    probed, then True, or False when the daemon answers 404 (older daemon: metric scrapes)."""

    def __init__(self, base):
        self.k = Keep(base.replace("http://", ""))
        self.available = None

    def reset(self):
        st, text = self.k.call("POST", "/debug/latency/reset")
        if st == 404:
            self.available = False
            return False
        if st != 204:
            raise TestFailure(f"POST /debug/latency/reset -> {st} {text[:200]}")
        self.available = True
        return True

    def read(self):
        st, text = self.k.call("GET", "/debug/latency")
        if st == 404:
            self.available = False
            return None
        if st != 200:
            raise TestFailure(f"GET /debug/latency -> {st} {text[:200]}")
        try:
            j = json.loads(text)
        except ValueError as e:
            raise TestFailure(f"GET /debug/latency: not JSON: {e}")
        if not isinstance(j, dict) or "fill_send_us" not in j or "fill_ack_us" not in j:
            raise TestFailure("GET /debug/latency: want {\"fill_send_us\": H, \"fill_ack_us\": H}")
        return j

    def ack_count(self):
        j = self.read()
        return None if j is None else j["fill_ack_us"]["count"]


# ---- Prometheus histograms (the fallback, and per-request buckets) ----

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


# ---- processes: pinning, CPU, connections ----

def pin(pid, cpus, what):
    """taskset every thread of pid (and so its future threads) to cpus; "" leaves it alone."""
    if not cpus:
        return None
    r = subprocess.run(["taskset", "-a", "-c", "-p", cpus, str(pid)], capture_output=True, text=True)
    if r.returncode != 0:
        raise TestFailure(f"taskset {what} ({pid}) to {cpus}: {r.stderr.strip()}")
    return cpus


def cpu_s(sample):
    return sample["cpu_user_s"] + sample["cpu_sys_s"]


def machine_cpu():
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def tcp_established(port):
    """Established TCP connections whose local or peer port is port (ss -tn), counted once each
    (both ends are on loopback, so each connection shows twice: count the server side)."""
    r = subprocess.run(["ss", "-Htn", "state", "established", "sport", "=", f":{port}"],
                       capture_output=True, text=True)
    return len([x for x in r.stdout.splitlines() if x.strip()]) if r.returncode == 0 else None


def metric_sum(m, name, **labels):
    return harness.metric(m, name, **labels)


def hist_means(m1, m0, name, label):
    """{label value: {"count", "mean_ms"}} of histogram name's growth between two scrapes."""
    out = {}
    for (n, ls), v in m1.items():
        if n != name + "_count":
            continue
        d = dict(ls)
        key = d.get(label, "")
        c = v - m0.get((n, ls), 0.0)
        s = m1.get((name + "_sum", ls), 0.0) - m0.get((name + "_sum", ls), 0.0)
        o = out.setdefault(key, {"count": 0.0, "sum": 0.0})
        o["count"] += c
        o["sum"] += s
    return {k: {"count": round(o["count"]), "mean_ms": round(1e3 * o["sum"] / o["count"], 3) if o["count"] else None}
            for k, o in out.items()}


def pg_postmaster(conninfo):
    """The journal's PostgreSQL server's postmaster pid (the parent of a backend), or None."""
    try:
        pid = int(harness.psql(conninfo, "select pg_backend_pid()")[0][0])
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (TestFailure, OSError, ValueError, IndexError):
        return None


def pin_services(cpus):
    """taskset the shared PostgreSQL server (its postmaster and every process it has forked: new
    backends inherit the mask) and Redis to cpus. {"postgres": cpus, "redis": cpus}; {} for ""."""
    if not cpus:
        return {}
    pm = pg_postmaster(harness.require_env("CT_TEST_PG"))
    if pm is None:
        raise TestFailure("--cpu-services: cannot find the PostgreSQL postmaster")
    sock = harness.require_env("CT_TEST_REDIS").removeprefix("unix:")
    redis = None
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pm:
            pin(int(d), cpus, "a PostgreSQL process")
        elif cmd.startswith("redis-server") and sock in cmd:
            redis = int(d)
    if redis is None:
        raise TestFailure(f"--cpu-services: no redis-server on {sock}")
    pin(pm, cpus, "postmaster")
    pin(redis, cpus, "redis-server")
    return {"postgres": cpus, "redis": cpus}


def pg_cpu_s(postmaster):
    """CPU seconds of the whole server so far: the postmaster's own and its reaped children's
    (utime, stime, cutime, cstime) plus every live child's. A backend or autovacuum worker that
    exits inside a window moves its time into the postmaster's cutime/cstime, so the difference of
    two readings stays exact (summing the processes alive at the start lost the time of those that
    exited: negative "cores")."""
    if postmaster is None:
        return 0.0
    total = 0.0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(d), int(rest[1])
        if pid == postmaster:
            total += sum(int(x) for x in rest[11:15]) / CLK_TCK
        elif ppid == postmaster:
            total += (int(rest[11]) + int(rest[12])) / CLK_TCK
    return total


def self_cpu_s():
    t = os.times()
    return t.user + t.system


# ---- one benchmark's fixture: simulator, database, daemon ----

def rest_connections(args, n):
    """daemon.rest_connections_per_host for N followers: with fewer connections than followers, a
    fill's orders leave in waves (README). By default N, between the daemon's default 512 and
    4096 (the simulator also holds a stream per account within its open-files limit)."""
    return args.rest_connections or min(4096, max(512, n))


class Fixture:
    def __init__(self, args, name, n, durability):
        pg_root, redis, tmp = (harness.require_env(v) for v in ("CT_TEST_PG", "CT_TEST_REDIS", "CT_TEST_TMP"))
        self.args, self.name, self.n = args, name, n
        self.work = tempfile.mkdtemp(prefix=name + ".", dir=tmp)
        secrets = os.path.join(self.work, "secrets")
        self.followers = [f"f{i:05d}" for i in range(1, n + 1)]
        accounts = harness.make_accounts(secrets, ["leader"] + self.followers, KEY_SUFFIX, SECRET_SUFFIX,
                                         balance="100000000")
        # Accounts wrk places orders on (order.lua): benchmarks-only unsigned orders.
        self.wrk_keys = []
        for i in range(args.wrk_accounts):
            a = {"name": f"wrk{i:03d}", "api_key": f"key-wrk{i:03d}-{KEY_SUFFIX}",
                 "api_secret": f"secret-wrk{i:03d}", "balance": "100000000", "unsigned_ok": True}
            accounts.append(a)
            self.wrk_keys.append(a["api_key"])
        # Each event is ~0.7 KB and each account keeps event_log_limit of them: bound the total.
        self.event_log_limit = max(10, min(200, 2_000_000 // len(accounts)))
        self.sim = benchlib.start_sim(args.build, self.work, accounts, symbols=[SYMBOL],
                                      event_log_limit=self.event_log_limit)
        self.daemon = None
        self.pins = {"sim": pin(self.sim.p.proc.pid, args.cpu_sim, "exsim"), **args.service_pins}
        try:
            self.pg = harness.fresh_database(pg_root, name)
            port = harness.free_port()
            self.base = f"http://127.0.0.1:{port}"
            cfg = harness.daemon_config(port, self.pg, redis, self.sim, ["leader"] + self.followers,
                                        harness.multiplier_rules("leader", self.followers, 1),
                                        daemon_extra=f"  log_level: warn\n  journal_durability: {durability}\n"
                                        f"  rest_connections_per_host: {rest_connections(args, n)}\n"
                                        # os is write-ahead through the local spool (README)
                                        f"  spool_dir: {os.path.join(self.work, 'spool')}\n")
            t0 = time.monotonic()
            self.daemon = harness.Daemon(args.build, self.work, cfg)
            self.pid = self.daemon.p.proc.pid
            self.pins["daemon"] = pin(self.pid, args.cpu_daemon, "copytraderd")
            harness.wait_http_ok(f"{name}: daemon ready", self.base, timeout=args.ready_timeout, interval=0.1,
                                 http_timeout=30)
            self.startup_s = time.monotonic() - t0
            # READY does not wait for the followers' state (README): measuring starts once it is
            # all in, or the first fills would measure the background loading.
            def loaded():
                st, text = harness.http("GET", self.base + "/health/ready")
                try:
                    return json.loads(text).get("followers_loading", 0) == 0
                except ValueError:
                    return False
            harness.wait_for(f"{name}: followers' state loaded", loaded, timeout=args.ready_timeout, interval=0.1)
            self.loaded_s = time.monotonic() - t0
            self.adm = Keep(self.sim.admin)
            self.dbg = DebugLatency(self.base)
        except BaseException:
            self.close(failed=True)
            raise

    def leader_fill(self, i):
        side = "BUY" if i % 2 == 0 else "SELL"
        st, text = self.adm.call("POST", "/admin/order", {"account": "leader", "symbol": SYMBOL["symbol"],
                                                          "side": side, "type": "MARKET", "quantity": QTY})
        if st != 200 or json.loads(text).get("status") != "FILLED":
            raise TestFailure(f"{self.name}: leader order {i} not filled: {st} {text}")

    def scrape(self):
        return harness.fetch_metrics(self.base, timeout=60)

    def follower_orders_at_sim(self):
        st, text = self.adm.call("GET", "/admin/accounts")
        if st != 200:
            raise TestFailure(f"/admin/accounts -> {st}")
        return {a["name"]: a["orders"] for a in json.loads(text)}

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.close()
                return False
            except BaseException:
                self.close(failed=True)  # a daemon that did not stop clean: the rest still goes
                raise
        self.close(failed=True)
        return False

    def close(self, failed=False):
        if self.daemon:
            if failed:
                print(f"--- {self.name}: daemon log tail:\n{self.daemon.p.tail(40)}", file=sys.stderr)
                self.daemon.p.stop(timeout=30)
            else:
                harness.stop_clean(self.daemon)
            self.daemon = None
        if failed:
            print(f"--- {self.name}: exsim log tail:\n{self.sim.p.tail(20)}", file=sys.stderr)
        self.sim.p.stop()
        if os.environ.get("CT_KEEP_TMP", "0") != "1":
            shutil.rmtree(self.work, ignore_errors=True)


# ---- latency ----

def run_latency(args, n, durability):
    name = f"bench_n{n}_{durability}"
    with Fixture(args, name, n, durability) as fx:
        return _latency(args, fx, n, durability)


def _latency(args, fx, n, durability):
    name = fx.name
    load0 = os.getloadavg()
    total = args.warmup + args.fills
    use_dbg = args.debug_latency != "off"
    # Probe the endpoint before the first fill (a reset of an empty histogram changes nothing).
    if use_dbg and not fx.dbg.reset():
        use_dbg = False
        print(f"bench: {name}: the daemon has no /debug/latency (404): per-fill values from metric scrapes",
              file=sys.stderr)
    base_m = fx.scrape()
    acked0 = hist_state(base_m, ACK)["count"]
    prev = {h: hist_state(base_m, h) for h in (SEND, ACK, E2E)}
    h_a, h_ack, h_b = Hdr(), Hdr(), Hdr()
    req_send, req_ack = PromBuckets(), PromBuckets()
    exact = True
    est = 0.002  # running estimate of a fill's copy time (s): the first poll comes a bit before it
    t_meas = m_meas = None
    fills_done = 0  # fills the daemon's /debug/latency has counted since its last reset
    for i in range(total):
        if i == args.warmup:
            if use_dbg:
                fx.dbg.reset()
                fills_done = 0
            m_meas = fx.scrape()
            t_meas = time.monotonic()
        t0 = time.monotonic()
        fx.leader_fill(i)
        if use_dbg:
            # Done when the daemon has the fill's last answer: its per-fill histogram grew by one.
            want = fills_done + 1
            poll(f"{name}: fill {i}: the daemon's last answer", lambda: (fx.dbg.ack_count() or 0) >= want,
                 timeout=120, first_wait=0.8 * est, interval=max(0.0005, est / 10))
            fills_done = want
            est = 0.7 * est + 0.3 * (time.monotonic() - t0)
            pace(t0, args.gap_ms)
            continue
        want = acked0 + n * (i + 1)
        m = poll(f"{name}: fill {i}: the daemon's answers", lambda: (lambda mm: mm if hist_state(
            mm, ACK)["count"] >= want else None)(fx.scrape()), timeout=120, first_wait=0.8 * est,
            interval=max(0.0005, est / 10))
        est = 0.7 * est + 0.3 * (time.monotonic() - t0)
        pace(t0, args.gap_ms)
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
    m_end = fx.scrape()
    daemon_reported = None
    if use_dbg:
        j = fx.dbg.read()
        h_a, h_ack = hdr_from_debug(j["fill_send_us"], "fill_send_us"), hdr_from_debug(j["fill_ack_us"], "fill_ack_us")
        if h_a.total != args.fills or h_ack.total != args.fills:
            raise TestFailure(f"{name}: /debug/latency counted {h_a.total} sends and {h_ack.total} answers, "
                              f"want {args.fills} fills")
        daemon_reported = {k: {p: j[k].get(p) for p in ("p50", "p99", "p999", "max", "count")}
                           for k in ("fill_send_us", "fill_ack_us")}
        ds = hist_delta(hist_state(m_end, SEND), hist_state(m_meas, SEND))
        da = hist_delta(hist_state(m_end, ACK), hist_state(m_meas, ACK))
        if ds["count"] != n * args.fills or da["count"] != n * args.fills:
            raise TestFailure(f"{name}: {ds['count']} sends and {da['count']} answers, want {n * args.fills}")
        req_send.add(ds)
        req_ack.add(da)
    # (b) on the simulator's clock: order k of every account belongs to leader fill k.
    b_read = n <= args.b_max_n
    spans, bad = [], 0
    if b_read:
        _, text = fx.adm.call("GET", "/admin/orders?account=leader")
        leader_times = [o["time"] for o in json.loads(text)]
        last, first = [0] * total, [None] * total
        for f in fx.followers:
            _, text = fx.adm.call("GET", f"/admin/orders?account={f}")
            ol = json.loads(text)
            if len(ol) != total:
                raise TestFailure(f"{name}: {f} has {len(ol)} orders at the simulator, want {total}")
            for k, o in enumerate(ol):
                bad += o["status"] != "FILLED"
                last[k] = max(last[k], o["time"])
                first[k] = o["time"] if first[k] is None else min(first[k], o["time"])
        for k in range(args.warmup, total):
            h_b.record(max(0, last[k] - leader_times[k]) * 10**6)
            spans.append(last[k] - first[k])
    else:
        counts = fx.follower_orders_at_sim()
        short = [f for f in fx.followers if counts.get(f) != total]
        if short:
            raise TestFailure(f"{name}: {len(short)} followers do not have {total} orders at the simulator")
    rejected = metric_sum(m_end, "ct_follower_orders_total") - metric_sum(m_end, "ct_follower_orders_total",
                                                                            result="filled")
    if bad:
        raise TestFailure(f"{name}: {bad} follower orders not FILLED")
    ceilings = run_ceilings(args, fx)
    e2e_daemon = hist_delta(hist_state(m_end, E2E), hist_state(m_meas, E2E))
    return {
        "kind": "latency", "n": n, "durability": durability, "fills": args.fills, "warmup_fills": args.warmup,
        "rest_connections_per_host": rest_connections(args, n),
        "pins": fx.pins, "loadavg_start": load0, "loadavg_end": os.getloadavg(),
        "startup_s": round(fx.startup_s, 3), "loaded_s": round(fx.loaded_s, 3), "wall_s": round(wall, 3),
        "orders_per_s_paced": round(n * args.fills / wall, 1),
        "a_source": "debug_latency" if use_dbg else "metric_scrapes",
        "a_exact": bool(use_dbg or exact),
        "a_send_last_per_fill": h_a.summary_ns(), "ack_last_per_fill": h_ack.summary_ns(),
        "daemon_reported_us": daemon_reported,
        "b_read": b_read,
        "b_e2e_sim_clock_per_fill": h_b.summary_ns() if b_read else None,
        "a_send_per_request_bucket_bounds": {p: req_send.percentile_bound_ns(float(p)) for p in ("50", "99", "99.9")},
        "ack_per_request_bucket_bounds": {p: req_ack.percentile_bound_ns(float(p)) for p in ("50", "99", "99.9")},
        "send_share_within_0.25ms": req_send.share_within(0.00025),
        "send_share_within_2.5ms": req_send.share_within(0.0025),
        "follower_orders_not_filled_daemon": rejected,
        "follower_spread_ms_p50": sorted(spans)[len(spans) // 2] if spans else None,
        "daemon_e2e_buckets": {"le": e2e_daemon["les"], "count": e2e_daemon["per"]},
        "send_buckets": {"le": req_send.les, "count": req_send.per},
        "ceilings": ceilings,
        "hist": {"a": h_a.to_json(), "ack": h_ack.to_json(), "b": h_b.to_json() if b_read else None},
        "_hdr": {"a": h_a, "b": h_b if b_read else None, "ack": h_ack},
    }


# ---- throughput ----

def run_throughput(args, n, durability):
    name = f"bench_tp_n{n}_{durability}"
    with Fixture(args, name, n, durability) as fx:
        return _throughput(args, fx, n, durability)


def _throughput(args, fx, n, durability):
    name = fx.name
    load0 = os.getloadavg()
    use_dbg = args.debug_latency != "off" and fx.dbg.reset()

    def fills_answered():
        """Leader fills whose copies are all answered, as the daemon counts them."""
        if use_dbg:
            return fx.dbg.ack_count()
        return int(hist_state(fx.scrape(), ACK)["count"] // n)

    # Warm-up, one fill at a time: connections opened, caches warm.
    made = 0
    for _ in range(args.warmup):
        fx.leader_fill(made)
        made += 1
        poll(f"{name}: warm-up fill {made}", lambda: fills_answered() >= made, timeout=120, interval=0.002)
    if use_dbg:
        fx.dbg.reset()
        base_done = 0
    else:
        base_done = made
    m0 = fx.scrape()
    acks0 = hist_state(m0, ACK)["count"]
    conns0 = metric_sum(m0, "ct_rest_connections_opened_total")
    pgm = pg_postmaster(fx.pg)
    d0, s0, mc0 = proc_sample(fx.pid), proc_sample(fx.sim.p.proc.pid), machine_cpu()
    pg0, me0 = pg_cpu_s(pgm), self_cpu_s()
    t0 = time.monotonic()
    t_end = t0 + args.tp_seconds
    perf = start_perf(args, fx, name) if args.perf else None
    polls = 0
    peak_conns = 0
    # REST requests in curl's hands and waiting in the daemon's pool (gauges; None when the
    # daemon has no such metric), sampled with the connections.
    peak_rest = {"ct_rest_in_flight": None, "ct_rest_queued": None}
    next_ss = t0 + 5
    while True:
        now = time.monotonic()
        if now >= t_end:
            break
        done = fills_answered() - base_done
        polls += 1
        outstanding = (made - args.warmup) - done
        while outstanding < args.tp_outstanding:
            fx.leader_fill(made)
            made += 1
            outstanding += 1
        if now >= next_ss:
            peak_conns = max(peak_conns, tcp_established(int(fx.sim.rest.split(":")[1])) or 0)
            ms = fx.scrape()
            for g in peak_rest:
                if any(nm == g for (nm, _ls) in ms):
                    peak_rest[g] = max(peak_rest[g] or 0, metric_sum(ms, g))
            next_ss = now + 5
        time.sleep(args.tp_poll)
    # The window's end: counters first, then let the outstanding fills drain (not counted).
    t1 = time.monotonic()
    m1 = fx.scrape()
    d1, s1, mc1 = proc_sample(fx.pid), proc_sample(fx.sim.p.proc.pid), machine_cpu()
    pg1, me1 = pg_cpu_s(pgm), self_cpu_s()
    perf_top = stop_perf(perf) if perf else None
    acks = hist_state(m1, ACK)["count"] - acks0
    window = t1 - t0
    lat = fx.dbg.read() if use_dbg else None
    # The outstanding fills drain (not counted). A drain that does not finish, or a follower
    # without one order per fill, is a correctness problem: reported in the result ("problems")
    # and the table, so the window's numbers are not lost with it.
    problems = []
    try:
        poll(f"{name}: the last fills' answers", lambda: fills_answered() - base_done >= made - args.warmup,
             timeout=args.tp_drain_timeout, interval=0.05)
    except TestFailure as e:
        problems.append(str(e) + f" ({fills_answered() - base_done} of {made - args.warmup} fills answered)")
    m2 = fx.scrape()
    counts = fx.follower_orders_at_sim()
    short = [f for f in fx.followers if counts.get(f) != made]
    if short:
        problems.append(f"{len(short)} followers do not have {made} orders at the simulator "
                        f"(e.g. {short[0]}: {counts.get(short[0])})")
    not_filled = metric_sum(m2, "ct_follower_orders_total") - metric_sum(m2, "ct_follower_orders_total",
                                                                          result="filled")
    if problems:
        print(f"bench: {name}: PROBLEM: " + "; ".join(problems), file=sys.stderr)
        print(f"--- {name}: daemon log tail:\n{fx.daemon.p.tail(15)}", file=sys.stderr)
    skips = metric_sum(m2, "ct_copy_skips_total")
    conns_end = tcp_established(int(fx.sim.rest.split(":")[1]))
    d_cpu, s_cpu = cpu_s(d1) - cpu_s(d0), cpu_s(s1) - cpu_s(s0)
    ncpu = os.cpu_count()
    res = {
        "kind": "throughput", "n": n, "durability": durability, "pins": fx.pins,
        "rest_connections_per_host": rest_connections(args, n),
        "loadavg_start": load0, "loadavg_end": os.getloadavg(), "startup_s": round(fx.startup_s, 3),
        "window_s": round(window, 3), "outstanding_fills": args.tp_outstanding, "progress_polls": polls,
        "progress_source": "debug_latency" if use_dbg else "metric_scrapes",
        "leader_fills_made": made - args.warmup, "follower_orders_answered": acks,
        "orders_per_s": round(acks / window, 1),
        "leader_fills_per_s": round(acks / n / window, 2),
        "daemon_cpu_s": round(d_cpu, 3), "daemon_cpu_us_per_order": round(1e6 * d_cpu / acks, 2) if acks else None,
        "daemon_cpu_user_s": round(d1["cpu_user_s"] - d0["cpu_user_s"], 3),
        "daemon_cpu_sys_s": round(d1["cpu_sys_s"] - d0["cpu_sys_s"], 3),
        "daemon_cores_used": round(d_cpu / window, 3),
        "sim_cpu_s": round(s_cpu, 3), "sim_cpu_us_per_order": round(1e6 * s_cpu / acks, 2) if acks else None,
        "sim_cores_used": round(s_cpu / window, 3),
        "postgres_cores_used": round((pg1 - pg0) / window, 3),
        "driver_cores_used": round((me1 - me0) / window, 3),
        "journal_writes": hist_means(m1, m0, "ct_journal_write_seconds", "kind"),
        "rest_requests": hist_means(m1, m0, "ct_rest_request_seconds", "endpoint"),
        "machine_busy_share": round((mc1[0] - mc0[0]) / max(1, mc1[1] - mc0[1]), 3),
        "machine_cores_busy": round((mc1[0] - mc0[0]) / max(1, mc1[1] - mc0[1]) * ncpu, 3),
        "daemon_peak_rss_mib": round(d1["hwm"] / 2**20, 1), "daemon_rss_end_mib": round(d1["rss"] / 2**20, 1),
        "sim_peak_rss_mib": round(s1["hwm"] / 2**20, 1),
        "rest_connections_opened_total": metric_sum(m2, "ct_rest_connections_opened_total"),
        "rest_connections_opened_in_window": metric_sum(m1, "ct_rest_connections_opened_total") - conns0,
        "sim_connections_established_peak_sampled": peak_conns, "sim_connections_established_end": conns_end,
        "rest_in_flight_peak_sampled": peak_rest["ct_rest_in_flight"],
        "rest_queued_peak_sampled": peak_rest["ct_rest_queued"],
        "follower_orders_not_filled": not_filled, "skips": skips, "problems": problems,
        "order_results": {res_: metric_sum(m2, "ct_follower_orders_total", result=res_)
                          for res_ in sorted({dict(ls).get("result", "") for (nm, ls) in m2
                                              if nm == "ct_follower_orders_total"})},
        "fill_latency_us_in_window": {k: {p: lat[k].get(p) for p in ("count", "p50", "p99", "p999", "max")}
                                      for k in ("fill_send_us", "fill_ack_us")} if lat else None,
        "perf_top": perf_top,
    }
    res["ceilings"] = run_ceilings(args, fx)
    oc = (res["ceilings"].get("order") or {}).get("requests_per_s")
    res["ratio_to_order_ceiling"] = round(res["orders_per_s"] / oc, 3) if oc else None
    return res


def start_perf(args, fx, name):
    if not shutil.which("perf"):
        print("bench: perf not installed: no profile", file=sys.stderr)
        return None
    out = os.path.join(args.out, f"{name}.perf.data")
    # -g walks frame pointers, which -O2 code mostly lacks: callers are often missing. dwarf
    # unwinds properly at the cost of a much larger perf.data (--perf-call-graph dwarf).
    cg = ["-g"] if args.perf_call_graph == "fp" else ["--call-graph", "dwarf,16384"]
    p = subprocess.Popen(["perf", "record", *cg, "-F", str(args.perf_freq), "-p", str(fx.pid), "-o", out,
                          "--", "sleep", str(max(5, min(args.tp_seconds - 10, 30)))],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return (p, out)


def stop_perf(perf):
    p, out = perf
    try:
        p.wait(timeout=120)
    except subprocess.TimeoutExpired:
        p.terminate()
        p.wait()
    r = subprocess.run(["perf", "report", "-i", out, "--no-children", "--stdio", "--percent-limit", "0.7",
                        "-g", "none", "--sort", "dso,symbol"], capture_output=True, text=True)
    top = []
    for line in r.stdout.splitlines():
        m = re.match(r"^\s+([\d.]+)%\s+(\S+)\s+\[.\]\s+(.*)$", line)
        if m:
            top.append([float(m.group(1)), m.group(2), re.sub(r"(\s+-)+\s*$", "", m.group(3)).strip()])
    return {"data": out, "top": top[:40]}


# ---- ceilings (wrk) ----

def pace(t0, gap_ms):
    """The next leader fill no sooner than gap_ms after the last one started: Binance allows an
    account 300 orders per 10 s, and a latency run faster than that measures the daemon's rate
    budget (orders wait for the next window), not its copy path."""
    left = t0 + gap_ms / 1000 - time.monotonic()
    if left > 0:
        time.sleep(left)


def run_ceilings(args, fx):
    if args.wrk_seconds <= 0 or not shutil.which("wrk"):
        return {}
    out = {"ping": run_wrk(args, fx, "ping")}
    if fx.wrk_keys:
        out["order"] = run_wrk(args, fx, "order")
    return out


def run_wrk(args, fx, kind):
    """wrk -t1 -c C -d S (keep-alive), pinned to --cpu-wrk: GET /fapi/v1/ping (ping.lua) or real
    MARKET orders on the wrk accounts (order.lua)."""
    if kind == "ping":
        lua, url, extra, endpoint = "ping.lua", f"http://{fx.sim.rest}/fapi/v1/ping", [], "GET /fapi/v1/ping"
    else:
        lua, url, extra, endpoint = ("order.lua", f"http://{fx.sim.rest}/fapi/v1/order", ["--", QTY] + fx.wrk_keys,
                                     "POST /fapi/v1/order MARKET (unsigned_ok accounts)")
    argv = ["wrk", "-t", "1", "-c", str(args.wrk_connections), "-d", f"{args.wrk_seconds}s", "--latency",
            "-s", os.path.join(HERE, lua), url] + extra
    if args.cpu_wrk:
        argv = ["taskset", "-c", args.cpu_wrk] + argv
    load = os.getloadavg()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=args.wrk_seconds + 60)
    m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", r.stdout)
    errs = re.search(r"Socket errors:.*", r.stdout)
    mine = re.search(r"^ceiling: .*$", r.stdout, re.M)
    nf = re.search(r"(\d+) not FILLED", r.stdout)
    lat = dict(re.findall(r"^\s+(50|99)(?:\.000)?%\s+(\S+)", r.stdout, re.M))
    return {"endpoint": endpoint, "connections": args.wrk_connections, "threads": 1, "cpu": args.cpu_wrk or None,
            "accounts": len(fx.wrk_keys) if kind == "order" else None,
            "seconds": args.wrk_seconds, "requests_per_s": float(m.group(1)) if m else None,
            "non_2xx": int(non2xx.group(1)) if non2xx else 0, "not_filled": int(nf.group(1)) if nf else None,
            "socket_errors": errs.group(0) if errs else None, "summary": mine.group(0) if mine else None,
            "latency_p50": lat.get("50"), "latency_p99": lat.get("99"), "loadavg_before": load, "rc": r.returncode}


# ---- output ----

def ms(ns, bound=False):
    if ns is None:
        return "-"
    return ("<=" if bound else "") + f"{ns / 1e6:.3f}"


def _ceil(r, kind):
    return ((r.get("ceilings") or {}).get(kind) or {}).get("requests_per_s")


def _num(v):
    return "-" if v is None else f"{v:.0f}"


def table(results):
    lines = []
    lat = [r for r in results if r["kind"] == "latency"]
    if lat:
        hdr = (f"{'N':>5} {'durab':>5} {'fills':>5} | {'(a) p50':>9} {'p99':>9} {'p99.9':>9} {'max':>9} |"
               f" {'ack p50':>9} {'p99':>9} {'p99.9':>9} {'max':>9} | {'(b) p50':>7} {'p99':>5} {'p99.9':>5}"
               f" {'max':>5} | {'ping rps':>8} {'order rps':>9} | {'load':>9}")
        lines += ["latency, ms per leader fill: (a) frame received -> last follower request written;"
                  " ack = frame -> last answer ('<=' = bucket upper bound, metric fallback);"
                  " (b) leader fill -> last follower order, simulator clock (1 ms resolution)", hdr, "-" * len(hdr)]
        for r in lat:
            a, k, b = r["a_send_last_per_fill"], r["ack_last_per_fill"], r["b_e2e_sim_clock_per_fill"]
            bound = not r["a_exact"]
            bcols = (f"{b['p50'] / 1e6:>7.0f} {b['p99'] / 1e6:>5.0f} {b['p99.9'] / 1e6:>5.0f} {b['max'] / 1e6:>5.0f}"
                     if b else f"{'-':>7} {'-':>5} {'-':>5} {'-':>5}")
            pr, orr = _ceil(r, "ping"), _ceil(r, "order")
            lines.append(
                f"{r['n']:>5} {r['durability']:>5} {r['fills']:>5} | {ms(a['p50'], bound):>9} {ms(a['p99'], bound):>9}"
                f" {ms(a['p99.9'], bound):>9} {ms(a['max'], bound):>9} | {ms(k['p50'], bound):>9}"
                f" {ms(k['p99'], bound):>9} {ms(k['p99.9'], bound):>9} {ms(k['max'], bound):>9} | {bcols} |"
                f" {(f'{pr:.0f}' if pr else '-'):>8} {(f'{orr:.0f}' if orr else '-'):>9} |"
                f" {r['loadavg_start'][0]:.2f}-{r['loadavg_end'][0]:.2f}")
        lines.append("per request (daemon buckets, upper bounds): " + "; ".join(
            f"N={r['n']} {r['durability']}: send p50 {ms(r['a_send_per_request_bucket_bounds']['50'], True)}"
            f" p99 {ms(r['a_send_per_request_bucket_bounds']['99'], True)},"
            f" <=0.25ms {100 * (r['send_share_within_0.25ms'] or 0):.1f}%,"
            f" <=2.5ms {100 * (r['send_share_within_2.5ms'] or 0):.1f}%" for r in lat))
    tp = [r for r in results if r["kind"] == "throughput"]
    for r in tp:
        oc, pc = _ceil(r, "order"), _ceil(r, "ping")
        lines += [
            "",
            f"throughput: N={r['n']} journal {r['durability']}, {r['window_s']:.1f} s, at most"
            f" {r['outstanding_fills']} leader fills outstanding (pins: {r['pins']}; load"
            f" {r['loadavg_start'][0]:.2f}-{r['loadavg_end'][0]:.2f})",
            f"  follower orders answered/s  {r['orders_per_s']:.0f}   ({r['follower_orders_answered']:.0f} orders,"
            f" {r['leader_fills_per_s']:.1f} leader fills/s)",
            f"  CPU per order               daemon {r['daemon_cpu_us_per_order']} us"
            f" ({r['daemon_cores_used']:.2f} cores), simulator {r['sim_cpu_us_per_order']} us"
            f" ({r['sim_cores_used']:.2f} cores); PostgreSQL {r['postgres_cores_used']:.2f} cores, this driver"
            f" {r['driver_cores_used']:.2f}; machine {r['machine_cores_busy']:.2f} of {os.cpu_count()} cores busy",
            "  journal writes (mean ms)    " + ", ".join(f"{k} {v['mean_ms']} x{v['count']}"
                                                     for k, v in r["journal_writes"].items()),
            "  REST requests (mean ms)     " + ", ".join(f"{k} {v['mean_ms']} x{v['count']}"
                                                     for k, v in r["rest_requests"].items() if v["count"]),
            f"  peak RSS                    daemon {r['daemon_peak_rss_mib']} MiB, simulator {r['sim_peak_rss_mib']} MiB",
            f"  connections                 opened {r['rest_connections_opened_total']:.0f} in all"
            f" ({r['rest_connections_opened_in_window']:.0f} in the window); established at the simulator:"
            f" peak sampled {r['sim_connections_established_peak_sampled']}, end {r['sim_connections_established_end']}",
            f"  REST pool (peak sampled)    in curl {_num(r.get('rest_in_flight_peak_sampled'))},"
            f" waiting in the pool {_num(r.get('rest_queued_peak_sampled'))}",
            f"  ceilings (wrk, same run)    order {(f'{oc:.0f}' if oc else '-')} rps, ping {(f'{pc:.0f}' if pc else '-')}"
            f" rps; daemon / order ceiling = "
            + (f"{100 * r['ratio_to_order_ceiling']:.0f}%" if r["ratio_to_order_ceiling"] else "-"),
            f"  not filled {r['follower_orders_not_filled']:.0f}, skips {r['skips']:.0f}"
            + (f"; PROBLEMS: {'; '.join(r['problems'])}" if r.get("problems") else ""),
        ]
        if r.get("fill_latency_us_in_window"):
            fl = r["fill_latency_us_in_window"]
            lines.append(f"  per fill under load (us)    send p50 {fl['fill_send_us']['p50']} p99 {fl['fill_send_us']['p99']};"
                         f" ack p50 {fl['fill_ack_us']['p50']} p99 {fl['fill_ack_us']['p99']}")
        if r.get("perf_top"):
            lines.append("  perf (daemon, self time):")
            lines += [f"    {p:5.1f}%  {dso:<22} {sym}" for p, dso, sym in r["perf_top"]["top"][:25]]
    return "\n".join(lines)


def plot(results, png, datadir):
    """gnuplot PNG: (a), ack and (b) by percentile (x = 1/(1-p), log), one line per run."""
    results = [r for r in results if r["kind"] == "latency"]
    if not results:
        return False
    if not shutil.which("gnuplot"):
        print("bench: gnuplot not installed: no plot", file=sys.stderr)
        return False
    panels = []
    for key, title in (("a", "(a) frame received -> last follower request written (ms)"),
                       ("ack", "frame received -> last follower order answered (ms)"),
                       ("b", "(b) leader fill -> last follower order, simulator clock (ms)")):
        lines = []
        for r in results:
            h = r["_hdr"][key]
            if h is None or not h.total:
                continue
            f = os.path.join(datadir, f"{key}_n{r['n']}_{r['durability']}.dat")
            with open(f, "w") as out:
                for p, v in h.distribution():
                    x = 1.0 / (1.0 - p / 100.0) if p < 100.0 else 1.0 / (0.5 / h.total)
                    out.write(f"{x} {max(v, 1000) / 1e6}\n")
            lines.append(f"'{f}' using 1:2 with steps lw 2 title 'N={r['n']} {r['durability']}'")
        if lines:
            panels.append((title, lines))
    gp = ["set terminal pngcairo size 2000,650 font ',10'" if _has_cairo() else "set terminal png size 2000,650",
          f"set output '{png}'", f"set multiplot layout 1,{len(panels)}", "set logscale x", "set logscale y",
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


def selftest():
    """Parsing of /debug/latency's shape against a hand-written answer (python3 copy_latency.py
    --selftest): exact values, counts, min/max, and clear failures on bad input."""
    h = {"count": 6, "min": 180, "max": 2093, "p50": 240, "p99": 2093, "p999": 2093,
         "buckets": [[180, 1], [240, 3], [1999, 1], [2093, 1]]}
    x = hdr_from_debug(h, "fill_send_us")
    assert x.total == 6 and x.min == 180_000 and x.max == 2_093_000, x.summary_ns()
    assert 240_000 <= x.percentile(50) <= 240_511, x.percentile(50)
    assert x.percentile(99) == 2_093_000 and x.percentile(0) <= 180_511
    assert 1_999_000 <= x.percentile(80) <= 1_999_000 + 1024, x.percentile(80)  # 1 KiB-wide HDR slot there
    empty = hdr_from_debug({"count": 0, "min": 0, "max": 0, "p50": 0, "buckets": []}, "e")
    assert empty.total == 0 and empty.percentile(50) is None
    for bad, why in (({"count": 2, "min": 1, "max": 1, "buckets": [[1, 1]]}, "count says"),
                     ({"count": 1, "min": 1, "max": 1, "buckets": [[1, 0]]}, "buckets[0]"),
                     ({"count": 1, "min": 1, "max": 1, "buckets": [["1", 1]]}, "buckets[0]"),
                     ({"count": 1, "min": 1, "buckets": [[1, 1]]}, "no 'max'"),
                     ([], "not an object")):
        try:
            hdr_from_debug(bad, "h")
        except TestFailure as e:
            assert why in str(e), (why, str(e))
        else:
            raise AssertionError(f"accepted {bad!r}")
    print("copy_latency selftest ok")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", help="RelWithDebInfo build directory")
    ap.add_argument("--n", default="1 10 100", help="follower counts of the latency runs (space separated)")
    ap.add_argument("--full", action="store_true", help="add N = 1000 to the latency runs")
    ap.add_argument("--fills", type=int, default=1000, help="measured leader fills per latency run")
    ap.add_argument("--warmup", type=int, default=20, help="leader fills before measuring (connections, caches)")
    ap.add_argument("--gap-ms", type=float, default=40,
                    help="latency runs: at least this long between leader fills (40: 25 orders/s per follower, "
                         "under Binance's 300 per 10 s)")
    ap.add_argument("--durability", default="fsync os", help="journal durabilities of the latency runs")
    ap.add_argument("--debug-latency", choices=("auto", "off"), default="auto",
                    help="per-fill values from the daemon's /debug/latency (auto: when it answers)")
    ap.add_argument("--b-max-n", type=int, default=1000,
                    help="read (b) from every follower's order list only up to this N (the reading is slow)")
    ap.add_argument("--throughput", action="store_true", help="also run the throughput benchmark")
    ap.add_argument("--tp-only", action="store_true", help="only the throughput benchmark")
    ap.add_argument("--tp-n", type=int, default=1000)
    ap.add_argument("--tp-seconds", type=float, default=60)
    ap.add_argument("--tp-outstanding", type=int, default=4, help="leader fills not yet fully answered, at most")
    ap.add_argument("--tp-drain-timeout", type=float, default=300,
                    help="seconds the fills outstanding at the window's end may take to finish")
    ap.add_argument("--tp-poll", type=float, default=0.005, help="seconds between progress reads")
    ap.add_argument("--tp-durability", default="os fsync")
    ap.add_argument("--perf", action="store_true", help="perf record -g the daemon during the throughput run")
    ap.add_argument("--perf-freq", type=int, default=999)
    ap.add_argument("--perf-call-graph", choices=("fp", "dwarf"), default="fp",
                    help="perf's unwinding: frame pointers (small, callers often lost) or dwarf (large)")
    ap.add_argument("--cpu-daemon", default="0", help="taskset CPU list for copytraderd ('' = unpinned)")
    ap.add_argument("--cpu-sim", default="1", help="taskset CPU list for the simulator")
    ap.add_argument("--cpu-wrk", default="0", help="taskset CPU list for wrk (the daemon is idle then)")
    ap.add_argument("--cpu-services", default="",
                    help="taskset CPU list for PostgreSQL and Redis ('' = unpinned; e.g. 1: the "
                         "simulator's, leaving the daemon a core of its own)")
    ap.add_argument("--rest-connections", type=int, default=0,
                    help="daemon.rest_connections_per_host (0 = N followers, within 512..4096)")
    ap.add_argument("--ready-timeout", type=float, default=600, help="seconds to wait for /health/ready")
    ap.add_argument("--out", default="bench-results")
    ap.add_argument("--wrk-seconds", type=int, default=5)
    ap.add_argument("--wrk-connections", type=int, default=64)
    ap.add_argument("--wrk-accounts", type=int, default=64, help="simulator accounts wrk's orders use")
    ap.add_argument("--selftest", action="store_true", help="check the /debug/latency parsing and exit")
    args = ap.parse_args()
    if args.selftest:
        selftest()
        return 0
    if not args.build:
        ap.error("--build is required")
    ns = [int(x) for x in args.n.split()]
    if args.full and 1000 not in ns:
        ns.append(1000)
    if args.tp_only:
        ns, args.throughput = [], True
    os.makedirs(args.out, exist_ok=True)
    args.service_pins = pin_services(args.cpu_services)
    stamp = benchlib.stamp()
    results = []
    try:
        for n in ns:
            for d in args.durability.split():
                t0 = time.monotonic()
                results.append(run_latency(args, n, d))
                print(f"bench: N={n} {d}: {args.fills} fills in {time.monotonic() - t0:.0f} s", file=sys.stderr,
                      flush=True)
        if args.throughput:
            for d in args.tp_durability.split():
                t0 = time.monotonic()
                results.append(run_throughput(args, args.tp_n, d))
                print(f"bench: throughput N={args.tp_n} {d}: {time.monotonic() - t0:.0f} s", file=sys.stderr,
                      flush=True)
    finally:
        if results:
            print(table(results))
            datadir = os.path.join(args.out, stamp + ".data")
            os.makedirs(datadir, exist_ok=True)
            png = os.path.join(args.out, stamp + ".png")
            plotted = plot(results, png, datadir)
            out = {"stamp": stamp, "host": benchlib.host_info(), "settings": vars(args),
                   "plot": png if plotted else None,
                   "runs": [{k: v for k, v in r.items() if k != "_hdr"} for r in results]}
            path = benchlib.write_results(args.out, stamp, out)
            print(f"bench: wrote {path}" + (f" and {png}" if plotted else ""))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TestFailure as e:
        print(f"bench: FAIL: {e}", file=sys.stderr)
        sys.exit(1)
