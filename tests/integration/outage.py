"""Shared parts of the outage tests (test_pg_outage.py, test_redis_outage.py): a leader trading on
a steady clock in the background, a background sampler of the daemon's HTTP endpoints, and the
end check that every leader fill was copied exactly once, the journal agreeing with the simulator."""

import threading
import time
from collections import Counter
from decimal import Decimal

from harness import OPEN_STATUSES, TestFailure, psql, wait_for


def check(cond, what):
    if not cond:
        raise TestFailure(what)


class Ticker(threading.Thread):
    """The leader trades BUY, BUY, SELL 0.002 BTCUSDT (opens, adds, 50% / 33% ratio closes) every
    tick_s until stopped; a failed leader order stops it with the error kept."""

    def __init__(self, sim, leader, tick_s):
        super().__init__(daemon=True)
        self.sim, self.leader, self.tick_s, self.n, self.error = sim, leader, tick_s, 0, None
        self.halt = threading.Event()

    def run(self):
        t0 = time.monotonic()
        while not self.halt.is_set():
            try:
                o = self.sim.leader_order(self.leader, "BTCUSDT", "BUY" if self.n % 3 != 2 else "SELL", "0.002")
                if o.get("status") != "FILLED":
                    raise TestFailure(f"leader order not filled: {o}")
            except Exception as e:  # noqa: BLE001 (kept and raised by the main thread)
                self.error = e
                return
            self.n += 1
            self.halt.wait(max(0.0, t0 + self.n * self.tick_s - time.monotonic()))

    def stop(self):
        self.halt.set()
        self.join(10)
        if self.error:
            raise TestFailure(f"leader trading failed: {self.error!r}")


class Sampler(threading.Thread):
    """Calls probe(sample) every 50 ms: the probe fills the dict sample, which already holds the
    wall time "t". A probe that fails (OSError, ValueError, TestFailure) leaves what it filled in
    so far plus "error"."""

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
            self.samples.append(s)
            self.halt.wait(0.05)

    def stop(self):
        self.halt.set()
        self.join(10)

    def between(self, t0, t1):
        return [s for s in self.samples if t0 <= s["t"] <= t1]


def wait_copied(conninfo, sim, followers, n):
    """Waits for n orders per follower at the simulator and n x followers final rows in the journal."""
    want = n * len(followers)
    wait_for(f"{n} orders per follower at the simulator", lambda: all(len(sim.orders(f)) >= n for f in followers),
             timeout=20, interval=0.05)
    wait_for(f"{want} final follower orders in the journal", lambda: psql(
        conninfo, f"select count(*), count(*) filter (where status in {OPEN_STATUSES}) from follower_orders")
        == [[str(want), "0"]], timeout=20, interval=0.1)


def check_copied_once(conninfo, sim, leader, followers, n):
    """The n leader fills, each copied once to every follower at multiplier 1, and the journal
    agrees with the simulator: every leader order FILLED and in leader_fills once (trade ids
    distinct, order ids the simulator's); one follower_orders row per (follower, leader fill),
    no client id twice; at the simulator no client id twice, n orders per follower, each FILLED
    without an error code and journaled 'filled' without an error code, executed in full, with
    the same side and quantity; every follower's position equal to the leader's.
    Returns (leader order id -> leader trade time ms, [(leader trade time ms, copy delay ms)],
    the leader's position)."""
    want = n * len(followers)
    lead_orders = sim.orders(leader)
    check(len(lead_orders) == n and all(o["status"] == "FILLED" for o in lead_orders),
          f"leader: {len(lead_orders)} orders at the simulator, want {n} filled")
    lead_time = {str(o["orderId"]): o["time"] for o in lead_orders}
    lf = psql(conninfo, f"select order_id::text, trade_id::text from leader_fills where account = '{leader}'")
    check(len(lf) == n, f"leader_fills holds {len(lf)} rows for {n} leader fills")
    check(len({r[1] for r in lf}) == n, "leader_fills: a trade id twice")
    check({r[0] for r in lf} == set(lead_time),
          f"leader_fills order ids differ from the simulator's: missing "
          f"{sorted(set(lead_time) - {r[0] for r in lf})[:10]}, extra {sorted({r[0] for r in lf} - set(lead_time))[:10]}")
    rows = psql(conninfo, "select o.client_order_id, o.follower, o.status, o.side, o.qty::text, "
                          "coalesce(o.executed_qty::text, ''), coalesce(o.error_code::text, ''), l.order_id::text "
                          "from follower_orders o join leader_fills l on l.id = o.leader_fill_id")
    jby = {r[0]: r for r in rows}
    check(len(jby) == len(rows), "follower_orders: a client id twice")
    check(len(rows) == want, f"follower_orders holds {len(rows)} rows, want {want}")
    per = Counter((r[1], r[7]) for r in rows)
    check(all(per[(f, oid)] == 1 for f in followers for oid in lead_time),
          "follower_orders: not exactly one order per (follower, leader fill)")
    delays = []
    for f in followers:
        got = sim.orders(f)
        dup = [c for c, k in Counter(o["clientOrderId"] for o in got).items() if k > 1]
        check(not dup, f"{f}: client ids at the simulator more than once: {dup[:5]}")
        check(len(got) == n, f"{f}: {len(got)} orders at the simulator, want {n}")
        for o in got:
            j = jby.get(o["clientOrderId"])
            check(j is not None and j[1] == f, f"{f}: {o['clientOrderId']} at the simulator, not in the journal")
            check(o["status"] == "FILLED" and not o.get("errorCode") and j[2] == "filled" and not j[6]
                  and Decimal(j[5] or "0") == Decimal(o["origQty"]) == Decimal(j[4]) and j[3] == o["side"],
                  f"{f}: {o['clientOrderId']}: simulator {o['status']} {o['side']} {o['origQty']} "
                  f"error {o.get('errorCode')}, journal {j}")
            delays.append((lead_time[j[7]], o["time"] - lead_time[j[7]]))
    lead_pos = sum((Decimal(p["positionAmt"]) for p in sim.positions(leader)), Decimal(0))
    for f in followers:
        pos = sum((Decimal(p["positionAmt"]) for p in sim.positions(f)), Decimal(0))
        check(pos == lead_pos, f"{f}: position {pos}, leader {lead_pos}")
    return lead_time, delays, lead_pos
