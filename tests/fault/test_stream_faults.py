#!/usr/bin/env python3
"""Leader stream faults through the daemon (with-services: real PostgreSQL and Redis; the simulator's
fault injection, exchange/sim/README.md "Faults"). One follower `fb` (binance-usdm) copies the
leader x1 in every scenario; each scenario has its own simulator, database and daemon.

  drop_binance   ws_drop on a Binance leader, then the leader trades at once (the daemon's first
                 reconnect waits >= ~125 ms): every fill of the gap is copied once after the
                 backfill; ct_stream_reconnects_total and ct_backfill_fills_total rise.
  drop_bybit     the same for a Bybit leader (ws <sim>/v5/private).
  silent_binance ws_silent on the leader's connection (it stays open, sends nothing, answers no
                 ping): the daemon must declare it dead within its silence bound (the accounts'
                 stream_silence_ms, 3 s here; 40 s by default), reconnect and backfill the fills
                 made during the silence.
  silent_bybit   the same for a Bybit leader (pings every second, so silence is noticed).
  lke_binance    listen_key_expire: a new listenKey, a reconnect, the fills in between copied once.
  dup_reorder    ws_duplicate (every event twice), then ws_reorder (events swapped pairwise, the
                 last one sent 2 s late): each fill copied once, duplicates counted.

Every scenario asserts the metrics named and ends with the fault suite's check
(harness.check_exactly_once): the follower's orders at the simulator (exact sizes, sides,
reduce-only, each client id once, FILLED), the journal (each leader fill once, one 'filled'
follower order per fill with the same client ids), the follower's position = the rules' orders."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from harness import CopyScenario, TestFailure, scenarios_main, wait_for  # noqa: E402

# The leaders' stream_silence_ms below (the default would be 40 s on Binance), and the ping period
# of the silent scenario's streams (a Bybit stream is only heard from between events when it
# answers the client's {"op":"ping"}, every 20 s by default).
SILENCE_S = 3
SILENT_PING_MS = 1000


def check(cond, what):
    if not cond:
        raise TestFailure(what)


def start(build_dir, name, leader_ex, account_yaml=""):
    return CopyScenario(build_dir, name, [("lead", leader_ex), ("fb", "binance-usdm")],
                        [("fb-r", "lead", "fb", 1)], daemon_yaml="  account_refresh_ms: 500\n",
                        account_yaml=f"    stream_silence_ms: {SILENCE_S * 1000}\n" + account_yaml)


def settle_and_check(sc, fills, what):
    """The fault suite's end check (harness.check_exactly_once) over the fills made so far."""
    return sc.check_exactly_once(fills, timeout=20, what=what)


def opening(sc):
    """A first fill copied over the live stream: the stream works and the backfill knows the symbol."""
    fills = sc.trade("lead", "BUY", "0.010")
    settle_and_check(sc, fills, "before the fault")
    return fills


def gap_trades(sc):
    """Trades right after a fault; returns (fills, fills certainly made while no connection was up)."""
    fills, in_gap = [], 0
    for side, qty, parts in [("BUY", "0.005", ["0.002", "0.003"]), ("SELL", "0.004", None),
                             ("BUY", "0.003", None)]:
        f = sc.trade("lead", side, qty, fills=parts)
        fills += f
        if sc.sim.streams("lead")["connections"] == 0:
            in_gap += len(f)
    return fills, in_gap


def stream_drop(build_dir, name, leader_ex):
    with start(build_dir, name, leader_ex) as sc:
        sc.wait_ready()
        fills = opening(sc)
        rec0 = sc.metric("ct_stream_reconnects_total", account="lead")
        bf0 = sc.metric("ct_backfill_fills_total", leader="lead")
        f = sc.sim.fault("ws_drop", account="lead")
        check(f["hits"] >= 1, f"{name}: the simulator dropped no connection of the leader (ws_drop hits "
                              f"{f['hits']}: does it apply to {leader_ex} private streams?)")
        more, in_gap = gap_trades(sc)
        fills += more
        check(in_gap >= 1, f"{name}: no fill was made while the stream was down (reconnected too fast?)")
        wait_for(f"{name}: leader stream back", lambda: sc.sim.streams("lead")["connections"] >= 1)
        wait_for(f"{name}: ct_stream_reconnects_total rises",
                 lambda: sc.metric("ct_stream_reconnects_total", account="lead") > rec0)
        wait_for(f"{name}: ct_backfill_fills_total counts the {in_gap} gap fills",
                 lambda: sc.metric("ct_backfill_fills_total", leader="lead") - bf0 >= in_gap)
        check(sc.metric("ct_backfill_runs_total", result="failed") == 0, f"{name}: a backfill failed")
        bf = sc.metric("ct_backfill_fills_total", leader="lead") - bf0
        check(bf <= len(more), f"{name}: backfill took {bf} fills, only {len(more)} were made after the drop")
        settle_and_check(sc, fills, "after the drop")
        return f"{len(more)} fills after the drop ({in_gap} certainly in the gap), {bf:.0f} backfilled"


def stream_silent(build_dir, name, leader_ex):
    with start(build_dir, name, leader_ex, f"    stream_ping_ms: {SILENT_PING_MS}\n") as sc:
        sc.wait_ready()
        fills = opening(sc)
        rec0 = sc.metric("ct_stream_reconnects_total", account="lead")
        sil0 = sc.metric("ct_stream_silences_total", account="lead")
        bf0 = sc.metric("ct_backfill_fills_total", leader="lead")
        t0 = time.monotonic()
        f = sc.sim.fault("ws_silent", account="lead", duration_ms=120000)
        check(f["hits"] >= 1, f"{name}: ws_silent silenced no connection (hits {f['hits']})")
        more, _ = gap_trades(sc)
        fills += more
        wait_for(f"{name}: the fills' frames lost to the silence (silencedFrames)",
                 lambda: sc.sim.streams("lead").get("silencedFrames", 0) >= len(more), timeout=5)
        check(len(sc.sim.orders("fb")) == 1, f"{name}: fills reached the daemon through a silenced stream")
        wait_for(f"{name}: the silent stream declared dead (ct_stream_silences_total)",
                 lambda: sc.metric("ct_stream_silences_total", account="lead") > sil0,
                 timeout=SILENCE_S + 8, interval=0.25)
        detected = time.monotonic() - t0
        wait_for(f"{name}: the silenced fills backfilled",
                 lambda: sc.metric("ct_backfill_fills_total", leader="lead") - bf0 == len(more))
        check(sc.metric("ct_stream_reconnects_total", account="lead") > rec0, f"{name}: no reconnect counted")
        sc.sim.clear_faults()
        settle_and_check(sc, fills, "after the silence")
        return f"{len(more)} fills during the silence, declared dead after {detected:.1f} s, all backfilled"


def listen_key_expiry(build_dir, name):
    with start(build_dir, name, "binance-usdm") as sc:
        sc.wait_ready()
        fills = opening(sc)
        key0 = sc.sim.streams("lead")["listenKey"]
        check(key0, f"{name}: the leader has no listenKey")
        rec0 = sc.metric("ct_stream_reconnects_total", account="lead")
        f = sc.sim.fault("listen_key_expire", account="lead")
        check(f["hits"] >= 1, f"{name}: no listenKey expired (hits {f['hits']})")
        more, in_gap = gap_trades(sc)
        fills += more
        wait_for(f"{name}: a new listenKey with a connection",
                 lambda: (lambda s: s["listenKey"] not in (None, key0) and s["connections"] >= 1)(
                     sc.sim.streams("lead")))
        wait_for(f"{name}: ct_stream_reconnects_total rises",
                 lambda: sc.metric("ct_stream_reconnects_total", account="lead") > rec0)
        settle_and_check(sc, fills, "after the listenKey expiry")
        return f"new listenKey, {len(more)} fills after the expiry ({in_gap} certainly in the gap)"


def duplicate_reorder(build_dir, name):
    with start(build_dir, name, "binance-usdm") as sc:
        sc.wait_ready()
        fills = opening(sc)
        dup0 = sc.metric("ct_leader_fills_duplicate_total", leader="lead")
        f = sc.sim.fault("ws_duplicate", account="lead")
        new = sc.trade("lead", "BUY", "0.010", fills=["0.004", "0.006"])
        new += sc.trade("lead", "SELL", "0.008")
        fills += new
        settle_and_check(sc, fills, "with duplicated events")
        wait_for(f"{name}: the duplicated fills counted",
                 lambda: sc.metric("ct_leader_fills_duplicate_total", leader="lead") - dup0 >= len(new))
        check(sc.sim.fault_hits(f["id"]) >= 2 * len(new), f"{name}: ws_duplicate hit only "
              f"{sc.sim.fault_hits(f['id'])} events")
        sc.sim.clear_faults()

        f = sc.sim.fault("ws_reorder", account="lead")
        new = sc.trade("lead", "BUY", "0.006", fills=["0.001", "0.002", "0.003"])
        new += sc.trade("lead", "SELL", "0.012", fills=["0.005", "0.007"])
        new += sc.trade("lead", "BUY", "0.002")
        fills += new
        wait_for(f"{name}: ws_reorder held events", lambda: sc.sim.fault_hits(f["id"]) >= 2, timeout=10)
        sc.sim.clear_faults()
        settle_and_check(sc, fills, "with reordered events")
        return f"{len(fills)} fills with duplicated and reordered events, each copied once"


def scenarios(b):
    return [("drop_binance", lambda: stream_drop(b, "sf_drop_bn", "binance-usdm")),
                 ("drop_bybit", lambda: stream_drop(b, "sf_drop_by", "bybit-linear")),
                 ("lke_binance", lambda: listen_key_expiry(b, "sf_lke")),
                 ("dup_reorder", lambda: duplicate_reorder(b, "sf_dupre")),
                 ("silent_binance", lambda: stream_silent(b, "sf_silent_bn", "binance-usdm")),
                 ("silent_bybit", lambda: stream_silent(b, "sf_silent_by", "bybit-linear"))]


if __name__ == "__main__":
    sys.exit(scenarios_main("test_stream_faults", scenarios))
