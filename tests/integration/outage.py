"""Shared parts of the fault suite's outage tests (tests/fault: test_pg_outage.py,
test_redis_outage.py, test_sigterm_load.py, soak.py ...): leaders trading on a steady clock in the
background, a background sampler of the daemon's HTTP endpoints, and the end check that every
leader fill was copied exactly once (harness.check_exactly_once)."""

import threading
import time
from decimal import Decimal

from harness import OPEN_STATUSES, TestFailure, check_exactly_once, psql, wait_for


def check(cond, what):
    if not cond:
        raise TestFailure(what)


class Ticker(threading.Thread):
    """A leader trading on a steady clock (one trade every tick_s) until stopped. pattern(n) gives
    trade n as (account, symbol, side, qty, fills or None); by default `leader` trades BUY, BUY,
    SELL 0.002 BTCUSDT (opens, adds, 50% / 33% ratio closes). Every fill made is recorded, in
    order, in fills {account: [(symbol, side, qty)]} (check_exactly_once's input) and each trade's
    wall time in times. A failed leader order stops it with the error kept."""

    def __init__(self, sim, leader, tick_s, pattern=None):
        super().__init__(daemon=True)
        self.sim, self.leader, self.tick_s, self.n, self.error = sim, leader, tick_s, 0, None
        self.pattern = pattern or (lambda n: (leader, "BTCUSDT", "BUY" if n % 3 != 2 else "SELL", "0.002", None))
        self.fills, self.times = {}, []
        self.halt = threading.Event()

    def run(self):
        t0 = time.monotonic()
        while not self.halt.is_set():
            try:
                acct, sym, side, qty, parts = self.pattern(self.n)
                kw = {"fills": parts} if parts else {}
                o = self.sim.leader_order(acct, sym, side, qty, **kw)
                if o.get("status") != "FILLED":
                    raise TestFailure(f"leader order not filled: {o}")
            except Exception as e:  # noqa: BLE001 (kept and raised by the main thread)
                self.error = e
                return
            self.fills.setdefault(acct, []).extend((sym, side, q) for q in (parts or [qty]))
            self.times.append((time.time(), acct))
            self.n += 1
            self.halt.wait(max(0.0, t0 + self.n * self.tick_s - time.monotonic()))

    def stop(self):
        self.halt.set()
        self.join(10)
        if self.error:
            raise TestFailure(f"leader trading failed: {self.error!r}")


class Sampler(threading.Thread):
    """Calls probe(sample) every 50 ms: the probe fills the dict sample, which already holds the
    wall time "t" it started at; "t_end" is when it returned (a scrape takes a while, longer under
    ASan: what it saw happened somewhere in between). A probe that fails (OSError, ValueError,
    TestFailure) leaves what it filled in so far plus "error"."""

    def __init__(self, probe):
        super().__init__(daemon=True)
        self.probe, self.samples = probe, []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            s = {"t": time.time()}
            try:
                self.probe(s)
            except (OSError, ValueError, TestFailure) as e:
                s["error"] = repr(e)
            s["t_end"] = time.time()
            self.samples.append(s)
            self.halt.wait(0.05)

    def stop(self):
        self.halt.set()
        self.join(10)

    def between(self, t0, t1):
        """The samples taken wholly within [t0, t1]: a scrape that began before t1 but returned
        after it may already show what happened at t1 (a kill noticed mid-scrape)."""
        return [s for s in self.samples if t0 <= s["t"] and s["t_end"] <= t1]


def wait_copied(conninfo, sim, followers, n):
    """Waits for n orders per follower at the simulator and n x followers final rows in the journal."""
    want = n * len(followers)
    wait_for(f"{n} orders per follower at the simulator", lambda: all(len(sim.orders(f)) >= n for f in followers),
             timeout=20, interval=0.05)
    wait_for(f"{want} final follower orders in the journal", lambda: psql(
        conninfo, f"select count(*), count(*) filter (where status in {OPEN_STATUSES}) from follower_orders")
        == [[str(want), "0"]], timeout=20, interval=0.1)


def check_copied_once(conninfo, sim, leader, followers, fills):
    """check_exactly_once for rules copying leader x1 to every follower (rule ids FOLLOWER-r, as
    harness.multiplier_rules names them); fills: the Ticker's fills (or how many default trades it
    made). Returns (leader order id -> leader trade time ms, [(leader trade time ms, copy delay ms)],
    the leader's position)."""
    if isinstance(fills, int):
        fills = {leader: [("BTCUSDT", "BUY" if i % 3 != 2 else "SELL", "0.002") for i in range(fills)]}
    summary = check_exactly_once(conninfo, sim, [(f"{f}-r", leader, f, 1) for f in followers], fills)
    lead_pos = sum((Decimal(p["positionAmt"]) for p in sim.positions(leader)), Decimal(0))
    return summary["lead_times"], summary["delays"], lead_pos
