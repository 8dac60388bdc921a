#!/usr/bin/env python3
"""Follower REST faults through the daemon (with-services: real PostgreSQL and Redis; the simulator's
fault injection, exchange/sim/README.md "Faults"). A Binance leader `lead` is copied x1 by `fb`
(binance-usdm) and, where named, by `fy` (bybit-linear); each scenario has its own simulator,
database and daemon.

  storm_429     429 with Retry-After 1 s on the next 6 order requests of each follower while the
                leader makes 3 fills: every copy exists exactly once and FILLED, the journal has no
                error code (no 418 / ban ever reached: the simulator's request log has no refused
                order either), every fault hit was used, ct_order_retries_total{cause="throttled"}
                counts the resends, and a fill after the storm is copied promptly.
  unknown_503   503 "Unknown error" (Bybit: retCode 10000) after the order was placed: the daemon
                queries by client id instead of resending; the order exists once, journal 'filled',
                ct_order_queries_total rises; a later close is sized from the found fill.
  reset         a TCP reset before the order is handled (never placed: queried, confirmed absent,
                resent once) and after it is placed (queried, found, not resent): exactly once.
  breaker       HTTP 500 on every REST call: the host's circuit breaker opens (ct_breaker_state 1,
                ct_breaker_opens_total, the log's "circuit breaker closed -> open"); an order decided
                while it is open (another symbol's lane) is retried; the fault is cleared, the
                breaker half-opens on its probe and closes, and every copy ends FILLED exactly once;
                copying resumes for a new fill.

Every scenario ends with the fault suite's check (harness.check_exactly_once) over every follower:
orders at the simulator (exact sizes, sides, reduce-only, each client id once, FILLED), the journal
(each leader fill once, one 'filled' row per copy with the simulator's client ids and no error
code but an unknown answer's), positions = what the rules' orders add up to."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from harness import BTC_SYMBOL, CopyScenario, TestFailure, scenarios_main, wait_for  # noqa: E402

ETH_SYMBOL = {"symbol": "ETHUSDT", "price": "3000", "step_size": "0.001", "min_qty": "0.001", "max_qty": "10000",
              "market_step_size": "0.001", "market_min_qty": "0.001", "market_max_qty": "1000",
              "tick_size": "0.01", "min_price": "0.01", "max_price": "1000000", "min_notional": "5"}
ORDER_EP = {"fb": "POST /fapi/v1/order", "fy": "POST /v5/order/create"}


def check(cond, what):
    if not cond:
        raise TestFailure(what)


def start(build_dir, name, followers, symbols=None):
    return CopyScenario(build_dir, name, [("lead", "binance-usdm")] +
                        [(f, "bybit-linear" if f == "fy" else "binance-usdm") for f in followers],
                        [(f"{f}-r", "lead", f, 1) for f in followers], symbols=symbols,
                        daemon_yaml="  account_refresh_ms: 500\n")


def verify(sc, fills, what, timeout=30, allow_codes=()):
    """The fault suite's end check (harness.check_exactly_once) over every follower: it lists every
    difference, so a Bybit failure does not hide a Binance result."""
    return sc.check_exactly_once(fills, allow_codes=allow_codes, timeout=timeout, what=what)


def storm_429(build_dir, name):
    fol = ["fb", "fy"]
    with start(build_dir, name, fol) as sc:
        sc.wait_ready()
        thr0 = sc.metric("ct_order_retries_total", cause="throttled")
        ids = {f: sc.sim.fault("429", account=f, endpoint=ORDER_EP[f], retry_after_s=1, count=6)["id"] for f in fol}
        fills = sc.trade("lead", "BUY", "0.010")
        fills += sc.trade("lead", "BUY", "0.004")
        fills += sc.trade("lead", "SELL", "0.006")
        t0 = time.monotonic()
        wait_for(f"{name}: every 429 served", lambda: all(
            x["remaining"] == 0 for x in sc.sim.faults() if x["id"] in ids.values()), timeout=30)
        storm = time.monotonic() - t0
        for f in fol:
            check(sc.sim.fault_hits(ids[f]) == 6, f"{name}: {f}: 429 hits {sc.sim.fault_hits(ids[f])}")
        # After the storm: a new fill is copied without waiting for anything but the copy itself.
        t1 = time.monotonic()
        fills += sc.trade("lead", "BUY", "0.002")
        sc.wait_orders("fb", 4, timeout=5)
        resumed = time.monotonic() - t1
        for f in fol:
            refused = [o for o in sc.sim.orders(f) if o.get("errorCode") or o["status"] == "REJECTED"]
            check(not refused, f"{name}: {f}: refused orders at the simulator (ban?): {refused}")
        wait_for(f"{name}: ct_order_retries_total{{cause=throttled}} rises by 12 (one per 429)",
                 lambda: sc.metric("ct_order_retries_total", cause="throttled") - thr0 >= 12, timeout=15)
        check("418" not in " ".join(re.findall(r"throttled \((\d+)\)", sc.log())),
              f"{name}: the daemon met a 418")
        verify(sc, fills, "after the 429 storm")
        return f"12 throttled answers served over {storm:.1f} s; copy after the storm in {resumed:.2f} s"


def unknown_503(build_dir, name):
    fol = ["fb", "fy"]
    with start(build_dir, name, fol) as sc:
        sc.wait_ready()
        q0 = sc.metric("ct_order_queries_total")
        ids = {f: sc.sim.fault("503_unknown", account=f, endpoint=ORDER_EP[f], count=1)["id"] for f in fol}
        fills = sc.trade("lead", "BUY", "0.010")
        wait_for(f"{name}: both unknown outcomes served",
                 lambda: all(sc.sim.fault_hits(i) == 1 for i in ids.values()))
        wait_for(f"{name}: the daemon queried the orders",
                 lambda: sc.metric("ct_order_queries_total") - q0 >= 2, timeout=15)
        fills += sc.trade("lead", "SELL", "0.004")  # a close sized from the found fill
        wait_for(f"{name}: the log says both orders were found by query",
                 lambda: sc.log().count("found after an unknown outcome") >= 2, timeout=15)
        verify(sc, fills, "after the unknown outcomes", allow_codes={"-1000", "10000"})
        return f"placed once each, found by {sc.metric('ct_order_queries_total') - q0:.0f} queries"


def reset(build_dir, name):
    with start(build_dir, name, ["fb"]) as sc:
        sc.wait_ready()
        q0 = sc.metric("ct_order_queries_total")
        ab0 = sc.metric("ct_order_retries_total", cause="confirmed_absent")
        i1 = sc.sim.fault("reset", account="fb", endpoint=ORDER_EP["fb"], after_place=False, count=1)["id"]
        fills = sc.trade("lead", "BUY", "0.010")
        wait_for(f"{name}: reset before placement served", lambda: sc.sim.fault_hits(i1) == 1)
        verify(sc, fills, "after a reset before placement")
        check(sc.metric("ct_order_retries_total", cause="confirmed_absent") - ab0 >= 1,
              f"{name}: the never-placed order was not resent as confirmed absent")
        i2 = sc.sim.fault("reset", account="fb", endpoint=ORDER_EP["fb"], after_place=True, count=1)["id"]
        fills += sc.trade("lead", "BUY", "0.004")
        wait_for(f"{name}: reset after placement served", lambda: sc.sim.fault_hits(i2) == 1)
        fills += sc.trade("lead", "SELL", "0.014")
        wait_for(f"{name}: the resets queried", lambda: sc.metric("ct_order_queries_total") - q0 >= 2, timeout=15)
        sc.wait_orders("fb", 3)
        check(sc.metric("ct_order_retries_total", cause="confirmed_absent") - ab0 == 1,
              f"{name}: the placed order was resent (confirmed_absent "
              f"{sc.metric('ct_order_retries_total', cause='confirmed_absent') - ab0})")
        verify(sc, fills, "after a reset after placement")
        return "reset before placement: resent once; after placement: found, not resent"


def breaker(build_dir, name):
    fol = ["fb", "fc"]
    with start(build_dir, name, fol, symbols=[BTC_SYMBOL, ETH_SYMBOL]) as sc:
        sc.wait_ready()
        ns0 = sc.metric("ct_order_retries_total", cause="not_sent")
        fid = sc.sim.fault("http_5xx", account="*", endpoint="*", status=500)["id"]
        try:
            fills = sc.trade("lead", "BUY", "0.010")  # its two copies meet the 500s (unknown: queried)
            # Five failures in a row open the host's breaker (exch_limits.h default).
            wait_for(f"{name}: five 5xx answers", lambda: sc.sim.fault_hits(fid) >= 5, timeout=10)
            fills += sc.trade("lead", "BUY", "0.004", symbol="ETHUSDT")  # decided while it is open
            wait_for(f"{name}: the breaker refuses an order (log 'circuit open')",
                     lambda: "circuit open" in sc.log(), timeout=10)
            wait_for(f"{name}: ct_breaker_state 1 (open) and the transition logged",
                     lambda: sc.metric("ct_breaker_state") >= 1 and "circuit breaker closed -> open" in sc.log(),
                     timeout=5)
            check(sc.metric("ct_breaker_opens_total") >= 1, f"{name}: ct_breaker_opens_total did not rise")
            check(sc.metric("ct_rest_responses_total", code="500") >= 5,
                  f"{name}: the 500 answers are not counted in ct_rest_responses_total")
            opened = time.monotonic()
        finally:
            sc.sim.clear_faults()
        verify(sc, fills, "after the breaker closed", timeout=45, allow_codes={"-1000"})
        healed = time.monotonic() - opened
        wait_for(f"{name}: the breaker closed again (ct_breaker_state 0, logged)",
                 lambda: sc.metric("ct_breaker_state") == 0 and "-> closed" in sc.log(), timeout=10)
        check(sc.metric("ct_order_retries_total", cause="not_sent") - ns0 >= 1,
              f"{name}: no order retried after 'not sent'")
        bad = re.findall(r".*rejected.*not sent: circuit open.*", sc.log())
        check(not bad, f"{name}: orders given up as 'not sent: circuit open' (they should be retried "
                       f"within the retry window): {bad}")
        # Copying resumes.
        t1 = time.monotonic()
        fills += sc.trade("lead", "SELL", "0.010")
        fills += sc.trade("lead", "SELL", "0.004", symbol="ETHUSDT")
        verify(sc, fills, "after recovery", timeout=10, allow_codes={"-1000"})
        return f"circuit open -> copies filled {healed:.1f} s later; new copies in {time.monotonic() - t1:.2f} s"


def scenarios(b):
    return [("storm_429", lambda: storm_429(b, "rf_429")),
                 ("unknown_503", lambda: unknown_503(b, "rf_503")),
                 ("reset", lambda: reset(b, "rf_reset")),
                 ("breaker", lambda: breaker(b, "rf_breaker"))]


if __name__ == "__main__":
    sys.exit(scenarios_main("test_rest_faults", scenarios))
