#!/usr/bin/env python3
"""Soak: leaders trading at a steady rate for --minutes while faults drawn from a seeded RNG hit the
simulator, PostgreSQL, Redis and the daemon; then the fault suite's end check (no follower order
lost, none duplicated: harness.check_exactly_once) and a summary. Run under
tests/integration/with-services (it only takes CT_TEST_TMP from it: PostgreSQL and Redis are its
own, since it stops and kills them). scripts/soak builds and runs it; tests/fault/test_soak.py runs
2 minutes of it in CI. tests/fault/README.md has the details.

Accounts: leaders lb (binance-usdm) and ly (bybit-linear); rules lb -> b1 (binance x1), lb -> b2
(binance x2), lb -> y1 (bybit x1), ly -> b3 (binance x1), ly -> y2 (bybit x0.5). The leaders take
turns, one fill every 1/--rate s, on BTCUSDT and ETHUSDT, opening, adding and closing (partially
or fully, sometimes in two fills), never flipping a position, every quantity a multiple of 0.004
(so every copy is exact: no rounding, no minimum).

Faults, one at a time, every --fault-every s on average (exponential gaps): every kind once per
round in a seeded order, so a run long enough sees them all. Each is printed with its time and
the seed; the same seed gives the same trades and the same faults in the same order (the timing
around them is the machine's)."""

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from harness import (BTC_SYMBOL, Daemon, PrivatePostgres, PrivateRedis, Sim, TestFailure,  # noqa: E402
                     check_exactly_once, cleanup, copy_rules_yaml, daemon_config, fetch_metrics, free_port,
                     make_accounts, metric, multiplier_rule_lines, require_env, stop_clean, wait_for, wait_http_ok)
from outage import Ticker  # noqa: E402

ETH_SYMBOL = {"symbol": "ETHUSDT", "price": "3000", "step_size": "0.001", "min_qty": "0.001", "max_qty": "10000",
              "market_step_size": "0.001", "market_min_qty": "0.001", "market_max_qty": "1000",
              "tick_size": "0.01", "min_price": "0.01", "max_price": "1000000", "min_notional": "5"}
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
LEADERS = [("lb", "binance-usdm"), ("ly", "bybit-linear")]
FOLLOWERS = [("b1", "binance-usdm"), ("b2", "binance-usdm"), ("y1", "bybit-linear"), ("b3", "binance-usdm"),
             ("y2", "bybit-linear")]
RULES = [("b1-r", "lb", "b1", 1), ("b2-r", "lb", "b2", 2), ("y1-r", "lb", "y1", 1), ("b3-r", "ly", "b3", 1),
         ("y2-r", "ly", "y2", Decimal("0.5"))]
# Error codes an order keeps from an unknown answer settled by a query: Binance -1000 (HTTP 5xx,
# 503 "Unknown error"), Bybit 10000 (server timeout) and 10016 (5xx).
UNKNOWN_CODES = {"-1000", "10000", "10016"}
ORDER_EP = {"binance-usdm": "POST /fapi/v1/order", "bybit-linear": "POST /v5/order/create"}
EXCHANGE = dict(LEADERS + FOLLOWERS)
LOT = Decimal("0.004")
MAX_LOTS = 50          # a leader position stays within 50 lots (0.2) per symbol
SILENCE_MS = 3000      # the accounts' stream_silence_ms: a silent stream is declared dead after 3 s
PING_MS = 1000         # stream_ping_ms: a quiet Bybit stream is heard from between fills
DRAIN_MS = 5000        # drain_timeout_ms
EXIT_MARGIN_S = 10     # beyond DRAIN_MS: the journal's flush and the teardown (ASan builds are slow)
KINDS = ["429", "503_unknown", "reset_before", "reset_after", "http_500", "latency", "ws_drop", "ws_silent",
         "listen_key_expire", "ws_duplicate", "ws_reorder", "pg_restart", "redis_restart", "sighup",
         "sighup_broken", "kill9", "sigterm"]


def trade_pattern(seed):
    """Ticker pattern: trade n of the seeded sequence as (leader, symbol, side, qty, fills or None)."""
    rng = random.Random(f"trades-{seed}")
    book = {}

    def q(lots):
        return str(LOT * lots)

    def pattern(n):
        leader = LEADERS[n % len(LEADERS)][0]
        sym = rng.choice(SYMBOLS)
        pos = book.get((leader, sym), 0)  # in lots, signed
        if pos == 0:
            side, lots = rng.choice(["BUY", "SELL"]), rng.randint(1, 5)
        elif abs(pos) >= MAX_LOTS or rng.random() < 0.4:  # a partial or full close
            side, lots = ("SELL" if pos > 0 else "BUY"), rng.randint(1, abs(pos))
            if rng.random() < 0.3:
                lots = abs(pos)
        else:  # add
            side, lots = ("BUY" if pos > 0 else "SELL"), rng.randint(1, 5)
        parts = None
        if lots >= 2 and rng.random() < 0.25:
            first = rng.randint(1, lots - 1)
            parts = [q(first), q(lots - first)]
        book[(leader, sym)] = pos + (lots if side == "BUY" else -lots)
        return leader, sym, side, q(lots), parts
    return pattern


class Soak:
    def __init__(self, args):
        self.args = args
        self.seed = args.seed
        self.rng = random.Random(f"faults-{args.seed}")
        self.t0 = None
        self.faults = []        # (t, kind, detail)
        self.sim_fault_ids = {}  # id -> kind
        self.hits = Counter()    # kind -> times the simulator applied its faults
        self.restarts = 0
        self.logs = []          # every daemon log, for the sanitizer scan
        tmp = require_env("CT_TEST_TMP")
        self.work = os.path.join(tmp, f"soak-{args.seed}")
        secrets = os.path.join(self.work, "secrets")
        self.spool = os.path.join(self.work, "spool")
        os.makedirs(secrets, exist_ok=True)
        os.makedirs(self.spool, mode=0o700, exist_ok=True)
        os.chmod(self.spool, 0o700)
        accounts = make_accounts(secrets, [n for n, _ in LEADERS + FOLLOWERS], f"soak{args.seed}", f"soak{args.seed}",
                                 balance="100000000")
        self.pg = self.redis = self.sim = self.daemon = self.ticker = None
        self.pg = PrivatePostgres(self.work, "pg")
        self.redis = PrivateRedis(self.work, "redis")
        self.sim = Sim(args.build_dir, self.work, accounts, [BTC_SYMBOL, ETH_SYMBOL])
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.config = daemon_config(
            port, self.pg.conninfo, self.redis.address, self.sim, LEADERS + FOLLOWERS, None,
            daemon_extra=(f"  log_level: {os.environ.get('CT_TEST_LOG_LEVEL', 'info')}\n  spool_dir: {self.spool}\n"
                          f"  drain_timeout_ms: {DRAIN_MS}\n  account_refresh_ms: 1000\n"),
            account_extra=f"    stream_silence_ms: {SILENCE_MS}\n    stream_ping_ms: {PING_MS}\n")
        self.traders = os.path.join(self.work, "traders.d")
        os.makedirs(self.traders, exist_ok=True)
        with open(os.path.join(self.traders, "soak.yaml"), "w") as f:
            f.write(copy_rules_yaml(multiplier_rule_lines(RULES)))

    # ---- the daemon ----

    def start_daemon(self):
        name = "copytraderd" if not self.restarts else f"copytraderd-{self.restarts + 1}"
        self.daemon = Daemon(self.args.build_dir, self.work, self.config, name=name)
        self.logs.append(self.daemon.p.log_path)
        wait_http_ok(f"{name} ready", self.base, timeout=90, interval=0.05, http_timeout=5)

    def restart(self):
        self.restarts += 1
        self.start_daemon()

    def reloads(self, result):
        return metric(fetch_metrics(self.base, timeout=5), "ct_config_reloads_total", result=result)

    # ---- faults ----

    def note(self, kind, detail):
        t = time.monotonic() - self.t0
        self.faults.append((t, kind, detail))
        print(f"[soak seed {self.seed}] t=+{t:7.2f}s (at {time.time():.3f}) fault #{len(self.faults)} {kind}: "
              f"{detail}", flush=True)

    def sim_fault(self, kind, label, **spec):
        f = self.sim.fault(kind, **spec)
        self.sim_fault_ids[f["id"]] = label
        self.note(label, " ".join(f"{k}={v}" for k, v in spec.items()))

    def inject(self, kind):
        rng = self.rng
        fol, ex = rng.choice(FOLLOWERS)
        lead = rng.choice(LEADERS)[0]
        if kind == "429":
            self.sim_fault("429", kind, account=fol, endpoint=ORDER_EP[ex], retry_after_s=1, count=rng.randint(2, 6))
        elif kind == "503_unknown":
            self.sim_fault("503_unknown", kind, account=fol, endpoint=ORDER_EP[ex], count=rng.randint(1, 2))
        elif kind in ("reset_before", "reset_after"):
            self.sim_fault("reset", kind, account=fol, endpoint=ORDER_EP[ex], after_place=kind == "reset_after",
                           count=1)
        elif kind == "http_500":
            self.sim_fault("http_5xx", kind, account=fol, endpoint=ORDER_EP[ex], status=500, count=rng.randint(1, 3))
        elif kind == "latency":
            self.sim_fault("latency", kind, account=fol, endpoint=ORDER_EP[ex], ms=rng.randint(100, 800),
                           after_place=rng.random() < 0.5, count=rng.randint(3, 10))
        elif kind == "ws_drop":
            self.sim_fault("ws_drop", kind, account=lead)
        elif kind == "ws_silent":
            self.sim_fault("ws_silent", kind, account=lead, duration_ms=SILENCE_MS + 3000)
        elif kind == "listen_key_expire":
            self.sim_fault("listen_key_expire", kind, account="lb")
        elif kind == "ws_duplicate":
            self.sim_fault("ws_duplicate", kind, account=lead, count=rng.randint(3, 10))
        elif kind == "ws_reorder":
            self.sim_fault("ws_reorder", kind, account=lead, count=rng.randint(2, 6))
        elif kind == "pg_restart":
            hold = round(rng.uniform(1, 4), 2)
            self.note(kind, f"PostgreSQL stopped (fast) for {hold} s")
            self.pg.stop("fast")
            time.sleep(hold)  # the outage itself, deliberately
            self.pg.start()
        elif kind == "redis_restart":
            hold = round(rng.uniform(1, 3), 2)
            self.note(kind, f"redis-server killed for {hold} s")
            self.redis.kill()
            time.sleep(hold)  # the outage itself, deliberately
            self.redis.start()
        elif kind == "sighup":
            applied = self.reloads("applied")
            self.note(kind, "SIGHUP, trader files unchanged")
            self.daemon.p.proc.send_signal(signal.SIGHUP)
            wait_for("the reload applied", lambda: self.reloads("applied") > applied, timeout=30, interval=0.1)
        elif kind == "sighup_broken":
            rejected = self.reloads("rejected")
            broken = os.path.join(self.traders, "zz-broken.yaml")
            with open(broken, "w") as f:
                f.write("copy_rules:\n  - id: b1-r2\n    leader: lb\n    follower: b1\n    multiplier: [2\n")
            self.note(kind, "SIGHUP with a broken trader file beside the good one")
            self.daemon.p.proc.send_signal(signal.SIGHUP)
            try:
                wait_for("the reload rejected", lambda: self.reloads("rejected") > rejected, timeout=30,
                         interval=0.1)
            finally:
                os.unlink(broken)
        elif kind == "kill9":
            down = round(rng.uniform(0.5, 3), 2)
            self.note(kind, f"kill -9, restart {down} s later")
            self.daemon.p.proc.send_signal(signal.SIGKILL)
            self.daemon.p.stop()
            time.sleep(down)  # the leaders trade on while no daemon runs, deliberately
            self.restart()
        elif kind == "sigterm":
            self.note(kind, f"SIGTERM (drain bound {DRAIN_MS} ms), then a restart")
            t = time.monotonic()
            self.daemon.p.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.daemon.p.proc.wait(DRAIN_MS / 1000 + EXIT_MARGIN_S)
            except subprocess.TimeoutExpired:
                raise TestFailure(f"no exit within {DRAIN_MS / 1000 + EXIT_MARGIN_S} s of SIGTERM") from None
            self.daemon.p.stop()
            if rc != 0:
                raise TestFailure(f"exit {rc} after SIGTERM ({time.monotonic() - t:.2f} s)")
            self.restart()
        else:
            raise ValueError(kind)

    # ---- the run ----

    def run(self):
        a = self.args
        print(f"[soak seed {self.seed}] {a.minutes} min, {a.rate} leader fills/s, a fault every {a.fault_every} s on "
              f"average; replay: {replay_cmd(a)}", flush=True)
        self.start_daemon()
        self.t0 = time.monotonic()
        end = self.t0 + a.minutes * 60
        self.ticker = Ticker(self.sim, "lb", 1.0 / a.rate, pattern=trade_pattern(self.seed))
        self.ticker.start()
        plan = []
        next_at = self.t0 + self.rng.expovariate(1.0 / a.fault_every)
        while time.monotonic() < end:
            if self.ticker.error:
                raise TestFailure(f"leader trading failed: {self.ticker.error!r}")
            if not self.daemon.p.alive():
                raise TestFailure(f"the daemon died (rc {self.daemon.p.proc.returncode})")
            if time.monotonic() >= next_at:
                if not plan:
                    plan = list(a.kinds)
                    self.rng.shuffle(plan)
                self.inject(plan.pop(0))
                next_at = time.monotonic() + self.rng.expovariate(1.0 / a.fault_every)
            time.sleep(0.05)
        for f in self.sim.faults():
            self.hits[self.sim_fault_ids.get(f["id"], f["kind"])] += f["hits"]
        self.sim.clear_faults()
        self.ticker.stop()
        t_stop = time.monotonic()
        fills = self.ticker.fills
        print(f"[soak seed {self.seed}] trading stopped after {t_stop - self.t0:.1f} s: "
              f"{sum(len(v) for v in fills.values())} leader fills; end check", flush=True)
        summary = check_exactly_once(self.pg.conninfo, self.sim, RULES, fills, allow_codes=UNKNOWN_CODES,
                                     timeout=60, what=f"soak seed {self.seed}")
        stop_clean(self.daemon)
        self.daemon = None
        for path in self.logs:
            with open(path) as f:
                text = f.read()
            for bad in ("AddressSanitizer", "runtime error", "LeakSanitizer"):
                if bad in text:
                    raise TestFailure(f"{bad} in {path}")
        return summary

    def report(self, summary):
        delays = sorted(d for _, d in summary["delays"])
        kinds = Counter(k for _, k, _ in self.faults)
        fills = self.ticker.fills
        print(f"ok soak seed {self.seed}: {self.args.minutes} min at {self.args.rate} fills/s: "
              f"{summary['fills']} leader fills ({', '.join(f'{k} {len(v)}' for k, v in sorted(fills.items()))}), "
              f"{summary['orders']} follower orders, every one exactly once and FILLED, the journal agreeing; "
              f"{len(self.faults)} faults, {self.restarts} daemon restarts", flush=True)
        print("  faults by kind (sim faults: times applied): " + ", ".join(
            f"{k} {kinds[k]}" + (f" ({self.hits[k]})" if k in self.hits else "") for k in KINDS if kinds[k]))
        missing = [k for k in self.args.kinds if not kinds[k]]
        if missing:
            print(f"  kinds not drawn in this run: {', '.join(missing)}")
        if delays:
            print(f"  copy delay (leader trade -> follower order at the simulator): p50 {delays[len(delays) // 2]} ms, "
                  f"p99 {delays[len(delays) * 99 // 100]} ms, max {delays[-1]} ms (outages and restarts included)")

    def close(self):
        cleanup(lambda: self.ticker and self.ticker.halt.set(),
                lambda: self.daemon and self.daemon.p.alive() and self.daemon.p.stop(timeout=10),
                lambda: self.sim and self.sim.stop(), lambda: self.redis and self.redis.close(),
                lambda: self.pg and self.pg.close())


def replay_cmd(args):
    kinds = "" if args.kinds == KINDS else f" --kinds {','.join(args.kinds)}"
    return (f"scripts/soak --minutes {args.minutes:g} --seed {args.seed} --rate {args.rate:g} "
            f"--fault-every {args.fault_every:g}{kinds}")


def main(argv=None):
    ap = argparse.ArgumentParser(description="The fault soak: a steady leader fill rate, seeded random faults, "
                                             "then the exactly-once check (tests/fault/README.md).")
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", default=None)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--seed", type=int, default=None, help="default: drawn at random and printed")
    ap.add_argument("--rate", type=float, default=4.0, help="leader fills per second, both leaders together")
    ap.add_argument("--fault-every", type=float, default=6.0, help="mean seconds between faults")
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help="the fault kinds to draw from, comma-separated (default: all): " + ", ".join(KINDS))
    args = ap.parse_args(argv)
    args.kinds = [k for k in args.kinds.split(",") if k]
    bad = [k for k in args.kinds if k not in KINDS]
    if bad:
        ap.error(f"unknown fault kinds: {', '.join(bad)}")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 1000000)
    soak = None
    try:
        soak = Soak(args)
        soak.report(soak.run())
        return 0
    except TestFailure as e:
        print(f"FAIL soak seed {args.seed} ({args.minutes} min, {args.rate} fills/s): {e}", file=sys.stderr)
        if soak:
            if soak.daemon:
                print(f"--- daemon log tail ({soak.daemon.p.log_path}):\n{soak.daemon.p.tail(60)}", file=sys.stderr)
            print("--- faults so far:\n" + "\n".join(f"  t=+{t:7.2f}s {k}: {d}" for t, k, d in soak.faults),
                  file=sys.stderr)
        print(f"replay: {replay_cmd(args)}", file=sys.stderr)
        return 1
    finally:
        if soak:
            soak.close()


if __name__ == "__main__":
    sys.exit(main())
