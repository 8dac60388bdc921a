#!/usr/bin/env python3
"""Scale of configuration (issue 7): copytraderd's start-up with 10,000 and 100,000 copy rules.

    config_scale.py --build DIR [--rules "10000 100000"] [--shapes "fanout grid"] [--leaders 100]
                    [--per-file 1000] [--settle 10] [--timeout 600] [--max-accounts 120000]
                    [--log-level info] [--out DIR] [--perf] [--keep]

Run it under tests/integration/with-services (scripts/bench --config-scale does): CT_TEST_PG,
CT_TEST_REDIS and CT_TEST_TMP must be set. Shapes, for R copy rules:
  fanout  one leader and R followers, each its own simulator account (R + 1 accounts): the worst
          case for start-up, since every account's time, positions, mode, leverage and equity are
          fetched over REST;
  grid    --leaders L leaders, each copied by the same R / L followers (every follower follows
          every leader; R / L + L accounts: 200 for R = 10,000 and L = 100).
Rules are spread over trader files (daemon.traders_dir, --per-file rules each, a follower's rules
in the file with its account, the leaders in their own file) and mix the sizing modes and limits a
real deployment has (multiplier, fixed_notional, equity_ratio; symbol lists, slippage, leverage
caps, loss stops). The simulator has every account (rate limits off, so the numbers are the
daemon's, not Binance's weight limits: see README.md).

What one run measures (times on CLOCK_MONOTONIC, the clock of the daemon's log stamps):
  ready_s    exec -> READY=1 on a stand-in NOTIFY_SOCKET (sd_notify, as systemd sees it: the
             daemon's own readiness, not an HTTP poll);
  rss/hwm    VmRSS read from /proc the moment READY=1 arrives, VmHWM (the kernel's peak) then,
             and both again after --settle s of steady state (refresh timers running);
  cpu        utime + stime at READY, and CPU used during the settle window (% of one core);
  requests   ct_rest_requests_total and ct_rest_responses_total by endpoint at READY (the REST
             requests start-up made), and again after the settle window;
  phases     from the daemon's log (info level): config + migrations, journal sync, copier
             set-up, server time, instruments, positions/mode/leverage/equity, streams, ready;
  check_s    `copytraderd --check-config` alone (parsing every file and secret file);
  metrics    size of /metrics and the time to fetch it after READY; stop_s: SIGTERM -> exit.
Output: a table on stdout and OUT/config-scale-<timestamp>.json. --perf records the start-up
with `perf record -g` (OUT/config-scale-<shape>-<R>.perf.data) when perf is usable.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import signal
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

MiB = 1024 * 1024

# Start-up phases: (name, regex of the log line that ends it). The first phase starts at exec.
PHASES = [
    ("config+migrations", r"\[main\] journal: \d+ migrations applied"),
    ("journal sync", r"\[main\] http: listening"),
    ("journal open+state+copier", r"start-up: server time of \d+ accounts"),
    ("server time", r"start-up: instruments of"),
    ("instruments", r"start-up: positions of"),
    ("positions..equity", r"start-up: leader streams opening|start-up: waiting for the journal"),
    ("streams+backfill", r"ready: every leader stream is up"),
]


def rule_lines(i):
    """YAML lines of the i-th rule: the mix of sizing modes and limits of a real deployment."""
    k = i % 10
    if k < 5:
        lines = ["sizing: multiplier", f"multiplier: {('1', '0.5', '2', '1.5', '0.25')[k]}"]
    elif k < 8:
        lines = ["sizing: fixed_notional", f"notional: {(100, 250, 1000)[k - 5]}"]
    else:
        lines = ["sizing: equity_ratio"]
    if i % 3 == 0:
        lines.append("symbols: [BTCUSDT, ETHUSDT]")
    if i % 4 == 1:
        lines += ["max_slippage_bps: 50", "max_leverage: 10"]
    if i % 7 == 2:
        lines += ["daily_loss_limit: 500", "max_drawdown_pct: 25"]
    if i % 11 == 3:
        lines.append("max_position_notional: 20000")
    return lines


def shape_accounts(shape, rules, leaders):
    """(leader names, follower names, [(rule id, leader, follower)])."""
    if shape == "fanout":
        ls = ["lead0"]
        fs = [f"f{i:06d}" for i in range(rules)]
        return ls, fs, [(f"{f}-r", "lead0", f) for f in fs]
    if shape == "grid":
        if rules % leaders:
            raise TestFailure(f"grid: {rules} rules do not split over {leaders} leaders")
        ls = [f"lead{i:03d}" for i in range(leaders)]
        fs = [f"f{i:06d}" for i in range(rules // leaders)]
        return ls, fs, [(f"{f}-{lead}", lead, f) for f in fs for lead in ls]
    raise TestFailure(f"unknown shape {shape!r}")


def account_yaml(name, sim, secrets):
    return (f"  - name: {name}\n    exchange: binance-usdm\n    rest_url: {sim.rest_url}\n"
            f"    ws_url: {sim.ws_url}\n    secret_file: {secrets}/{name}.yaml\n")


def write_config(work, port, pg, redis, sim, secrets, leaders, followers, rules, per_file, log_level):
    """The main file (daemon section only) and traders.d: leaders.yaml, then followers and their
    rules in files of about per_file rules (a follower's rules stay with its account)."""
    main = os.path.join(work, "copytrader.yaml")
    with open(main, "w") as f:
        f.write(f"daemon:\n  http_listen: 127.0.0.1:{port}\n  database: \"{pg}\"\n  redis: {redis}\n"
                f"  log_level: {log_level}\n")
    td = os.path.join(work, "traders.d")
    os.makedirs(td, exist_ok=True)
    with open(os.path.join(td, "000-leaders.yaml"), "w") as f:
        f.write("accounts:\n" + "".join(account_yaml(n, sim, secrets) for n in leaders))
    by_follower = {}
    for i, (rid, lead, fol) in enumerate(rules):
        by_follower.setdefault(fol, []).append((i, rid, lead))
    files, acc, rl, n_in = 0, [], [], 0

    def flush():
        nonlocal files, acc, rl, n_in
        if not acc:
            return
        files += 1
        with open(os.path.join(td, f"{files:04d}-followers.yaml"), "w") as f:
            f.write("accounts:\n" + "".join(acc) + "copy_rules:\n" + "".join(rl))
        acc, rl, n_in = [], [], 0

    for fol in followers:
        acc.append(account_yaml(fol, sim, secrets))
        for i, rid, lead in by_follower.get(fol, []):
            rl.append(f"  - id: {rid}\n    leader: {lead}\n    follower: {fol}\n"
                      + "".join(f"    {x}\n" for x in rule_lines(i)))
            n_in += 1
        if n_in >= per_file:
            flush()
    flush()
    return main, files + 1


def parse_phases(log_path, t_exec):
    """[(phase, seconds)] and the log's stamp of each phase end (relative to exec)."""
    try:
        with open(log_path, errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return []
    out, prev = [], 0.0
    k = 0
    for line in lines:
        if k >= len(PHASES):
            break
        m = re.match(r"^(\d+\.\d{3}) ", line)
        if not m:
            continue
        for j in range(k, len(PHASES)):
            if re.search(PHASES[j][1], line):
                at = float(m.group(1)) - t_exec
                for skipped in range(k, j):  # a phase whose line did not come (e.g. no wait)
                    out.append({"phase": PHASES[skipped][0], "s": None, "end_s": None})
                out.append({"phase": PHASES[j][0], "s": round(at - prev, 3), "end_s": round(at, 3)})
                prev, k = at, j + 1
                break
    return out


def scrape(base):
    """(parsed /metrics or None, seconds, bytes): a page too big to fetch (per-rule series with
    100,000 rules) is a result, not a failure."""
    t = time.monotonic()
    try:
        st, text = harness.http("GET", base + "/metrics", timeout=120)
    except Exception as e:  # IncompleteRead: the server dropped a slow reader
        say(f"/metrics: {e.__class__.__name__} after {time.monotonic() - t:.1f} s")
        return None, round(time.monotonic() - t, 3), None
    took = round(time.monotonic() - t, 3)
    return (harness.parse_metrics(text) if st == 200 else None), took, len(text)


def rest_counts(metrics):
    """{"requests": total, "by_endpoint": {endpoint: answers}} from the daemon's metrics."""
    by = {}
    for (n, ls), v in metrics.items():
        if n == "ct_rest_responses_total":
            ep = dict(ls).get("endpoint", "?")
            by[ep] = by.get(ep, 0) + int(v)
    return {"requests": int(harness.metric(metrics, "ct_rest_requests_total")),
            "by_endpoint": dict(sorted(by.items(), key=lambda kv: -kv[1]))}


def perf_usable():
    if not shutil.which("perf"):
        return False
    r = subprocess.run(["perf", "record", "-q", "-o", "/dev/null", "--", "true"], capture_output=True)
    return r.returncode == 0


def run_one(args, shape, n_rules):
    pg_root, redis, tmp = (harness.require_env(v) for v in ("CT_TEST_PG", "CT_TEST_REDIS", "CT_TEST_TMP"))
    name = f"cfgscale_{shape}_{n_rules}"
    leaders, followers, rules = shape_accounts(shape, n_rules, args.leaders)
    n_acc = len(leaders) + len(followers)
    if n_acc > args.max_accounts:
        print(f"bench: {shape} R={n_rules}: {n_acc} accounts > --max-accounts {args.max_accounts}: skipped",
              file=sys.stderr)
        return None
    work = tempfile.mkdtemp(prefix=name + ".", dir=args.work or tmp)
    secrets = os.path.join(work, "secrets")
    res = {"shape": shape, "rules": n_rules, "accounts": n_acc, "leaders": len(leaders),
           "followers": len(followers), "log_level": args.log_level}
    t0 = time.monotonic()
    accounts = harness.make_accounts(secrets, leaders + followers, "scale-0123456789", "scale-9876543210",
                                     balance="100000")
    sim = benchlib.start_sim(args.build, work, accounts, symbols=SYMBOLS, event_log_limit=50,
                             timeout=args.timeout)
    res["sim_start_s"] = round(sim.start_s, 3)
    res["sim_rss_mib"] = round((benchlib.proc_sample(sim.p.proc.pid) or {"rss": 0})["rss"] / MiB, 1)
    daemon = ns = sampler = None
    try:
        pg = harness.fresh_database(pg_root, name)
        port = harness.free_port()
        base = f"http://127.0.0.1:{port}"
        cfg, n_files = write_config(work, port, pg, redis, sim, secrets, leaders, followers, rules,
                                    args.per_file, args.log_level)
        res["trader_files"] = n_files
        res["config_bytes"] = sum(os.path.getsize(os.path.join(work, "traders.d", f))
                                  for f in os.listdir(os.path.join(work, "traders.d"))) + os.path.getsize(cfg)
        res["setup_s"] = round(time.monotonic() - t0, 1)
        say(f"{name}: {n_acc} accounts, {n_files} files set up in {res['setup_s']} s (simulator {sim.start_s:.1f} s)")
        exe = os.path.join(args.build, "daemon", "copytraderd")
        t = time.monotonic()
        r = subprocess.run([exe, "--check-config", cfg], capture_output=True, text=True, timeout=args.timeout)
        res["check_config_s"] = round(time.monotonic() - t, 3)
        if r.returncode != 0:
            raise TestFailure(f"--check-config failed: {r.stdout}{r.stderr[-2000:]}")

        at_ready, target = {}, {"pid": None}

        def on_msg(t, line):  # in the socket's thread, the moment the message arrives
            if line == "READY=1" and not at_ready and target["pid"]:
                at_ready.update(benchlib.proc_sample(target["pid"]) or {})

        ns = benchlib.NotifySocket(os.path.join(work, "notify.sock"), on_msg)
        env = {**os.environ, "NOTIFY_SOCKET": ns.path}
        argv = [exe, "--config", cfg]
        perf_out = None
        if args.perf:
            perf_out = os.path.join(args.out, f"config-scale-{shape}-{n_rules}.perf.data")
            argv = ["perf", "record", "-g", "-F", str(args.perf_freq), "-o", perf_out, "--"] + argv
        elif args.wrap:
            argv = shlex.split(args.wrap.replace("{out}", os.path.join(args.out, f"{shape}-{n_rules}"))) + argv
        t_exec = time.monotonic()
        daemon = harness.Process("copytraderd", argv, os.path.join(work, "copytraderd.log"), env=env)
        pid = daemon.proc.pid
        if args.perf:  # the daemon is perf's child: sample and signal it, not perf
            pid = benchlib.poll("copytraderd under perf", lambda: _child_pid(daemon.proc.pid), 10, interval=0.001)
        target["pid"] = pid
        sampler = benchlib.Sampler(pid, 0.05)
        sampler.start()
        t_ready = ns.wait("READY=1", args.timeout, proc=daemon.proc)
        res["ready_s"] = round(t_ready - t_exec, 3)
        say(f"{name}: READY after {res['ready_s']} s (--check-config {res['check_config_s']} s)")
        if not at_ready:
            raise TestFailure("no /proc sample at READY")
        res["at_ready"] = {"rss_mib": round(at_ready["rss"] / MiB, 1), "hwm_mib": round(at_ready["hwm"] / MiB, 1),
                           "cpu_user_s": at_ready["cpu_user_s"], "cpu_sys_s": at_ready["cpu_sys_s"],
                           "cpu_s": round(at_ready["cpu_user_s"] + at_ready["cpu_sys_s"], 2),
                           "threads": at_ready["threads"]}
        m, res["metrics_fetch_s"], res["metrics_bytes"] = scrape(base)
        res["rest_at_ready"] = rest_counts(m) if m else None
        res["phases"] = parse_phases(daemon.log_path, t_exec)
        # Steady state: the refresh timers (equity, tickers, drift gauges) over --settle seconds.
        s0 = benchlib.proc_sample(pid)
        time.sleep(args.settle)
        s1 = benchlib.proc_sample(pid)
        if s1 is None:
            raise TestFailure(f"copytraderd died after READY; log: {daemon.tail(20)}")
        cpu = (s1["cpu_user_s"] + s1["cpu_sys_s"]) - (s0["cpu_user_s"] + s0["cpu_sys_s"])
        res["settle"] = {"seconds": args.settle, "cpu_pct_one_core": round(100 * cpu / (s1["t"] - s0["t"]), 1),
                         "rss_mib": round(s1["rss"] / MiB, 1), "hwm_mib": round(s1["hwm"] / MiB, 1)}
        m, _, _ = scrape(base)
        res["settle"]["rest"] = rest_counts(m) if m else None
        res["peak_rss_sampled_mib"] = round(sampler.peak_rss() / MiB, 1)
        res["curve"] = [[round(s["t"] - t_exec, 2), round(s["rss"] / MiB, 1)] for s in sampler.samples[::10]]
        t = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        try:
            rc = daemon.proc.wait(args.timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure(f"copytraderd did not stop within {args.timeout}s of SIGTERM")
        res["stop_s"] = round(time.monotonic() - t, 3)
        res["exit"] = rc
        daemon.log.close()
        if perf_out:
            res["perf_data"] = perf_out
        return res
    except BaseException:
        if daemon:
            print(f"--- {name}: daemon log tail:\n{daemon.tail(30)}", file=sys.stderr)
            daemon.stop(timeout=30)
        print(f"--- {name}: exsim log tail:\n{sim.p.tail(10)}", file=sys.stderr)
        raise
    finally:
        harness.cleanup(lambda: sampler and sampler.stop(), lambda: ns and ns.close(),
                        lambda: sim.p.stop(timeout=60))
        if args.keep:
            print(f"bench: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def say(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def _child_pid(ppid):
    try:
        with open(f"/proc/{ppid}/task/{ppid}/children") as f:
            kids = f.read().split()
        return int(kids[0]) if kids else None
    except OSError:
        return None


SYMBOLS = [dict(harness.BTC_SYMBOL),
           dict(harness.BTC_SYMBOL, symbol="ETHUSDT", price="3000", step_size="0.01", min_qty="0.01",
                market_step_size="0.01", market_min_qty="0.01")]


def fmt(v, f="{:.2f}"):
    return "-" if v is None else f.format(v)


def table(results):
    hdr = (f"{'shape':>6} {'rules':>7} {'accts':>7} | {'READY s':>8} {'RSS@R':>7} {'HWM@R':>7} {'CPU@R s':>8} |"
           f" {'REST@R':>7} | {'RSS+' + 'settle':>10} {'HWM':>7} {'CPU %':>6} {'REST+':>7} | {'check s':>7}"
           f" {'/metrics':>9} {'stop s':>6}")
    lines = ["MiB; READY = exec -> sd_notify READY=1; @R = at READY; settle = after the settle window;"
             " REST = requests the daemon made (ct_rest_requests_total)", hdr, "-" * len(hdr)]
    for r in results:
        if "error" in r:
            lines.append(f"{r['shape']:>6} {r['rules']:>7}: {r['error']}")
            continue
        a, s = r["at_ready"], r["settle"]
        req0 = r["rest_at_ready"]["requests"] if r["rest_at_ready"] else None
        req1 = s["rest"]["requests"] if s["rest"] else None
        lines.append(
            f"{r['shape']:>6} {r['rules']:>7} {r['accounts']:>7} | {r['ready_s']:>8.2f} {a['rss_mib']:>7.1f}"
            f" {a['hwm_mib']:>7.1f} {a['cpu_s']:>8.2f} | {fmt(req0, '{:d}'):>7} |"
            f" {s['rss_mib']:>10.1f} {s['hwm_mib']:>7.1f} {s['cpu_pct_one_core']:>6.1f}"
            f" {fmt(req1 - req0 if req0 is not None and req1 is not None else None, '{:d}'):>7} |"
            f" {r['check_config_s']:>7.2f} {fmt(r['metrics_bytes'] and r['metrics_bytes'] / 1024, '{:.0f}'):>7}kB"
            f" {r['stop_s']:>6.2f}")
    lines.append("phases (s): " + "; ".join(
        f"{r['shape']} R={r['rules']}: " + ", ".join(f"{p['phase']} {fmt(p['s'])}" for p in r["phases"])
        for r in results if "error" not in r))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="RelWithDebInfo build directory")
    ap.add_argument("--rules", default="10000 100000", help="copy rule counts (space separated)")
    ap.add_argument("--shapes", default="fanout grid", help="fanout (1 leader, R followers), grid (L x R/L)")
    ap.add_argument("--leaders", type=int, default=100, help="leaders of the grid shape")
    ap.add_argument("--per-file", type=int, default=1000, help="copy rules per trader file")
    ap.add_argument("--settle", type=float, default=10, help="seconds of steady state measured after READY")
    ap.add_argument("--timeout", type=float, default=600, help="bound on one start-up (s)")
    ap.add_argument("--max-accounts", type=int, default=120000, help="skip runs with more accounts")
    ap.add_argument("--log-level", default="info", help="the daemon's log_level (info: phases are logged)")
    ap.add_argument("--out", default="bench-results")
    ap.add_argument("--perf", action="store_true", help="perf record -g the daemon's start-up")
    ap.add_argument("--perf-freq", type=int, default=999)
    ap.add_argument("--wrap", help="command line the daemon runs under (it must exec it: valgrind, "
                    "heaptrack ...); {out} is replaced by OUT/<shape>-<rules>")
    ap.add_argument("--keep", action="store_true", help="keep the work directories (configs, logs)")
    ap.add_argument("--work", help="where the work directories go (default $CT_TEST_TMP, removed at exit)")
    args = ap.parse_args()
    args.out = os.path.abspath(args.out)
    os.makedirs(args.out, exist_ok=True)
    if args.perf and not perf_usable():
        print("bench: perf is not usable here (not installed or perf_event_paranoid): --perf ignored",
              file=sys.stderr)
        args.perf = False
    st = benchlib.stamp()
    results = []
    for n in (int(x) for x in args.rules.split()):
        for shape in args.shapes.split():
            t0 = time.monotonic()
            try:
                r = run_one(args, shape, n)
            except TestFailure as e:  # bounded: a run that misses its bound is reported, not fatal
                say(f"{shape} R={n}: {e}")
                results.append({"shape": shape, "rules": n, "error": str(e),
                                "loadavg_after": os.getloadavg()})
                continue
            if r is None:
                continue
            r["loadavg_after"] = os.getloadavg()
            results.append(r)
            say(f"{shape} R={n}: READY in {r['ready_s']:.2f} s, RSS {r['at_ready']['rss_mib']:.1f} MiB"
                f" (run {time.monotonic() - t0:.0f} s, load {r['loadavg_after'][0]:.2f})")
    print(table(results))
    path = benchlib.write_results(args.out, f"config-scale-{st}", {
        "stamp": st, "bench": "config_scale", "host": benchlib.host_info(), "settings": vars(args),
        "runs": results})
    print(f"bench: wrote {path}")
    return 0


if __name__ == "__main__":
    benchlib.run_main(main)
