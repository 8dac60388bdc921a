#!/usr/bin/env python3
"""End to end: real PostgreSQL and Redis (from with-services), the simulator and the daemon.

One leader, three followers copying with multipliers 1, 0.5 and 0.013. Ten leader trades (opens, an
add, partial closes, full closes, a flip, a skip for min notional) are fired at the simulator without
waiting for the copies in between. Asserts: exactly the orders an independent model of the copy
rules calls for reached the simulator (symbol, side, exact quantity text, reduce-only on closes,
unique client ids), each follower's position, the journal (10 fills, every follower order final,
skips with reasons), /metrics agrees, and replaying the leader's events — live and again after a
daemon restart — sends nothing new."""

import argparse
import json
import os
import re
import sys
from decimal import Decimal, ROUND_DOWN

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Daemon, Sim, TestFailure, free_port, http, metric, parse_metrics, psql,  # noqa: E402
                     require_env, wait_for, fresh_database, write_secret)

SYMBOLS = [
    {"symbol": "BTCUSDT", "price": "50000", "step_size": "0.001", "min_qty": "0.001", "max_qty": "1000",
     "market_step_size": "0.001", "market_min_qty": "0.001", "market_max_qty": "120", "tick_size": "0.10",
     "min_price": "0.10", "max_price": "1000000", "min_notional": "5"},
    {"symbol": "SOLUSDT", "price": "150", "step_size": "0.1", "min_qty": "0.1", "max_qty": "100000",
     "market_step_size": "0.1", "market_min_qty": "0.1", "market_max_qty": "50000", "tick_size": "0.01",
     "min_price": "0.01", "max_price": "100000", "min_notional": "100"},
]
FOLLOWERS = {"f1": Decimal("1"), "f2": Decimal("0.5"), "f3": Decimal("0.013")}
# (symbol, side, qty, price to set before the trade or None)
TRADES = [
    ("BTCUSDT", "BUY", "0.100", None),    # open
    ("BTCUSDT", "BUY", "0.050", None),    # add: f3 rounds to zero
    ("BTCUSDT", "BUY", "0.200", "51000"),  # add at a new price
    ("BTCUSDT", "SELL", "0.070", None),   # partial close (20%): ratio close; f3 rounds to zero
    ("SOLUSDT", "BUY", "10", None),       # open; f3 below min notional
    ("BTCUSDT", "SELL", "0.280", None),   # full close
    ("SOLUSDT", "SELL", "4", None),       # partial close (40%); f3 has no position
    ("BTCUSDT", "SELL", "0.010", None),   # open short
    ("SOLUSDT", "SELL", "6", None),       # full close
    ("BTCUSDT", "BUY", "0.030", "50500"),  # flip short -> long: close + open
]


def fmt(d):
    """Canonical decimal text, as the daemon sends it ("0.1", "2", never "2.0" or "1E-3")."""
    s = format(d.normalize(), "f")
    return s


class Model:
    """An independent model of the copy rules for multiplier sizing (strategy/copy_engine.h):
    opens of floor(l x k), closes of floor(H x c / |L|) (all of H on a full close), plus the
    rounding carry that keeps the follower at floor(|L| x k) instead of drifting a step per fill."""

    def __init__(self):
        self.filters = {s["symbol"]: s for s in SYMBOLS}
        self.leader = {}
        self.pos = {f: {} for f in FOLLOWERS}
        self.orders = {f: [] for f in FOLLOWERS}
        self.skips = {f: [] for f in FOLLOWERS}

    def _round(self, q, sym):
        step = Decimal(self.filters[sym]["market_step_size"])
        return (q / step).to_integral_value(rounding=ROUND_DOWN) * step

    def _open(self, f, sym, side, qty, price, leader_after):
        step = Decimal(self.filters[sym]["market_step_size"])
        sgn = 1 if side == "BUY" else -1
        q = self._round(qty * FOLLOWERS[f], sym)
        held = max(Decimal(0), sgn * self.pos[f].get(sym, Decimal(0)))
        if held + q + step <= self._round(abs(leader_after) * FOLLOWERS[f], sym):
            q += step  # rounding carry
        flt = self.filters[sym]
        if q == 0:
            self.skips[f].append("rounds_to_zero")
        elif q < Decimal(flt["market_min_qty"]):
            self.skips[f].append("below_min_qty")
        elif q * price < Decimal(flt["min_notional"]):
            self.skips[f].append("below_min_notional")
        else:
            self.orders[f].append((sym, side, fmt(q), False))
            self.pos[f][sym] = self.pos[f].get(sym, Decimal(0)) + sgn * q

    def _close(self, f, sym, side, closed, before):
        step = Decimal(self.filters[sym]["market_step_size"])
        fp = self.pos[f].get(sym, Decimal(0))
        sgn = 1 if side == "BUY" else -1
        if fp == 0 or (fp > 0) == (sgn > 0):
            self.skips[f].append("no_follower_position")
            return
        if closed == abs(before):
            q = abs(fp)
        else:
            q = self._round(abs(fp) * closed / abs(before), sym)
            if abs(fp) - (q + step) >= self._round((abs(before) - closed) * FOLLOWERS[f], sym):
                q += step  # rounding carry
            q = min(abs(fp), q)
        if q == 0:
            self.skips[f].append("rounds_to_zero")
            return
        self.orders[f].append((sym, side, fmt(q), True))
        self.pos[f][sym] = fp + sgn * q

    def trade(self, sym, side, qty, price):
        qty = Decimal(qty)
        before = self.leader.get(sym, Decimal(0))
        sgn = 1 if side == "BUY" else -1
        after = before + sgn * qty
        self.leader[sym] = after
        for f in FOLLOWERS:
            if before == 0 or (before > 0) == (sgn > 0):
                self._open(f, sym, side, qty, price, after)
            else:
                closed = min(qty, abs(before))
                self._close(f, sym, side, closed, before)
                if qty > abs(before):
                    self._open(f, sym, side, qty - abs(before), price, after)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    args = ap.parse_args()
    pg = fresh_database(require_env("CT_TEST_PG"), "e2e")
    redis = require_env("CT_TEST_REDIS")
    tmp = require_env("CT_TEST_TMP")
    work = os.path.join(tmp, "e2e")
    os.makedirs(work, exist_ok=True)

    accounts = [{"name": n, "api_key": f"key-{n}-0123456789abcdef", "api_secret": f"secret-{n}-fedcba9876543210",
                 "balance": "1000000"} for n in ["leader", *FOLLOWERS]]
    sim = Sim(args.build_dir, work, accounts, SYMBOLS)
    daemon = None
    try:
        os.makedirs(os.path.join(work, "secrets"), exist_ok=True)
        for a in accounts:
            write_secret(os.path.join(work, "secrets"), a)
        http_port = free_port()
        acct_yaml = "".join(
            f"  - name: {a['name']}\n    exchange: binance-usdm\n    rest_url: {sim.rest_url}\n"
            f"    ws_url: {sim.ws_url}\n    secret_file: secrets/{a['name']}.yaml\n" for a in accounts)
        rules_yaml = "".join(
            f"  - id: {f}-copies-leader\n    leader: leader\n    follower: {f}\n    sizing: multiplier\n"
            f"    multiplier: {m}\n" for f, m in FOLLOWERS.items())
        config = (f"daemon:\n  log_level: info\n  http_listen: 127.0.0.1:{http_port}\n"
                  f"  database: \"{pg}\"\n  redis: {redis}\n\naccounts:\n{acct_yaml}\ncopy_rules:\n{rules_yaml}")
        base = f"http://127.0.0.1:{http_port}"

        def start_daemon():
            d = Daemon(args.build_dir, work, config)
            wait_for("daemon /health/live", lambda: http("GET", base + "/health/live")[0] == 200)
            wait_for("daemon connected to the leader stream", lambda: sim.streams("leader")["connections"] >= 1)
            return d

        def metrics():
            st, text = http("GET", base + "/metrics")
            if st != 200:
                raise TestFailure(f"/metrics -> {st}")
            return parse_metrics(text)

        daemon = start_daemon()

        # Fire all ten leader trades without waiting for the copies in between.
        model = Model()
        price = {s["symbol"]: Decimal(s["price"]) for s in SYMBOLS}
        for sym, side, qty, new_price in TRADES:
            if new_price:
                sim.set_price(sym, new_price)
                price[sym] = Decimal(new_price)
            o = sim.leader_order("leader", sym, side, qty)
            if o.get("status") != "FILLED":
                raise TestFailure(f"leader order not filled: {o}")
            model.trade(sym, side, qty, price[sym])

        want_total = sum(len(v) for v in model.orders.values())
        want_skips = sum(len(v) for v in model.skips.values())
        wait_for(f"{want_total} follower orders at the simulator",
                 lambda: sum(len(sim.orders(f)) for f in FOLLOWERS) >= want_total)
        wait_for("journal: every follower order in a final state",
                 lambda: psql(pg, "select count(*) from follower_orders where status in ('intent','sent')")
                 == [["0"]] and psql(pg, "select count(*) from follower_orders")
                 == [[str(want_total + want_skips)]])
        # Once the leader traded, the followers' endpoint gets a live ticker stream for those
        # symbols (the slippage guard's price; the REST refresh stays the fallback).
        wait_for("a ticker stream for the traded symbols",
                 lambda: "ticker stream up" in open(daemon.p.log_path).read(), timeout=20)

        # 1. Exactly the expected orders, in order per (follower, symbol): orders for one follower on
        # different symbols go out in parallel, so only their order within a symbol is defined.
        def by_symbol(orders):
            out = {}
            for o in orders:
                out.setdefault(o[0], []).append(o)
            return out

        all_ids = []
        for f in FOLLOWERS:
            got = sim.orders(f)
            got_t = [(o["symbol"], o["side"], o["origQty"], bool(o["reduceOnly"])) for o in got]
            if by_symbol(got_t) != by_symbol(model.orders[f]):
                raise TestFailure(f"{f}: orders differ\n got:  {got_t}\n want: {model.orders[f]}")
            for o in got:
                if o["status"] != "FILLED" or o["type"] != "MARKET":
                    raise TestFailure(f"{f}: order not a filled market order: {o}")
                if not re.fullmatch(r"[A-Za-z0-9_-]{1,36}", o["clientOrderId"]):
                    raise TestFailure(f"{f}: bad client id {o['clientOrderId']!r}")
                all_ids.append(o["clientOrderId"])
        if len(set(all_ids)) != len(all_ids):
            raise TestFailure(f"duplicate client ids: {sorted(all_ids)}")

        # 2. Positions at the simulator equal the model's.
        for f in FOLLOWERS:
            got = {p["symbol"]: Decimal(p["positionAmt"]) for p in sim.positions(f)}
            for sym in price:
                want = model.pos[f].get(sym, Decimal(0))
                if got.get(sym, Decimal(0)) != want:
                    raise TestFailure(f"{f} {sym}: position {got.get(sym)} != expected {want}")

        # 3. The journal.
        fills = psql(pg, "select count(*), count(distinct trade_id) from leader_fills where account='leader'")
        if fills != [["10", "10"]]:
            raise TestFailure(f"journal leader_fills: {fills}")
        rows = psql(pg, "select follower, client_order_id, symbol, side, qty::text, reduce_only, status, "
                        "coalesce(skip_reason,''), coalesce(executed_qty::text,'') from follower_orders order by id")
        for f in FOLLOWERS:
            mine = [r for r in rows if r[0] == f]
            sent = [(r[2], r[3], fmt(Decimal(r[4])), r[5] == "t") for r in mine if r[6] != "skipped"]
            if by_symbol(sent) != by_symbol(model.orders[f]):
                raise TestFailure(f"journal {f}: sent orders differ\n got:  {sent}\n want: {model.orders[f]}")
            for r in mine:
                if r[6] != "skipped" and (r[6] != "filled" or Decimal(r[8] or "0") != Decimal(r[4])):
                    raise TestFailure(f"journal {f}: order not filled in full: {r}")
            skips = sorted(r[7] for r in mine if r[6] == "skipped")
            if skips != sorted(model.skips[f]):
                raise TestFailure(f"journal {f}: skips {skips} != {sorted(model.skips[f])}")
            ids = {r[1] for r in mine if r[6] != "skipped"}
            if ids != {o["clientOrderId"] for o in sim.orders(f)}:
                raise TestFailure(f"journal {f}: client ids differ from the simulator's")

        # 4. /metrics counts the same.
        m = metrics()
        checks = [("ct_leader_fills_total", {}, 10),
                  ("ct_follower_orders_total", {"result": "filled"}, want_total),
                  ("ct_follower_orders_total", {"result": "skipped"}, want_skips)]
        for reason in set(r for v in model.skips.values() for r in v):
            checks.append(("ct_copy_skips_total", {"reason": reason},
                           sum(v.count(reason) for v in model.skips.values())))
        for name, labels, want in checks:
            if metric(m, name, **labels) != want:
                raise TestFailure(f"metric {name}{labels} = {metric(m, name, **labels)}, want {want}")

        if metric(m, "ct_journal_write_seconds_count", kind="fill") < 10:
            raise TestFailure("journal write latency histogram did not see the 10 fill writes")
        # Per-fill latencies: one value per leader fill whose orders were all answered (a fill
        # that only skipped sends nothing); the histogram, its JSON and the metric agree.
        want_fills = int(psql(pg, "select count(distinct leader_fill_id) from follower_orders "
                                  "where status <> 'skipped'")[0][0])
        st, body = http("GET", base + "/debug/latency")
        lat = json.loads(body) if st == 200 else None
        if not lat or lat["fill_send_us"]["count"] != want_fills or lat["fill_ack_us"]["count"] != want_fills:
            raise TestFailure(f"/debug/latency: {st} {body[:300]}, want {want_fills} fills")
        for k in ("fill_send_us", "fill_ack_us"):
            h = lat[k]
            if sum(n for _, n in h["buckets"]) != h["count"] or not (
                    0 < h["min"] <= h["p50"] <= h["p99"] <= h["p999"] <= h["max"]):
                raise TestFailure(f"/debug/latency {k} inconsistent: {h}")
        if lat["fill_send_us"]["max"] > lat["fill_ack_us"]["max"]:
            raise TestFailure(f"a request was written after its answer: {lat}")
        if metric(m, "ct_copy_fill_send_latency_seconds_count") != want_fills:
            raise TestFailure("ct_copy_fill_send_latency_seconds disagrees with /debug/latency")
        if http("POST", base + "/debug/latency/reset")[0] != 204 or \
                json.loads(http("GET", base + "/debug/latency")[1])["fill_ack_us"]["count"] != 0:
            raise TestFailure("POST /debug/latency/reset did not empty the histograms")
        # 5. Replaying every leader event produces no new orders (in-memory dedupe)...
        before_dups = metric(m, "ct_leader_fills_duplicate_total")
        sent = sim.replay("leader", 0)["sent"]
        if sent < 10:
            raise TestFailure(f"replay sent only {sent} events")
        wait_for("daemon saw the 10 replayed fills as duplicates",
                 lambda: metric(metrics(), "ct_leader_fills_duplicate_total") >= before_dups + 10)
        # ... and after a restart, where only the journal remembers them.
        if daemon.stop() != 0:
            raise TestFailure("daemon exited non-zero on SIGTERM")
        daemon = start_daemon()
        sim.replay("leader", 0)
        wait_for("restarted daemon saw the 10 replayed fills as duplicates",
                 lambda: metric(metrics(), "ct_leader_fills_duplicate_total") >= 10)
        for f in FOLLOWERS:
            if len(sim.orders(f)) != len(model.orders[f]):
                raise TestFailure(f"{f}: replay produced new orders: {sim.orders(f)[len(model.orders[f]):]}")
        if psql(pg, "select count(*) from follower_orders") != [[str(want_total + want_skips)]]:
            raise TestFailure("replay added journal rows")
        if psql(pg, "select count(*) from leader_fills") != [["10"]]:
            raise TestFailure("replay added leader fills")
        print(f"ok: {want_total} follower orders, {want_skips} skips, replay x2 sent nothing new")
        rc = daemon.stop()
        daemon = None
        if rc != 0:
            raise TestFailure(f"daemon exited {rc}")
    except TestFailure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        if daemon:
            print("--- daemon log tail:\n" + daemon.p.tail(60), file=sys.stderr)
        print("--- exsim log tail:\n" + sim.p.tail(30), file=sys.stderr)
        return 1
    finally:
        if daemon:
            daemon.p.stop(timeout=5) if daemon.p.alive() else None
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
