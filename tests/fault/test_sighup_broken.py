#!/usr/bin/env python3
"""SIGHUP with a broken trader file while leader fills flow (with-services: real PostgreSQL and
Redis, the simulator). test_reload.py (tests/integration) covers what a reload changes with the
leader idle; this is the fault: a reload that must be refused as a whole under load.

One Binance leader `lead` and three Binance followers; rules in two trader files: traders.d/a.yaml
holds fa-r (lead -> fa, x1) and fc-r (lead -> fc, x1), traders.d/b.yaml holds fb-r (lead -> fb, x1).
The leader trades BUY, BUY, SELL 0.002 every 100 ms.
  1. While fills flow: a.yaml gets a valid change (fa-r x3) and b.yaml is cut off mid-write (a YAML
     syntax error); SIGHUP. The reload is refused as a whole: ct_config_reloads_total{rejected}
     +1, the log and the audit log name b.yaml, copy_rules in the journal still say x1, the
     leader stream is not reconnected. Fills go on flowing and are copied by the old rules (x1,
     fa-r included): checked with the end check at the next step.
  2. The flow stops, the leader closes its position; every copy so far exactly once at x1.
  3. b.yaml is repaired; SIGHUP: applied (ct_config_reloads_total{applied} +1, the audit log says
     fa-r changed, the journal says x3).
  4. The flow again; then the end check: every order the rules call for (fa-r x1 before the
     repair, x3 after; the others x1 throughout) exactly once at the simulator, the journal agreeing."""

import json
import os
import signal
import sys
from decimal import Decimal

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from harness import (CopyScenario, copy_rules_yaml, multiplier_copies,  # noqa: E402
                     multiplier_rule_lines, psql, scenarios_main, wait_for)
from outage import Ticker, check  # noqa: E402

TICK_S = 0.1
A_RULES = [("fa-r", "lead", "fa", 1), ("fc-r", "lead", "fc", 1)]
B_RULES = [("fb-r", "lead", "fb", 1)]
# b.yaml as an editor crash leaves it: cut off in the middle of a flow sequence.
B_BROKEN = "copy_rules:\n  - id: fb-r\n    leader: lead\n    follower: fb\n    sizing: multiplier\n    multiplier: [1\n"


def trades_after(ticker, n, what, timeout=20):
    n0 = ticker.n
    wait_for(f"{n} leader fills {what}", lambda: ticker.n >= n0 + n or ticker.error, timeout=timeout, interval=0.02)
    check(ticker.error is None, f"leader trading failed: {ticker.error!r}")


def broken_file(build_dir, name):
    rules = A_RULES + B_RULES
    with CopyScenario(build_dir, name, [("lead", "binance-usdm"), ("fa", "binance-usdm"), ("fb", "binance-usdm"),
                                        ("fc", "binance-usdm")], rules,
                      traders={"a.yaml": A_RULES, "b.yaml": B_RULES}) as sc:
        sc.wait_ready()

        def reloads(result):
            return sc.metric("ct_config_reloads_total", result=result)

        def multiplier(rid):
            return psql(sc.pg, f"select params->>'multiplier' from copy_rules where id = '{rid}'")[0][0]

        conns = sc.sim.streams("lead")["connections"]
        changes = sc.metric("ct_stream_state_changes_total")
        rej0, app0 = reloads("rejected"), reloads("applied")
        ticker = Ticker(sc.sim, "lead", TICK_S)
        ticker.start()
        try:
            wait_for(f"{name}: copies flowing", lambda: all(len(sc.sim.orders(f)) >= 5 for f in ("fa", "fb", "fc")),
                     timeout=20, interval=0.05)
            # 1. A valid change in a.yaml, a broken b.yaml: refused as a whole, while fills flow.
            sc.write_trader_file("a.yaml", copy_rules_yaml(multiplier_rule_lines([("fa-r", "lead", "fa", 3),
                                                                                   A_RULES[1]])))
            sc.write_trader_file("b.yaml", B_BROKEN)
            n_hup = ticker.n
            sc.daemon.p.proc.send_signal(signal.SIGHUP)
            wait_for(f"{name}: the reload rejected (ct_config_reloads_total{{result=rejected}})",
                     lambda: reloads("rejected") == rej0 + 1, timeout=15)
            check(reloads("applied") == app0, f"{name}: a reload was applied")
            log = sc.log()
            check("reload rejected" in log and "b.yaml:" in log,
                  f"{name}: the log does not say the reload was rejected naming b.yaml")
            audit = psql(sc.pg, "select ok::text, detail::text from audit_log where kind = 'config_reload' "
                                "order by id")
            check(len(audit) == 1 and audit[0][0] == "false" and "b.yaml" in audit[0][1],
                  f"{name}: audit log of the rejected reload: {audit}")
            check(multiplier("fa-r") == "1", f"{name}: the refused reload changed fa-r in the journal: "
                                             f"{multiplier('fa-r')}")
            trades_after(ticker, 30, "after the rejected reload")
            flowing = ticker.n - n_hup
        finally:
            ticker.stop()
        check(sc.sim.streams("lead")["connections"] == conns, f"{name}: the leader stream was reconnected")
        check(sc.metric("ct_stream_state_changes_total") == changes, f"{name}: stream state changed during the reload")

        # 2. The leader closes its position; every copy so far exactly once, by the old rules.
        fills = ticker.fills["lead"]
        pos = sum(Decimal(q) if side == "BUY" else -Decimal(q) for _, side, q in fills)
        fills += sc.trade("lead", "SELL", str(pos))
        sc.check_exactly_once(fills, what="old rules after the rejected reload")
        phase1 = list(fills)

        # 3. b.yaml repaired: the reload is applied, fa-r x3 with it.
        sc.write_trader_file("b.yaml", copy_rules_yaml(multiplier_rule_lines(B_RULES)))
        sc.daemon.p.proc.send_signal(signal.SIGHUP)
        wait_for(f"{name}: the repaired reload applied", lambda: reloads("applied") == app0 + 1, timeout=15)
        audit = psql(sc.pg, "select ok::text, detail::text from audit_log where kind = 'config_reload' order by id")
        check(len(audit) == 2 and audit[1][0] == "true" and json.loads(audit[1][1]).get("changed") == ["fa-r"],
              f"{name}: audit log of the applied reload: {audit[-1:]}")
        check(multiplier("fa-r") == "3", f"{name}: fa-r in the journal after the applied reload: {multiplier('fa-r')}")

        # 4. The flow again, then the end check.
        ticker = Ticker(sc.sim, "lead", TICK_S)
        ticker.start()
        try:
            trades_after(ticker, 20, "after the applied reload")
        finally:
            ticker.stop()
        phase2 = ticker.fills["lead"]
        want = {"fa-r": multiplier_copies(phase1, 1) + multiplier_copies(phase2, 3)}
        s = sc.check_exactly_once(phase1 + phase2, want=want, what="the end check")
        return (f"reload refused as a whole (a valid change beside the broken file not applied), "
                f"{flowing} leader fills copied by the old rules after the SIGHUP; repaired file applied; "
                f"{s['fills']} leader fills, {s['orders']} follower orders exactly once")


def scenarios(b):
    return [("broken_file", lambda: broken_file(b, "hup_broken"))]


if __name__ == "__main__":
    sys.exit(scenarios_main("test_sighup_broken", scenarios))
