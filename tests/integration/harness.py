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
    return [(f"{f}-r", leader, f, ["sizing: multiplier", f"multiplier: {k}"]) for f in followers]


def daemon_config(port, database, redis, sim, accounts, rules, daemon_extra="", account_extra=""):
    """copytraderd's configuration against the simulator sim: HTTP on 127.0.0.1:port; accounts
    are names (binance-usdm) or (name, exchange) pairs with exchange "binance-usdm" or
    "bybit-linear" (Bybit's ws_url is <sim ws>/v5/private), secret files secrets/NAME.yaml;
    rules [(id, leader, follower, [YAML lines of the rule])]. daemon_extra: more lines of the
    daemon section, account_extra: more lines of every account (4-space indent)."""
    accounts = [(a, "binance-usdm") if isinstance(a, str) else a for a in accounts]
    acct_yaml = "".join(
        f"  - name: {n}\n    exchange: {ex}\n    rest_url: {sim.rest_url}\n"
        f"    ws_url: {sim.ws_url + ('/v5/private' if ex == 'bybit-linear' else '')}\n"
        f"    secret_file: secrets/{n}.yaml\n{account_extra}" for n, ex in accounts)
    rules_yaml = "".join(f"  - id: {rid}\n    leader: {lead}\n    follower: {fol}\n"
                         + "".join(f"    {x}\n" for x in lines) for rid, lead, fol, lines in rules)
    return (f"daemon:\n  http_listen: 127.0.0.1:{port}\n  database: \"{database}\"\n  redis: {redis}\n"
            f"{daemon_extra}accounts:\n{acct_yaml}copy_rules:\n{rules_yaml}")


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


class CopyScenario:
    """One simulator, one fresh database and one copytraderd: accounts [(name, exchange)] with
    exchange "binance-usdm" or "bybit-linear" (Bybit's ws_url is <sim ws>/v5/private), rules
    [(rule_id, leader, follower, multiplier)]. daemon_yaml: extra lines of the daemon section;
    account_yaml: extra lines of every account (4-space indent).
    Use as a context manager: on an error the daemon's and the simulator's log tails are printed;
    on success the daemon must exit cleanly."""

    def __init__(self, build_dir, name, accounts, rules, symbols=None, daemon_yaml="", account_yaml=""):
        self.name = name
        self.pg = fresh_database(require_env("CT_TEST_PG"), name)
        redis, tmp = require_env("CT_TEST_REDIS"), require_env("CT_TEST_TMP")
        self.work = os.path.join(tmp, name)
        secrets = os.path.join(self.work, "secrets")
        os.makedirs(secrets, exist_ok=True)
        self.exchange = dict(accounts)
        sim_accts = make_accounts(secrets, [n for n, _ in accounts], f"{name}-0123456789", f"{name}-9876543210")
        self.sim = Sim(build_dir, self.work, sim_accts, symbols or [BTC_SYMBOL])
        self.daemon = None
        try:
            port = free_port()
            self.base = f"http://127.0.0.1:{port}"
            self.config = daemon_config(port, self.pg, redis, self.sim, accounts,
                                        [(rid, lead, fol, ["sizing: multiplier", f"multiplier: {k}"])
                                         for rid, lead, fol, k in rules],
                                        daemon_extra="  log_level: info\n" + daemon_yaml, account_extra=account_yaml)
            self.daemon = Daemon(build_dir, self.work, self.config)
        except BaseException:
            self.sim.stop()
            raise

    def __enter__(self):
        return self

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
