"""Shared harness for integration tests, the fault suite and the demo: starts the simulator and the
daemon as real processes, talks to the simulator's admin interface, the daemon's HTTP endpoints and
PostgreSQL (through psql), and waits on conditions with deadlines instead of sleeping."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


class TestFailure(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, fn, timeout=20.0, interval=0.02):
    """Polls fn() until it returns a truthy value; fails naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (OSError, urllib.error.URLError, ValueError) as e:  # server not up yet
            last = e
        time.sleep(interval)
    raise TestFailure(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def http(method, url, body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def write_secret(directory, account):
    """The secret file of a simulator account ({"name","api_key","api_secret",...}) as
    copytraderd reads it: <directory>/<name>.yaml, mode 0600."""
    os.makedirs(directory, exist_ok=True)
    write_private(os.path.join(directory, account["name"] + ".yaml"),
                  f"api_key: {account['api_key']}\napi_secret: {account['api_secret']}\n")


class Process:
    def __init__(self, name, argv, log_path, env=None):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, env=env, text=True)

    def read_line(self, prefix, timeout=20):
        """First stdout line starting with prefix (the simulator's READY line)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise TestFailure(f"{self.name} exited (rc={self.proc.poll()}) before printing {prefix}; "
                                  f"log: {self.tail()}")
            if line.startswith(prefix):
                return line.strip()
        raise TestFailure(f"{self.name}: no {prefix} line")

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise TestFailure(f"{self.name} did not exit within {timeout}s of signal {sig}")
        self.log.close()
        return self.proc.returncode

    def tail(self, n=40):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


class Sim:
    """copytrader-exsim with a JSON config; admin interface helpers."""

    def __init__(self, build_dir, tmp, accounts, symbols):
        self.cfg = {"port": 0, "admin_port": 0, "accounts": accounts, "symbols": symbols}
        self.cfg_path = os.path.join(tmp, "exsim.json")
        with open(self.cfg_path, "w") as f:
            json.dump(self.cfg, f, indent=1)
        exe = os.path.join(build_dir, "exchange", "sim", "copytrader-exsim")
        self.p = Process("exsim", [exe, "--config", self.cfg_path], os.path.join(tmp, "exsim.log"))
        line = self.p.read_line("READY")
        m = re.match(r"READY rest=([\d.]+):(\d+) admin=([\d.]+):(\d+)", line)
        if not m:
            raise TestFailure(f"exsim: bad READY line {line!r}")
        self.rest_url = f"http://{m.group(1)}:{m.group(2)}"
        self.ws_url = f"ws://{m.group(1)}:{m.group(2)}"
        self.admin = f"http://{m.group(3)}:{m.group(4)}"

    def _json(self, method, path, body=None, expect=200):
        st, text = http(method, self.admin + path, body)
        if st != expect:
            raise TestFailure(f"exsim admin {method} {path} -> {st}: {text}")
        return json.loads(text) if text else None

    def leader_order(self, account, symbol, side, qty, **kw):
        body = {"account": account, "symbol": symbol, "side": side, "type": "MARKET", "quantity": qty}
        body.update(kw)
        return self._json("POST", "/admin/order", body)

    def set_price(self, symbol, price):
        return self._json("POST", "/admin/price", {"symbol": symbol, "price": price})

    def orders(self, account):
        return self._json("GET", f"/admin/orders?account={account}")

    def positions(self, account):
        return self._json("GET", f"/admin/positions?account={account}")

    def streams(self, account):
        return self._json("GET", f"/admin/streams?account={account}")

    def replay(self, account, from_seq=0):
        return self._json("POST", "/admin/replay", {"account": account, "from_seq": from_seq})

    def stop(self):
        return self.p.stop()

    # ---- fault injection and rate limits (exchange/sim/README.md, "Faults") ----

    def fault(self, kind, **spec):
        """POST /admin/fault {"kind": kind, ...spec}; returns the fault as the simulator lists it
        ({"id","kind","account","endpoint","hits","remaining","active",...})."""
        body = {"kind": kind}
        body.update(spec)
        return self._json("POST", "/admin/fault", body)

    def faults(self):
        """GET /admin/faults: every fault with its hit count."""
        return self._json("GET", "/admin/faults")

    def fault_hits(self, fault_id):
        """Hits of one fault (0 if it is gone from the list)."""
        for f in self.faults():
            if f["id"] == fault_id:
                return f["hits"]
        return 0

    def clear_faults(self, fault_id=None):
        """DELETE /admin/fault (every fault, or the one with that id); returns how many were cleared."""
        path = "/admin/fault" if fault_id is None else f"/admin/fault?id={fault_id}"
        return self._json("DELETE", path)["cleared"]

    def reset_limits(self):
        return self._json("POST", "/admin/limits/reset")

    def accounts_state(self):
        return self._json("GET", "/admin/accounts")


class Daemon:
    def __init__(self, build_dir, tmp, config_text, name="copytraderd", extra_args=()):
        self.cfg_path = os.path.join(tmp, "copytrader.yaml")
        with open(self.cfg_path, "w") as f:
            f.write(config_text)
        self.exe = os.path.join(build_dir, "daemon", "copytraderd")
        self.tmp = tmp
        self.p = Process(name, [self.exe, "--config", self.cfg_path, *extra_args],
                         os.path.join(tmp, f"{name}.log"))

    def stop(self, sig=signal.SIGTERM):
        return self.p.stop(sig)


def stop_clean(daemon):
    """SIGTERM; the daemon must drain and exit 0 with no sanitizer report in its log."""
    rc = daemon.stop()
    log = daemon.p.tail(400)
    if rc != 0 or "runtime error" in log or "AddressSanitizer" in log or "LeakSanitizer" in log:
        raise TestFailure(f"{daemon.p.name} exited {rc}; log tail:\n{daemon.p.tail(30)}")


def parse_metrics(text):
    """{(name, frozenset(labels.items())): float} from Prometheus text format."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$', line)
        if not m:
            raise TestFailure(f"bad metrics line: {line!r}")
        labels = {}
        if m.group(3):
            for lm in re.finditer(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3)):
                labels[lm.group(1)] = lm.group(2)
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return out


def metric(metrics, name, **labels):
    """Sum of every series of `name` whose labels include `labels`."""
    total = 0.0
    found = False
    for (n, ls), v in metrics.items():
        if n == name and all((k, v2) in ls for k, v2 in labels.items()):
            total += v
            found = True
    return total if found else 0.0


def psql(conninfo, sql):
    """Rows of a query as lists of strings (psql -At with a unit separator)."""
    r = subprocess.run(["psql", conninfo, "-v", "ON_ERROR_STOP=1", "-AtF", "\x1f", "-c", sql],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise TestFailure(f"psql failed: {r.stderr.strip()} (query: {sql})")
    return [line.split("\x1f") for line in r.stdout.splitlines() if line != ""]


def fresh_database(conninfo, prefix):
    """Creates a new, empty database next to the one in conninfo and returns a conninfo for it,
    so tests that share one PostgreSQL server (one ctest run) never see each other's rows."""
    name = f"{prefix}_{os.getpid()}_{int(time.time() * 1000) % 100000000}"
    psql(conninfo, f'CREATE DATABASE "{name}"')
    if re.search(r"dbname=\S+", conninfo):
        return re.sub(r"dbname=\S+", f"dbname={name}", conninfo)
    return f"{conninfo} dbname={name}"


def require_env(name):
    v = os.environ.get(name)
    if not v:
        sys.exit(f"FAIL: {name} is not set: run this under tests/integration/with-services")
    return v


# ---- one daemon's setup: accounts, secret files, the YAML, the journal's state ----

# Short refresh and cache lifetimes, for tests that change balances or leverage at the simulator
# and want the daemon to see it soon (daemon section lines).
FAST_REFRESH_YAML = "  account_refresh_ms: 200\n  cache_ttl_balances_ms: 200\n  cache_ttl_tickers_ms: 200\n"

# A journaled follower order in one of these states is not final yet.
OPEN_STATUSES = "('intent','sent','unknown','acked','partially_filled')"


def make_accounts(secrets_dir, names, key_suffix, secret_suffix, balance="1000000", extra=None):
    """Simulator accounts for names (api_key key-NAME-<key_suffix>, api_secret
    secret-NAME-<secret_suffix>, balance), each one's secret file written to secrets_dir.
    extra: {name: {field: value}} added to that account (another balance, "position_mode")."""
    accounts = []
    for n in names:
        a = {"name": n, "api_key": f"key-{n}-{key_suffix}", "api_secret": f"secret-{n}-{secret_suffix}",
             "balance": balance}
        a.update((extra or {}).get(n, {}))
        accounts.append(a)
        write_secret(secrets_dir, a)
    return accounts


def multiplier_rules(leader, followers, k=1):
    """Rules [(id, leader, follower, YAML lines)] copying leader to every follower at multiplier k,
    each with the id FOLLOWER-r."""
    return multiplier_rule_lines([(f"{f}-r", leader, f, k) for f in followers])


def multiplier_rule_lines(rules):
    """[(rule_id, leader, follower, k)] as daemon_config's rules (multiplier sizing)."""
    return [(rid, lead, fol, ["sizing: multiplier", f"multiplier: {k}"]) for rid, lead, fol, k in rules]


def daemon_config(port, database, redis, sim, accounts, rules, daemon_extra="", account_extra=""):
    """copytraderd's configuration against the simulator sim: HTTP on 127.0.0.1:port; accounts
    are names (binance-usdm) or (name, exchange) pairs with exchange "binance-usdm" or
    "bybit-linear" (Bybit's ws_url is <sim ws>/v5/private), secret files secrets/NAME.yaml;
    rules [(id, leader, follower, [YAML lines of the rule])] (None: no copy_rules section, the
    rules are in trader files). daemon_extra: more lines of the
    daemon section, account_extra: more lines of every account (4-space indent)."""
    accounts = [(a, "binance-usdm") if isinstance(a, str) else a for a in accounts]
    acct_yaml = "".join(
        f"  - name: {n}\n    exchange: {ex}\n    rest_url: {sim.rest_url}\n"
        f"    ws_url: {sim.ws_url + ('/v5/private' if ex == 'bybit-linear' else '')}\n"
        f"    secret_file: secrets/{n}.yaml\n{account_extra}" for n, ex in accounts)
    return (f"daemon:\n  http_listen: 127.0.0.1:{port}\n  database: \"{database}\"\n  redis: {redis}\n"
            f"{daemon_extra}accounts:\n{acct_yaml}" + ("" if rules is None else copy_rules_yaml(rules)))


def copy_rules_yaml(rules):
    """The copy_rules section of rules [(id, leader, follower, [YAML lines of the rule])], as the main
    file or a trader file (traders.d/NAME.yaml) holds it."""
    return "copy_rules:\n" + "".join(f"  - id: {rid}\n    leader: {lead}\n    follower: {fol}\n"
                                     + "".join(f"    {x}\n" for x in lines) for rid, lead, fol, lines in rules)


def fetch_metrics(base, timeout=10):
    """The daemon's /metrics (base: http://host:port), parsed."""
    st, text = http("GET", base + "/metrics", timeout=timeout)
    if st != 200:
        raise TestFailure(f"/metrics -> {st}")
    return parse_metrics(text)


def wait_http_ok(what, base, path="/health/ready", timeout=20.0, interval=0.02, http_timeout=10):
    """Waits until GET base+path answers 200 (the daemon live or ready)."""
    wait_for(what, lambda: http("GET", base + path, timeout=http_timeout)[0] == 200, timeout=timeout,
             interval=interval)


def journal_settled(conninfo):
    """Every journaled intent has a final state (sent, acked and partial fills count as answered)."""
    return psql(conninfo, "select count(*) from follower_orders "
                          "where status in ('intent','sent','unknown')") == [["0"]]


def open_orders(conninfo):
    """How many journaled follower orders have no final state yet."""
    return int(psql(conninfo, f"select count(*) from follower_orders where status in {OPEN_STATUSES}")[0][0])


def cleanup(*steps):
    """Runs every step whatever the one before did (a stray simulator or server must not outlive
    the test), printing a failing step's error instead of raising it over the test's own."""
    for step in steps:
        try:
            step()
        except Exception as e:  # noqa: BLE001 (keep the first failure, not this one)
            print(f"--- cleanup: {e}", file=sys.stderr)


def scenarios_main(test, make):
    """The main() of a file of scenarios: options --build-dir, --source-dir and --only (run the
    scenarios whose names contain it); make(build_dir) gives [(name, fn)] for run_scenarios."""
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--only", help="run only the scenarios whose names contain this")
    args = ap.parse_args()
    return run_scenarios(test, make(args.build_dir), args.only)


def run_scenarios(test, scenarios, only=None):
    """Runs [(name, fn)] (those whose names contain `only`, if given), each fn returning a summary;
    prints ok / FAIL per scenario and returns the exit code of `test`."""
    failures = []
    for name, fn in scenarios:
        if only and only not in name:
            continue
        t0 = time.monotonic()
        try:
            print(f"ok {name}: {fn()} ({time.monotonic() - t0:.1f} s)", flush=True)
        except TestFailure as e:
            print(f"FAIL {name} ({time.monotonic() - t0:.1f} s): {e}", file=sys.stderr, flush=True)
            failures.append(name)
    if failures:
        print(f"FAIL {test}: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


# ---- exchange-layer scenarios (test_cross_exchange.py, test_stream_faults.py, test_rest_faults.py) ----

BTC_SYMBOL = {"symbol": "BTCUSDT", "price": "50000", "step_size": "0.001", "min_qty": "0.001",
              "max_qty": "1000", "market_step_size": "0.001", "market_min_qty": "0.001",
              "market_max_qty": "120", "tick_size": "0.10", "min_price": "0.10", "max_price": "1000000",
              "min_notional": "5"}


def multiplier_copies(fills, k, step="0.001"):
    """What a multiplier-k rule sends for the leader fills [(symbol, side, qty)] in order, when
    every quantity is an exact multiple (no rounding, no carry, no flips): opens of qty x k,
    closes of the follower's position x closed / leader position before (all of it on a full
    close), reduce-only. Returns [(symbol, side, Decimal qty, reduce_only)]."""
    from decimal import Decimal, ROUND_DOWN
    k, step = Decimal(str(k)), Decimal(step)
    lead, fol, out = {}, {}, []
    for sym, side, qty in fills:
        q = Decimal(qty)
        sgn = 1 if side == "BUY" else -1
        before = lead.get(sym, Decimal(0))
        if before == 0 or (before > 0) == (sgn > 0):
            n = (q * k / step).to_integral_value(rounding=ROUND_DOWN) * step
            out.append((sym, side, n, False))
            fol[sym] = fol.get(sym, Decimal(0)) + sgn * n
        else:
            if q > abs(before):
                raise ValueError("multiplier_copies does not model flips")
            fp = abs(fol.get(sym, Decimal(0)))
            n = fp if q == abs(before) else \
                (fp * q / abs(before) / step).to_integral_value(rounding=ROUND_DOWN) * step
            out.append((sym, side, n, True))
            fol[sym] = fol.get(sym, Decimal(0)) + sgn * n
        lead[sym] = before + sgn * q
    return out


# ---- the fault suite's end check (tests/fault/README.md): no follower order lost, none duplicated ----

def rule_copies(rules, fills, want=None):
    """{rule_id: [(symbol, side, Decimal qty, reduce_only)]}: the orders every rule
    [(rule_id, leader, follower, k)] calls for, given the leaders' fills {leader: [(symbol, side,
    qty)] in the order made}: multiplier_copies(fills, k), unless want {rule_id: [...]} says."""
    out = dict(want or {})
    for rid, lead, _, k in rules:
        if rid not in out:
            out[rid] = multiplier_copies(fills.get(lead, []), k)
    return out


def _net(rows):
    """{symbol: signed Decimal} of [(symbol, side, qty, ...)]."""
    from decimal import Decimal
    out = {}
    for r in rows:
        out[r[0]] = out.get(r[0], Decimal(0)) + (Decimal(r[2]) if r[1] == "BUY" else -Decimal(r[2]))
    return {s: q for s, q in out.items() if q != 0}


def _sim_net(sim, account):
    from decimal import Decimal
    out = {}
    for p in sim.positions(account):
        out[p["symbol"]] = out.get(p["symbol"], Decimal(0)) + Decimal(p["positionAmt"])
    return {s: q for s, q in out.items() if q != 0}


def _sim_order_id(oid):
    """The simulator's own order id (as /admin/orders lists it) of an exchange order id: Bybit's are
    UUIDs SYMIDX-0000-4000-8000-ID (exchange/sim/sim_by_fmt.c), Binance's the number itself."""
    m = re.fullmatch(r"[0-9a-f]{8}-0000-4000-8000-(\d{12})", oid)
    return str(int(m.group(1))) if m else oid


def _multiset_diff(what, got, want):
    """Problems naming what is missing from / extra in got against want (Counters)."""
    missing, extra = want - got, got - want
    out = []
    if missing:
        out.append(f"{what}: missing {sorted(missing.elements(), key=str)[:8]}"
                   f"{' ...' if sum(missing.values()) > 8 else ''} ({sum(missing.values())} in all)")
    if extra:
        out.append(f"{what}: extra {sorted(extra.elements(), key=str)[:8]}"
                   f"{' ...' if sum(extra.values()) > 8 else ''} ({sum(extra.values())} in all)")
    return out


def exactly_once_report(pg, sim, rules, fills, want=None, allow_codes=()):
    """Compares the simulator and the journal with what the copy rules call for; returns
    (problems [str], summary). rules [(rule_id, leader, follower, k)]; fills {leader: [(symbol,
    side, qty)]}: every fill each leader made, in order; want, allow_codes: see check_exactly_once.
    summary: {"fills", "orders", "delays": [(leader trade time ms, copy delay ms)],
    "lead_times": {leader order id: time ms}}."""
    from collections import Counter
    from decimal import Decimal
    want = rule_copies(rules, fills, want)
    probs, lead_times = [], {}
    # 1. The leaders: every fill made is journaled once, and nothing else is.
    for lead in sorted({r[1] for r in rules}):
        made = fills.get(lead, [])
        at_sim = sim.orders(lead)
        orders = {str(o["orderId"]): o for o in at_sim if o["status"] == "FILLED"}
        if len(orders) != len(at_sim):
            probs.append(f"leader {lead}: orders not FILLED at the simulator: "
                         f"{[o for o in at_sim if o['status'] != 'FILLED'][:3]}")
        lead_times.update({oid: o["time"] for oid, o in orders.items()})
        rows = psql(pg, "select symbol, trade_id::text, order_id::text, side, qty::text from leader_fills "
                        f"where account = '{lead}'")
        dup = [k for k, n in Counter((r[0], r[1]) for r in rows).items() if n > 1]
        if dup:
            probs.append(f"leader {lead}: trade ids journaled twice: {dup[:5]}")
        if len(rows) != len(made):
            probs.append(f"leader {lead}: leader_fills holds {len(rows)} rows, the leader made {len(made)} fills")
        probs += _multiset_diff(f"leader {lead}: leader_fills (symbol, side, qty)",
                                Counter((r[0], r[3], Decimal(r[4])) for r in rows),
                                Counter((s, side, Decimal(q)) for s, side, q in made))
        per_order = {}
        for r in rows:
            per_order[_sim_order_id(r[2])] = per_order.get(_sim_order_id(r[2]), Decimal(0)) + Decimal(r[4])
        bad = [(oid, str(q), orders[oid]["executedQty"] if oid in orders else "no such order")
               for oid, q in per_order.items() if oid not in orders or Decimal(orders[oid]["executedQty"]) != q]
        if bad:
            probs.append(f"leader {lead}: journaled fills per order differ from the simulator's orders "
                         f"(order id, journaled, simulator): {bad[:5]}")
        unseen = sorted(set(orders) - set(per_order))
        if unseen:
            probs.append(f"leader {lead}: orders at the simulator with no journaled fill: {unseen[:8]}")
        if _sim_net(sim, lead) != _net(made):
            probs.append(f"leader {lead}: position at the simulator {_sim_net(sim, lead)}, "
                         f"the fills made add up to {_net(made)} (the test's own bookkeeping is off)")
    # 2. The journal: one row per (leader fill, rule), each 'filled' in full.
    rows = psql(pg, "select o.rule_id, o.follower, o.client_order_id, o.status, o.symbol, o.side, o.qty::text, "
                    "o.reduce_only::text, coalesce(o.executed_qty::text, ''), coalesce(o.error_code::text, ''), "
                    "coalesce(o.error_msg, '') || coalesce(o.skip_reason, ''), o.leader_fill_id::text, "
                    "l.order_id::text from follower_orders o join leader_fills l on l.id = o.leader_fill_id")
    rids = {r[0] for r in rules}
    stray = [r for r in rows if r[0] not in rids]
    if stray:
        probs.append(f"journal rows of rules not checked here: {stray[:3]}")
    dup = [k for k, n in Counter(r[2] for r in rows).items() if n > 1]
    if dup:
        probs.append(f"journal: client ids on more than one row: {dup[:5]}")
    for rid, lead, fol, _ in rules:
        rr = [r for r in rows if r[0] == rid]
        twice = [k for k, n in Counter(r[11] for r in rr).items() if n > 1]
        if twice:
            probs.append(f"rule {rid}: leader fills with more than one journal row: {twice[:5]}")
        if len(rr) != len(want[rid]):
            probs.append(f"rule {rid}: {len(rr)} journal rows, the rule calls for {len(want[rid])} orders")
        probs += _multiset_diff(f"rule {rid}: journaled orders (symbol, side, qty, reduce_only)",
                                Counter((r[4], r[5], Decimal(r[6]), r[7] == "true") for r in rr),
                                Counter(want[rid]))
        bad = [r[2:11] for r in rr if r[3] != "filled" or Decimal(r[8] or "0") != Decimal(r[6])
               or (r[9] and r[9] not in allow_codes)]
        if bad:
            probs.append(f"rule {rid}: {len(bad)} journal rows not 'filled' in full without an error "
                         f"(client id, status, symbol, side, qty, reduce_only, executed, code, msg): {bad[:4]}")
    # 3. The simulator: every journaled order there exactly once, FILLED as journaled, nothing else.
    delays, n_orders = [], 0
    for fol in sorted({r[2] for r in rules}):
        got = sim.orders(fol)
        n_orders += len(got)
        dup = [k for k, n in Counter(o["clientOrderId"] for o in got).items() if n > 1]
        if dup:
            seen = {k: [(o["time"], o["status"], o["origQty"], o.get("errorCode")) for o in got
                        if o["clientOrderId"] == k] for k in dup[:5]}
            probs.append(f"follower {fol}: client ids at the simulator more than once (time ms, status, qty, "
                         f"error): {seen}")
        jby = {r[2]: r for r in rows if r[1] == fol}
        unknown = [o["clientOrderId"] for o in got if o["clientOrderId"] not in jby]
        if unknown:
            probs.append(f"follower {fol}: orders at the simulator that the journal does not hold: {unknown[:5]}")
        lost = sorted(set(jby) - {o["clientOrderId"] for o in got})
        if lost:
            probs.append(f"follower {fol}: journaled orders that never reached the simulator: "
                         f"{[jby[c][2:8] for c in lost[:5]]} ({len(lost)} in all)")
        bad = []
        for o in got:
            j = jby.get(o["clientOrderId"])
            if j is None:
                continue
            if (o["status"] != "FILLED" or o.get("errorCode") or o["side"].upper() != j[5] or o["symbol"] != j[4]
                    or Decimal(o["origQty"]) != Decimal(j[6]) or Decimal(o["executedQty"]) != Decimal(o["origQty"])
                    or bool(o["reduceOnly"]) != (j[7] == "true")):
                bad.append((o["clientOrderId"], o["status"], o["side"], o["origQty"], o["executedQty"],
                            o["reduceOnly"], o.get("errorCode"), "journal:", j[3:8]))
            lt = lead_times.get(_sim_order_id(j[12]))
            if lt is not None:
                delays.append((lt, o["time"] - lt))
        if bad:
            probs.append(f"follower {fol}: orders at the simulator differ from the journal: {bad[:4]}")
        want_pos = _net([w for rid, _, f, _ in rules if f == fol for w in want[rid]])
        if _sim_net(sim, fol) != want_pos:
            probs.append(f"follower {fol}: position at the simulator {_sim_net(sim, fol)}, the rules call for "
                         f"{want_pos}")
    return probs, {"fills": sum(len(fills.get(lead, [])) for lead in {r[1] for r in rules}),
                   "orders": n_orders, "delays": delays, "lead_times": lead_times}


def check_exactly_once(pg, sim, rules, fills, want=None, allow_codes=(), timeout=30, what=""):
    """THE end check of every fault scenario: waits (up to timeout s) until the journal has every
    leader fill, no follower order without a final state and each follower as many orders at the
    simulator as its rules call for, then checks that
      - every leader fill made (fills {leader: [(symbol, side, qty)]}, in order) is in
        leader_fills exactly once (trade ids distinct), and they add up to the leader's orders and
        position at the simulator;
      - for every rule [(rule_id, leader, follower, k)] the journal holds exactly the orders the
        rule calls for (multiplier_copies of the leader's fills at k, or want[rule_id]), one row
        per (leader fill, rule), every one 'filled' with its quantity executed and no error code
        (but those in allow_codes: an earlier unknown answer's code stays on a row settled by a
        query);
      - at the simulator every journaled client id exists exactly once, FILLED with the journal's
        symbol, side, quantity and reduce-only flag, and no other order exists; each follower's
        position is what its rules' orders add up to.
    Raises TestFailure listing every difference; returns exactly_once_report's summary."""
    want = rule_copies(rules, fills, want)
    need = {}
    for rid, _, fol, _ in rules:
        need[fol] = need.get(fol, 0) + len(want[rid])
    n_fills = sum(len(fills.get(lead, [])) for lead in {r[1] for r in rules})

    def settled():
        return (int(psql(pg, "select count(*) from leader_fills")[0][0]) >= n_fills and open_orders(pg) == 0
                and all(len(sim.orders(f)) >= n for f, n in need.items()))
    late = None
    try:
        wait_for(f"{what or 'the end check'}: every copy at the simulator and the journal settled", settled,
                 timeout=timeout, interval=0.1)
    except TestFailure as e:
        late = e
    probs, summary = exactly_once_report(pg, sim, rules, fills, want, allow_codes)
    if probs:
        raise TestFailure(f"{what or 'end check'}: NOT exactly once ({n_fills} leader fills, "
                          f"{sum(need.values())} orders called for):\n  " + "\n  ".join(probs)
                          + (f"\n  (and {late})" if late else ""))
    if late:
        raise late
    return summary


class CopyScenario:
    """One simulator, one fresh database and one copytraderd: accounts [(name, exchange)] with
    exchange "binance-usdm" or "bybit-linear" (Bybit's ws_url is <sim ws>/v5/private), rules
    [(rule_id, leader, follower, multiplier)]. daemon_yaml: extra lines of the daemon section;
    account_yaml: extra lines of every account (4-space indent); the daemon logs at info, or at
    $CT_TEST_LOG_LEVEL (debug: to see a failing scenario's every order). traders {FILE: rules}: the rules in
    trader files traders.d/FILE instead of the main file (rules lists them all, for the checks).
    pg: the journal's conninfo (e.g. a PrivatePostgres's, for a test that stops it) instead of a
    fresh database on with-services' server.
    Use as a context manager: on an error the daemon's and the simulator's log tails are printed;
    on success the daemon must exit cleanly."""

    def __init__(self, build_dir, name, accounts, rules, symbols=None, daemon_yaml="", account_yaml="",
                 traders=None, pg=None):
        self.name, self.build_dir = name, build_dir
        self.pg = pg or fresh_database(require_env("CT_TEST_PG"), name)
        redis, tmp = require_env("CT_TEST_REDIS"), require_env("CT_TEST_TMP")
        self.work = os.path.join(tmp, name)
        secrets = os.path.join(self.work, "secrets")
        os.makedirs(secrets, exist_ok=True)
        self.exchange = dict(accounts)
        self.rules = list(rules)
        sim_accts = make_accounts(secrets, [n for n, _ in accounts], f"{name}-0123456789", f"{name}-9876543210")
        self.sim = Sim(build_dir, self.work, sim_accts, symbols or [BTC_SYMBOL])
        self.daemon = None
        try:
            port = free_port()
            self.base = f"http://127.0.0.1:{port}"
            self.config = daemon_config(port, self.pg, redis, self.sim, accounts,
                                        None if traders else multiplier_rule_lines(rules),
                                        daemon_extra=f"  log_level: {os.environ.get('CT_TEST_LOG_LEVEL', 'info')}\n"
                                        + daemon_yaml, account_extra=account_yaml)
            for fname, frules in (traders or {}).items():
                self.write_trader_file(fname, copy_rules_yaml(multiplier_rule_lines(frules)))
            self.daemon = Daemon(build_dir, self.work, self.config)
        except BaseException:
            self.sim.stop()
            raise

    def __enter__(self):
        return self

    def write_trader_file(self, fname, text):
        """Writes traders.d/FNAME beside the main file (the daemon reads it at start and on SIGHUP)."""
        os.makedirs(os.path.join(self.work, "traders.d"), exist_ok=True)
        with open(os.path.join(self.work, "traders.d", fname), "w") as f:
            f.write(text)

    def restart(self, name="copytraderd-2"):
        """A new daemon process on the same configuration (the last one must have exited)."""
        if self.daemon and self.daemon.p.alive():
            raise TestFailure(f"{self.name}: restart while {self.daemon.p.name} still runs")
        self.daemon = Daemon(self.build_dir, self.work, self.config, name=name)
        return self.daemon

    def __exit__(self, et, ev, tb):
        try:
            if et is not None:
                if self.daemon:
                    print(f"--- {self.name}: daemon log tail:\n" + self.daemon.p.tail(80), file=sys.stderr)
                print(f"--- {self.name}: exsim log tail:\n" + self.sim.p.tail(20), file=sys.stderr)
                try:
                    rows = psql(self.pg, "select follower, client_order_id, side, qty, reduce_only, status, "
                                         "skip_reason, executed_qty, error_code, error_msg from follower_orders "
                                         "order by id")
                    print(f"--- {self.name}: follower_orders:\n" + "\n".join(" | ".join(r) for r in rows),
                          file=sys.stderr)
                except TestFailure as e:
                    print(f"--- {self.name}: follower_orders unreadable: {e}", file=sys.stderr)
                if self.daemon and self.daemon.p.alive():
                    self.daemon.p.stop(timeout=5)
            elif self.daemon:
                stop_clean(self.daemon)
        finally:
            self.sim.stop()
        return False

    def metrics(self):
        return fetch_metrics(self.base)

    def metric(self, name, **labels):
        return metric(self.metrics(), name, **labels)

    def wait_ready(self, timeout=30):
        wait_http_ok(f"{self.name}: daemon /health/ready", self.base, timeout=timeout, interval=0.05)

    def log(self):
        with open(self.daemon.p.log_path) as f:
            return f.read()

    def settled(self):
        """Every journaled intent has a final state."""
        return journal_settled(self.pg)

    def trade(self, account, side, qty, symbol="BTCUSDT", fills=None):
        """A leader MARKET order through the admin API (fills: its executions); returns the fills
        it made as [(symbol, side, qty)]."""
        kw = {"fills": fills} if fills else {}
        o = self.sim.leader_order(account, symbol, side, qty, **kw)
        if o.get("status") != "FILLED":
            raise TestFailure(f"{self.name}: leader order not filled: {o}")
        return [(symbol, side, q) for q in (fills or [qty])]

    def wait_orders(self, follower, n, timeout=20):
        wait_for(f"{self.name}: {n} orders of {follower} at the simulator",
                 lambda: len(self.sim.orders(follower)) >= n, timeout=timeout, interval=0.05)

    def wait_decided(self, follower, n, timeout=20):
        """The journal holds at least n decisions (sent or skipped) for follower, all final."""
        wait_for(f"{self.name}: {n} final journal rows for {follower}", lambda: self.settled() and int(psql(
            self.pg, f"select count(*) from follower_orders where follower = '{follower}'")[0][0]) >= n,
            timeout=timeout, interval=0.05)

    def check_copies(self, leader, follower, want, leader_fills, ordered=True, allow_codes=()):
        """The copies of one rule are exactly `want` [(symbol, side, Decimal qty, reduce_only)]:
        at the simulator every client id once, every order FILLED, no others; in the journal one
        row per (leader fill, rule), the same client ids, every one 'filled' with its quantity
        executed, no error code (but those in allow_codes: the code of an earlier unknown answer
        stays on a row settled by a query); `leader_fills` distinct leader fills journaled once each."""
        from decimal import Decimal
        got = self.sim.orders(follower)
        ids = [o["clientOrderId"] for o in got]
        if len(set(ids)) != len(ids):
            raise TestFailure(f"{self.name}: {follower}: a client id reached the simulator twice: {sorted(ids)}")
        got_t = [(o["symbol"], o["side"].upper(), Decimal(o["origQty"]), bool(o["reduceOnly"])) for o in got]
        if (got_t if ordered else sorted(got_t)) != (list(want) if ordered else sorted(want)):
            raise TestFailure(f"{self.name}: {follower}: orders at the simulator differ\n got:  {got_t}\n want: {want}")
        bad = [o for o in got if o["status"] != "FILLED" or o.get("errorCode")]
        if bad:
            raise TestFailure(f"{self.name}: {follower}: orders not filled: {bad}")
        rows = psql(self.pg, "select client_order_id, status, qty::text, coalesce(executed_qty::text,''), "
                             "coalesce(error_code::text,''), coalesce(error_msg,''), coalesce(skip_reason,'') "
                             f"from follower_orders where follower = '{follower}' order by id")
        jids = [r[0] for r in rows]
        if len(set(jids)) != len(jids):
            raise TestFailure(f"{self.name}: {follower}: duplicate journal rows: {rows}")
        if set(jids) != set(ids) or len(rows) != len(want):
            raise TestFailure(f"{self.name}: {follower}: journal client ids {sorted(jids)} != simulator's {sorted(ids)}"
                              f" (want {len(want)} orders); rows: {rows}")
        for r in rows:
            if r[1] != "filled" or Decimal(r[3] or "0") != Decimal(r[2]) or (r[4] and r[4] not in allow_codes):
                raise TestFailure(f"{self.name}: {follower}: journal row not filled in full: {r}")
        lf = psql(self.pg, f"select count(*), count(distinct trade_id) from leader_fills where account = '{leader}'")
        if lf != [[str(leader_fills), str(leader_fills)]]:
            raise TestFailure(f"{self.name}: leader_fills of {leader}: {lf}, want {leader_fills} distinct")

    def check_exactly_once(self, fills, want=None, allow_codes=(), timeout=30, what=""):
        """check_exactly_once over every rule of the scenario; fills: {leader: [(symbol, side, qty)]},
        or a list when the rules have one leader."""
        if not isinstance(fills, dict):
            leaders = {r[1] for r in self.rules}
            if len(leaders) != 1:
                raise TestFailure(f"{self.name}: fills of which leader? ({sorted(leaders)})")
            fills = {leaders.pop(): list(fills)}
        return check_exactly_once(self.pg, self.sim, self.rules, fills, want, allow_codes, timeout,
                                  what=f"{self.name}: {what}" if what else self.name)

    def check_positions(self, leader, follower, k, symbol="BTCUSDT"):
        """The follower holds exactly k x the leader's position."""
        from decimal import Decimal

        def pos(a):
            return sum((Decimal(p["positionAmt"]) for p in self.sim.positions(a) if p["symbol"] == symbol),
                       Decimal(0))
        lp, fp = pos(leader), pos(follower)
        if fp != lp * Decimal(str(k)):
            raise TestFailure(f"{self.name}: {follower} holds {fp} {symbol}, leader {lp} x {k}")


# ---- private servers for the outage tests (test_pg_outage.py, test_redis_outage.py) ----
# A test that stops or kills its database or cache must not do it to the shared servers of
# with-services (other tests run against them at the same time): these start throwaway ones of
# the test's own, the way with-services does, on unix sockets in a directory under CT_TEST_TMP.

class PrivatePostgres:
    """A throwaway PostgreSQL cluster with a database "copytrader" (user copytrader, trust auth),
    listening only on a unix socket in its own directory. As root the server runs as the
    "postgres" user (PostgreSQL refuses root), exactly like with-services. stop() / start() take
    it down and bring it back on the same socket; close() stops it for good and removes it."""

    def __init__(self, parent, name="pg"):
        import glob
        import tempfile

        def ver(p):
            return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", p)]
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=ver)
        if not bins or not os.access(os.path.join(bins[-1], "initdb"), os.X_OK):
            raise TestFailure("PostgreSQL server not installed (apt-get install postgresql)")
        self.bin = bins[-1]
        self.dir = tempfile.mkdtemp(prefix=f"{name}.", dir=parent)
        os.chmod(self.dir, 0o755)  # the postgres user must reach its data and socket directories
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        self.log_path = os.path.join(self.dir, "server.log")
        self.port = 20000 + (os.getpid() * 7 + int(time.time() * 1000)) % 20000
        self.as_pg = []
        os.makedirs(self.sock)
        if os.getuid() == 0:
            if subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
                subprocess.run(["useradd", "--system", "--home-dir", "/var/lib/postgresql", "postgres"],
                               check=True)
            os.chown(self.dir, *self._pg_ids())
            os.chown(self.sock, *self._pg_ids())
            self.as_pg = ["runuser", "-u", "postgres", "--"]
        self.conninfo = f"host={self.sock} port={self.port} dbname=copytrader user=copytrader"
        self.running = False
        self._run([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "copytrader", "--auth=trust",
                   "-E", "UTF8", "--no-sync"], "initdb")
        self.start()
        r = subprocess.run([os.path.join(self.bin, "createdb"), "-h", self.sock, "-p", str(self.port),
                            "-U", "copytrader", "copytrader"], capture_output=True, text=True)
        if r.returncode != 0:
            self.close()
            raise TestFailure(f"createdb failed: {r.stderr.strip()}")

    @staticmethod
    def _pg_ids():
        import pwd
        pw = pwd.getpwnam("postgres")
        return pw.pw_uid, pw.pw_gid

    def _run(self, argv, what):
        r = subprocess.run(self.as_pg + argv, capture_output=True, text=True)
        if r.returncode != 0:
            try:
                with open(self.log_path) as f:
                    log = f.read()[-3000:]
            except OSError:
                log = ""
            raise TestFailure(f"private PostgreSQL: {what} failed ({r.returncode}): {r.stdout.strip()} "
                              f"{r.stderr.strip()}\nserver log:\n{log}")

    def start(self):
        """pg_ctl start -w: returns once the server takes connections."""
        self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-l", self.log_path, "-w", "-t", "60",
                   "start", "-o", f"-c listen_addresses='' -c unix_socket_directories='{self.sock}' "
                   f"-p {self.port} -c fsync=on -c max_connections=50"], "start")
        self.running = True

    def stop(self, mode="fast"):
        """pg_ctl stop -m mode -w: returns once the server is down (fast: sessions are cut)."""
        self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"],
                  "stop")
        self.running = False

    def close(self):
        if self.running:
            subprocess.run(self.as_pg + [os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "immediate",
                                         "-w", "stop"], capture_output=True)
            self.running = False
        if os.environ.get("CT_KEEP_TMP", "0") != "1":
            import shutil
            shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """A throwaway redis-server on a unix socket in its own directory, nothing saved to disk.
    kill() SIGKILLs it (the socket file stays behind, as after a crash); start() brings a fresh,
    empty one up on the same socket. Redis URL for the daemon: self.address."""

    def __init__(self, parent, name="redis"):
        import tempfile
        self.dir = tempfile.mkdtemp(prefix=f"{name}.", dir=parent)
        self.sock = os.path.join(self.dir, "redis.sock")
        self.address = f"unix:{self.sock}"
        self.proc = None
        self.starts = 0
        self.start()

    def cli(self, *args):
        """redis-cli -s SOCK args...; returns stdout stripped (raises on a failed command)."""
        r = subprocess.run(["redis-cli", "-s", self.sock, *args], capture_output=True, text=True, timeout=10)
        if r.returncode != 0 or r.stdout.startswith("ERR") or r.stdout.startswith("Could not connect"):
            raise TestFailure(f"redis-cli {' '.join(args)}: {r.returncode} {r.stdout.strip()} {r.stderr.strip()}")
        return r.stdout.strip()

    def start(self):
        self.starts += 1
        log = os.path.join(self.dir, f"redis-{self.starts}.log")
        self.proc = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", self.sock,
                                      "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                                      "--dir", self.dir, "--logfile", log],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                with open(log) as f:
                    raise TestFailure(f"redis-server exited {self.proc.returncode}: {f.read()[-2000:]}")
            r = subprocess.run(["redis-cli", "-s", self.sock, "PING"], capture_output=True, text=True)
            return r.returncode == 0 and r.stdout.strip() == "PONG"
        wait_for("private redis-server answers PING", up, timeout=10, interval=0.02)

    def kill(self):
        """SIGKILL, as a crash: no shutdown, the socket file is left behind."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if os.environ.get("CT_KEEP_TMP", "0") != "1":
            import shutil
            shutil.rmtree(self.dir, ignore_errors=True)
