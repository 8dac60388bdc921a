#!/usr/bin/env python3
"""Follower state loaded after READY (with-services: real PostgreSQL and Redis, the simulator).

READY waits for the journal, the leaders' state, reconciliation and the leader streams with their
start-up backfill, not for every follower's positions, mode, leverage and equity: those load in the
background afterwards (daemon/copier_load.c). A leader fill that needs a follower still loading is
journaled at once for the followers that have their state; the waiting follower's decision is made
once its state is in (so a close is sized from its real position), journaled, then sent.

One Binance leader `lead`, followers fa (x1), fb (x1), fs (x2) and fe (x1). First run: the leader
buys 0.010, every follower copies it (fs holds 0.020). SIGTERM, then the simulator holds fs's next
positionRisk answer back SLOW_MS and fails fe's next one with HTTP 500 (retried after a backoff),
and the daemon starts again:
  - /health/ready turns 200 while followers are still loading (its followers_loading, the gauge
    ct_followers_loading and the log's "ready: ..." line say so);
  - the leader sells 0.004 right after READY: fa and fb get their SELL 0.004 (reduce-only) while
    fs is still loading (no second order at the simulator yet, followers_loading still > 0);
  - once fs's state is in, fs gets SELL 0.008: 40 % of the 0.020 it holds (a decision made before
    its positions were known would have found nothing to close), fe gets SELL 0.004 after its retry;
  - every fault hit was used, the gauges end at 0 (ct_journal_deferred_pending too: fs's decision,
    deferred past follower_state_wait_ms, had its placeholder written and resolved), and the fault
    suite's end check
    (harness.check_exactly_once) passes: each leader fill journaled once, one 'filled' row per
    (fill, rule), every client id once at the simulator, positions as the rules call for.

  slow_follower          the journal writes to PostgreSQL (journal_durability fsync, no spool).
  slow_follower_os       journal_durability: os with a spool_dir: the fill is written ahead to the
                         spool, and the waiting follower's decision (the same fill, a new intent)
                         must still be journaled and sent, not taken for a repeat the spool holds.
  slow_follower_pg_down  a private PostgreSQL (harness.PrivatePostgres) with a spool_dir, stopped
                         right after READY: the SELL goes to the spool, fs's state comes in while
                         PostgreSQL is still away (followers_loading reaches 0 first), then
                         PostgreSQL is started again: fs's decision, which the spool took for a
                         repeat of the fill it holds while PostgreSQL was away, is journaled and
                         sent once the spool is replayed, exactly once.
  sigterm_while_loading  SIGTERM right after fa and fb copied the SELL, fs still loading: the drain
                         waits for fs's state, journals its decision (left 'intent', not sent while
                         draining) and exits 0; the next start reconciles it (not at the exchange,
                         fresh: sent), so fs still gets its SELL 0.008 exactly once.
  kill9_while_waiting    follower_state_wait_ms 30000: the SELL waits whole, not journaled
                         (ct_leader_fills_waiting 1; fa has no SELL yet, the journal no fill), while
                         fs's state is fetched first; the daemon is killed with SIGKILL then. The
                         next start backfills the SELL from the exchange, and every follower
                         copies it exactly once (check_exactly_once).
  kill9_while_deferred   follower_state_wait_ms 300 and fs's positionRisk failing (HTTP 500) on every
                         try: the SELL is journaled after 300 ms with fa's order, fs's decision deferred
                         (ct_copy_decisions_waiting 1, ct_journal_deferred_pending 1); the daemon is
                         killed with SIGKILL then. The fault is replaced by a slow answer (SLOW_MS) and
                         the daemon started again: the deferred decision, durable as a 'pending' row of
                         deferred_decisions (sql/010) written with the fill, is loaded back (READY with
                         ct_journal_deferred_pending 1 while fs loads), fs's state is loaded, and fs
                         gets its SELL 0.008 exactly once (check_exactly_once); the placeholder ends
                         'decided' and the gauge 0.
  kill9_while_deferred_os  the same with journal_durability: os and a spool_dir: the fill and its
                         placeholder are written ahead to the spool first.
  kill9_while_deferred_pg_down  the same with a private PostgreSQL stopped right after READY: the fill
                         and its placeholder are only in the spool when the daemon is killed;
                         PostgreSQL is started again before the restart, and the placeholder comes
                         through the spool's replay.
  rule_removed_while_deferred  as kill9_while_deferred up to the deferral (the rules in a trader
                         file), then fs's rule is removed from it and SIGHUP sent: the placeholder is
                         resolved 'skipped' (rule_removed) without waiting for fs's state, nothing is
                         left waiting, fs gets no order and no journal row for the SELL.
  never_loads            fs's positionRisk fails with HTTP 500 on every try after the restart: fa
                         copies the SELL at once; fs's decision waits, and once the fill is older
                         than the send window (60 s) it is journaled as skipped (stale_signal,
                         quantity 0, never sent) instead of waiting for ever, and its placeholder
                         is resolved 'skipped' (stale_signal); nothing is left waiting
                         (ct_copy_decisions_waiting 0), fs stays loading, SIGTERM exits 0."""

import contextlib
import json
import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from decimal import Decimal

from harness import (CopyScenario, PrivatePostgres, TestFailure, copy_rules_yaml, http,  # noqa: E402
                     multiplier_rule_lines, psql, require_env, scenarios_main, wait_for)

SLOW_MS = 5000
POSITIONS_EP = "GET /fapi/v2/positionRisk"


def check(cond, what):
    if not cond:
        raise TestFailure(what)


def wait_pending(sc, n, what, timeout=10):
    """Waits until ct_journal_deferred_pending (placeholders pending in the journal) is n."""
    wait_for(f"{sc.name}: {what}: ct_journal_deferred_pending {n}",
             lambda: sc.metric("ct_journal_deferred_pending") == n, timeout=timeout, interval=0.02)


def ready_body(sc):
    st, text = http("GET", sc.base + "/health/ready")
    try:
        return st, json.loads(text)
    except ValueError:
        raise TestFailure(f"{sc.name}: /health/ready -> {st}, not JSON: {text!r}")


def in_journal_mode(build_dir, name, mode, daemon_yaml, run):
    """run(build_dir, name, daemon_yaml, pgs) with the journal as mode says: "pg" (PostgreSQL
    only), "os" (write-ahead through a spool) or "pg_down" (a spool and a private PostgreSQL
    the scenario may stop: pgs, closed afterwards)."""
    pgs = None
    if mode in ("os", "pg_down"):
        d = os.path.join(require_env("CT_TEST_TMP"), name + "-spool")
        os.makedirs(d, mode=0o700, exist_ok=True)
        os.chmod(d, 0o700)
        daemon_yaml += f"  spool_dir: {d}\n" + ("  journal_durability: os\n" if mode == "os" else "")
    if mode == "pg_down":
        pgs = PrivatePostgres(require_env("CT_TEST_TMP"), name + "-pg")
    try:
        return run(build_dir, name, daemon_yaml, pgs)
    finally:
        if pgs:
            pgs.close()


def slow_follower(build_dir, name, mode="pg"):
    return in_journal_mode(build_dir, name, mode, "", slow_follower_run)


def slow_follower_run(build_dir, name, daemon_yaml, pgs):
    followers = [("fa", 1), ("fb", 1), ("fs", 2), ("fe", 1)]
    with CopyScenario(build_dir, name, [("lead", "binance-usdm")] + [(f, "binance-usdm") for f, _ in followers],
                      [(f"{f}-r", "lead", f, k) for f, k in followers], daemon_yaml=daemon_yaml,
                      pg=pgs.conninfo if pgs else None) as sc:
        sc.wait_ready()
        fills = sc.trade("lead", "BUY", "0.010")
        sc.check_exactly_once(fills, what="the first run")
        rc = sc.daemon.p.stop(signal.SIGTERM)
        check(rc == 0, f"{name}: exit {rc} after SIGTERM")

        slow = sc.sim.fault("latency", account="fs", endpoint=POSITIONS_EP, ms=SLOW_MS, count=1)
        fail = sc.sim.fault("http_5xx", account="fe", endpoint=POSITIONS_EP, count=1)
        sc.restart()
        sc.wait_ready(timeout=60)
        st, body = ready_body(sc)
        check(st == 200 and body.get("followers_loading", 0) >= 1,
              f"{name}: /health/ready at READY: {st} {body} (want 200 with followers still loading)")
        gauge = sc.metrics().get(("ct_followers_loading", frozenset()))
        check(gauge is not None and gauge >= 1, f"{name}: ct_followers_loading at READY: {gauge} (want >= 1)")
        if pgs:
            pgs.stop("fast")
            wait_for(f"{name}: the journal on its spool", lambda: ready_body(sc)[1].get("journal") == "spool",
                     timeout=15, interval=0.05)
        fills += sc.trade("lead", "SELL", "0.004")

        # The followers with their state are not held back by the one still loading.
        sc.wait_orders("fa", 2)
        sc.wait_orders("fb", 2)
        _, body = ready_body(sc)
        fs_now = sc.sim.orders("fs")
        check(len(fs_now) == 1 and body.get("followers_loading", 0) >= 1,
              f"{name}: fa and fb copied the SELL, but fs has {len(fs_now)} orders and followers_loading is "
              f"{body.get('followers_loading')} (want fs still loading, its SELL not sent yet)")
        m = re.findall(r"\[main\] ready: .*, (\d+) followers' state still loading", sc.log())
        check(m and int(m[-1]) >= 2, f"{name}: the restart's READY line names {m} followers loading (want >= 2: "
                                     f"fs and fe at least)")

        if pgs:
            wait_for(f"{name}: every follower's state in while PostgreSQL is away",
                     lambda: ready_body(sc)[1].get("followers_loading") == 0, timeout=SLOW_MS / 1000 + 20,
                     interval=0.05)
            check(ready_body(sc)[1].get("journal") == "spool", f"{name}: PostgreSQL back too early")
            pgs.start()
        sc.wait_orders("fs", 2, timeout=SLOW_MS / 1000 + 30)
        sc.wait_orders("fe", 2, timeout=30)
        last = sorted(sc.sim.orders("fs"), key=lambda o: o["time"])[-1]
        check(last["side"].upper() == "SELL" and last["origQty"] in ("0.008", "0.0080", "0.00800")
              and last["reduceOnly"], f"{name}: fs's copy of the SELL: {last} (want SELL 0.008 reduce-only: "
                                      f"40 % of the 0.020 it holds)")
        check(sc.sim.fault_hits(slow["id"]) == 1 and sc.sim.fault_hits(fail["id"]) == 1,
              f"{name}: fault hits: slow {sc.sim.fault_hits(slow['id'])}, 500 {sc.sim.fault_hits(fail['id'])} "
              f"(want 1 each)")
        s = sc.check_exactly_once(fills, what="the end check")
        ph = placeholders(sc)
        check(["fs-r", "fs", "decided", ""] in ph and all(p[2] == "decided" for p in ph),
              f"{name}: deferred_decisions: {ph} (want fs-r's decided, none pending)")
        wait_for(f"{name}: every follower loaded, no decision waiting",
                 lambda: sc.metrics().get(("ct_followers_loading", frozenset())) == 0
                 and sc.metrics().get(("ct_copy_decisions_waiting", frozenset())) == 0
                 and ready_body(sc)[1].get("followers_loading") == 0, timeout=10, interval=0.05)
        wait_pending(sc, 0, "fs's placeholder resolved")
        return f"{s['fills']} leader fills, {s['orders']} follower orders exactly once"


@contextlib.contextmanager
def restarted_with_fs_fault(build_dir, name, daemon_yaml="", pg=None, **fault):
    """fa (x1) and fs (x2) copy a leader BUY 0.010 exactly once; SIGTERM; the simulator gets the
    fault on fs's positionRisk; the daemon starts again and is READY. Yields (scenario, the leader
    fills so far, the fault)."""
    followers = [("fa", 1), ("fs", 2)]
    with CopyScenario(build_dir, name, [("lead", "binance-usdm")] + [(f, "binance-usdm") for f, _ in followers],
                      [(f"{f}-r", "lead", f, k) for f, k in followers], daemon_yaml=daemon_yaml, pg=pg) as sc:
        sc.wait_ready()
        fills = sc.trade("lead", "BUY", "0.010")
        sc.check_exactly_once(fills, what="the first run")
        check(sc.daemon.p.stop(signal.SIGTERM) == 0, f"{name}: first run: no clean exit")
        f = sc.sim.fault(account="fs", endpoint=POSITIONS_EP, **fault)
        sc.restart()
        sc.wait_ready(timeout=60)
        yield sc, fills, f


def sigterm_while_loading(build_dir, name):
    with restarted_with_fs_fault(build_dir, name, kind="latency", ms=SLOW_MS, count=1) as (sc, fills, slow):
        fills += sc.trade("lead", "SELL", "0.004")
        sc.wait_orders("fa", 2)
        _, body = ready_body(sc)
        check(body.get("followers_loading", 0) >= 1 and len(sc.sim.orders("fs")) == 1,
              f"{name}: fa copied the SELL but fs is not loading any more ({body}): too late to test the drain")
        rc = sc.daemon.p.stop(signal.SIGTERM)
        log = sc.log()
        check(rc == 0 and "NOT copied" not in log, f"{name}: SIGTERM while fs loads: exit {rc}; log tail:\n"
                                                   f"{sc.daemon.p.tail(20)}")
        rows = psql(sc.pg, "select status, side, qty::text from follower_orders where follower = 'fs' order by id")
        check(len(rows) == 2 and rows[1][0] == "intent" and rows[1][1] == "SELL" and Decimal(rows[1][2]) == Decimal("0.008"),
              f"{name}: fs's journal rows after the drain: {rows} (want the SELL 0.008 journaled, still 'intent')")
        check(len(sc.sim.orders("fs")) == 1, f"{name}: fs's SELL was sent while draining")
        check(sc.sim.fault_hits(slow["id"]) == 1, f"{name}: the slow positionRisk was not hit")
        sc.restart("copytraderd-3")
        sc.wait_ready(timeout=60)
        s = sc.check_exactly_once(fills, what="the end check")
        return f"{s['fills']} leader fills, {s['orders']} follower orders exactly once"


def kill9_while_waiting(build_dir, name):
    with restarted_with_fs_fault(build_dir, name, daemon_yaml="  follower_state_wait_ms: 30000\n",
                                 kind="latency", ms=SLOW_MS, count=1) as (sc, fills, slow):
        journaled = int(psql(sc.pg, "select count(*) from leader_fills")[0][0])
        fills += sc.trade("lead", "SELL", "0.004")
        wait_for(f"{name}: the SELL waiting for fs's state",
                 lambda: sc.metrics().get(("ct_leader_fills_waiting", frozenset())) == 1, timeout=10, interval=0.02)
        now = int(psql(sc.pg, "select count(*) from leader_fills")[0][0])
        check(now == journaled and len(sc.sim.orders("fa")) == 1 and len(sc.sim.orders("fs")) == 1,
              f"{name}: while the SELL waits: {now - journaled} new journaled fills, fa {len(sc.sim.orders('fa'))} "
              f"orders, fs {len(sc.sim.orders('fs'))} (want none journaled, none sent)")
        sc.daemon.p.stop(signal.SIGKILL)
        check(sc.sim.fault_hits(slow["id"]) == 1, f"{name}: fs's slow positionRisk was not hit")
        sc.restart("copytraderd-3")
        sc.wait_ready(timeout=60)
        s = sc.check_exactly_once(fills, what="the end check")
        return f"{s['fills']} leader fills, {s['orders']} follower orders exactly once after a kill -9 in the wait"


def kill9_while_deferred(build_dir, name, mode="pg"):
    return in_journal_mode(build_dir, name, mode, "  follower_state_wait_ms: 300\n", kill9_while_deferred_run)


def kill9_while_deferred_run(build_dir, name, daemon_yaml, pgs):
    with restarted_with_fs_fault(build_dir, name, daemon_yaml=daemon_yaml, kind="http_5xx",
                                 pg=pgs.conninfo if pgs else None) as (sc, fills, fail):
        if pgs:
            pgs.stop("fast")
            wait_for(f"{name}: the journal on its spool", lambda: ready_body(sc)[1].get("journal") == "spool",
                     timeout=15, interval=0.05)
        fills += sc.trade("lead", "SELL", "0.004")
        sc.wait_orders("fa", 2)  # the fill is journaled (write-before-send), fs's decision deferred with it
        wait_for(f"{name}: fs's decision deferred",
                 lambda: sc.metrics().get(("ct_copy_decisions_waiting", frozenset())) == 1, timeout=10,
                 interval=0.02)
        wait_pending(sc, 1, "fs's placeholder written with the fill")
        check(len(sc.sim.orders("fs")) == 1 and ready_body(sc)[1].get("followers_loading") == 1,
              f"{name}: fs {len(sc.sim.orders('fs'))} orders, {ready_body(sc)[1]} (want fs still loading)")
        sc.daemon.p.stop(signal.SIGKILL)
        check(sc.sim.fault_hits(fail["id"]) >= 1, f"{name}: fs's positionRisk fault was not hit")
        sc.sim.clear_faults(fail["id"])
        # fs's first positionRisk after the restart answers late: the placeholder read back waits
        # for it, seen pending.
        slow = sc.sim.fault("latency", account="fs", endpoint=POSITIONS_EP, ms=SLOW_MS, count=1)
        if pgs:
            pgs.start()
        sc.restart("copytraderd-3")
        sc.wait_ready(timeout=60)
        m = sc.metrics()
        check(m.get(("ct_journal_deferred_pending", frozenset())) == 1 and len(sc.sim.orders("fs")) == 1,
              f"{name}: at READY after the restart: ct_journal_deferred_pending "
              f"{m.get(('ct_journal_deferred_pending', frozenset()))}, fs {len(sc.sim.orders('fs'))} orders "
              f"(want 1 read back, fs's SELL not sent yet)")
        sc.wait_orders("fs", 2, timeout=SLOW_MS / 1000 + 30)
        wait_pending(sc, 0, "fs's decision made")
        check(sc.sim.fault_hits(slow["id"]) == 1, f"{name}: fs's slow positionRisk was not hit")
        s = sc.check_exactly_once(fills, what="the end check")
        check("fs's decision was deferred by an earlier run" in sc.log(),
              f"{name}: the restart did not read fs's deferred decision back; log tail:\n{sc.daemon.p.tail(30)}")
        rows = psql(sc.pg, "select rule_id, follower, status, coalesce(reason, '') from deferred_decisions")
        check(rows == [["fs-r", "fs", "decided", ""]],
              f"{name}: deferred_decisions: {rows} (want fs-r's placeholder, resolved 'decided')")
        return (f"{s['fills']} leader fills, {s['orders']} follower orders exactly once after a kill -9 with a "
                f"decision deferred")


def placeholders(sc):
    return psql(sc.pg, "select rule_id, follower, status, coalesce(reason, '') from deferred_decisions order by id")


def rule_removed_while_deferred(build_dir, name):
    rules = [("fa-r", "lead", "fa", 1), ("fs-r", "lead", "fs", 2)]
    with CopyScenario(build_dir, name, [("lead", "binance-usdm"), ("fa", "binance-usdm"), ("fs", "binance-usdm")],
                      rules, daemon_yaml="  follower_state_wait_ms: 300\n", traders={"team.yaml": rules}) as sc:
        sc.wait_ready()
        fills = sc.trade("lead", "BUY", "0.010")
        sc.check_exactly_once(fills, what="the first run")
        check(sc.daemon.p.stop(signal.SIGTERM) == 0, f"{name}: first run: no clean exit")
        fail = sc.sim.fault("http_5xx", account="fs", endpoint=POSITIONS_EP)
        sc.restart()
        sc.wait_ready(timeout=60)
        sc.trade("lead", "SELL", "0.004")
        sc.wait_orders("fa", 2)
        wait_for(f"{name}: fs's decision deferred",
                 lambda: sc.metrics().get(("ct_copy_decisions_waiting", frozenset())) == 1, timeout=10,
                 interval=0.02)
        check(placeholders(sc) == [["fs-r", "fs", "pending", ""]],
              f"{name}: deferred_decisions while fs loads: {placeholders(sc)} (want fs-r's, pending)")
        sc.write_trader_file("team.yaml", copy_rules_yaml(multiplier_rule_lines(rules[:1])))
        sc.daemon.p.proc.send_signal(signal.SIGHUP)
        wait_for(f"{name}: the placeholder resolved once fs-r is removed",
                 lambda: placeholders(sc) == [["fs-r", "fs", "skipped", "rule_removed"]], timeout=30, interval=0.1)
        wait_for(f"{name}: nothing left waiting",
                 lambda: sc.metrics().get(("ct_copy_decisions_waiting", frozenset())) == 0, timeout=10)
        fs_rows = psql(sc.pg, "select side from follower_orders where follower = 'fs'")
        check(fs_rows == [["BUY"]] and len(sc.sim.orders("fs")) == 1 and len(sc.sim.orders("fa")) == 2,
              f"{name}: fs's journal rows {fs_rows}, orders fs {len(sc.sim.orders('fs'))} fa "
              f"{len(sc.sim.orders('fa'))} (want only the BUY for fs, both for fa)")
        check(sc.sim.fault_hits(fail["id"]) >= 1, f"{name}: fs's positionRisk fault was not hit")
        return "the removed rule's placeholder resolved skipped (rule_removed), nothing sent for it"


def never_loads(build_dir, name):
    with restarted_with_fs_fault(build_dir, name, kind="http_5xx") as (sc, _, fail):
        sc.trade("lead", "SELL", "0.004")
        sc.wait_orders("fa", 2)
        check(ready_body(sc)[1].get("followers_loading") == 1, f"{name}: fs not loading: {ready_body(sc)[1]}")

        def fs_rows():
            return psql(sc.pg, "select status, side, qty::text, coalesce(skip_reason, '') from follower_orders "
                               "where follower = 'fs' order by id")
        wait_for(f"{name}: fs's decision journaled as skipped once the fill is 60 s old",
                 lambda: len(fs_rows()) == 2, timeout=90, interval=0.5)
        rows = fs_rows()
        check(rows[1][0] == "skipped" and rows[1][3] == "stale_signal" and Decimal(rows[1][2]) == 0,
              f"{name}: fs's rows: {rows} (want the SELL's row skipped, stale_signal, quantity 0)")
        check(len(sc.sim.orders("fs")) == 1 and len(sc.sim.orders("fa")) == 2,
              f"{name}: orders at the simulator: fs {len(sc.sim.orders('fs'))}, fa {len(sc.sim.orders('fa'))}")
        m = sc.metrics()
        check(m.get(("ct_copy_decisions_waiting", frozenset())) == 0 and
              m.get(("ct_followers_loading", frozenset())) == 1,
              f"{name}: decisions waiting {m.get(('ct_copy_decisions_waiting', frozenset()))}, followers loading "
              f"{m.get(('ct_followers_loading', frozenset()))} (want 0 and 1)")
        check(sc.sim.fault_hits(fail["id"]) >= 2, f"{name}: fs's positionRisk was not retried")
        check(placeholders(sc) == [["fs-r", "fs", "skipped", "stale_signal"]],
              f"{name}: deferred_decisions: {placeholders(sc)} (want fs-r's, skipped as stale_signal)")
        return "fs's decision skipped as stale after the send window, fa copied at once"


def scenarios(b):
    return [
        ("slow_follower", lambda: slow_follower(b, "sl_pg")),
        ("slow_follower_os", lambda: slow_follower(b, "sl_os", mode="os")),
        ("slow_follower_pg_down", lambda: slow_follower(b, "sl_down", mode="pg_down")),
        ("sigterm_while_loading", lambda: sigterm_while_loading(b, "sl_term")),
        ("kill9_while_waiting", lambda: kill9_while_waiting(b, "sl_kill9")),
        ("kill9_while_deferred", lambda: kill9_while_deferred(b, "sl_kill9d")),
        ("kill9_while_deferred_os", lambda: kill9_while_deferred(b, "sl_kill9d_os", mode="os")),
        ("kill9_while_deferred_pg_down", lambda: kill9_while_deferred(b, "sl_kill9d_down", mode="pg_down")),
        ("rule_removed_while_deferred", lambda: rule_removed_while_deferred(b, "sl_rmdef")),
        ("never_loads", lambda: never_loads(b, "sl_never")),
    ]


if __name__ == "__main__":
    sys.exit(scenarios_main("test_startup_loading", scenarios))
