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
