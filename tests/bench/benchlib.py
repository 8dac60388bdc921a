"""Pieces shared by the benchmarks in tests/bench (run under tests/integration/with-services):
the simulator started for a benchmark (many accounts, rate limits off, bounded event log), a
keep-alive admin connection, polling with a deadline, a process's memory and CPU from /proc, a
stand-in for systemd's notify socket that timestamps every message, and the results file.

Times are time.monotonic(), i.e. CLOCK_MONOTONIC: the same clock as the daemon's log stamps."""

import datetime
import http.client
import json
import os
import re
import socket
import sys
import threading
import time

import harness
from harness import TestFailure

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class Keep:
    """A keep-alive HTTP/1.1 connection (reopened if the server closed it); JSON in and out."""

    def __init__(self, hostport, timeout=30):
        self.host, self.port = hostport.split(":")
        self.timeout = timeout
        self.c = None

    def call(self, method, path, body=None):
        for attempt in (0, 1):
            try:
                if self.c is None:
                    self.c = http.client.HTTPConnection(self.host, int(self.port), timeout=self.timeout)
                data = None if body is None else json.dumps(body)
                self.c.request(method, path, body=data,
                               headers={"Content-Type": "application/json"} if data else {})
                r = self.c.getresponse()
                text = r.read().decode()
                return r.status, text
            except (http.client.HTTPException, ConnectionError):
                self.c.close()
                self.c = None
                if attempt:
                    raise


def start_sim(build, work, accounts, symbols=None, event_log_limit=200, rate_limits=False, timeout=120):
    """copytrader-exsim with `accounts` (harness.make_accounts) and `symbols` (default BTCUSDT),
    rate limits off unless asked, `event_log_limit` events kept per account, logging warnings
    only. Returns an object with p (harness.Process), rest, admin (host:port), rest_url, ws_url
    and start_s (exec to its READY line)."""
    cfg = {"port": 0, "admin_port": 0, "event_log_limit": event_log_limit,
           "rate_limits": {"enabled": bool(rate_limits)}, "accounts": accounts,
           "symbols": symbols or [dict(harness.BTC_SYMBOL)]}
    path = os.path.join(work, "exsim.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    exe = os.path.join(build, "exchange", "sim", "copytrader-exsim")
    t0 = time.monotonic()
    p = harness.Process("exsim", [exe, "--config", path, "--log-level", "warn"], os.path.join(work, "exsim.log"))
    m = re.match(r"READY rest=([\d.]+:\d+) admin=([\d.]+:\d+)", p.read_line("READY", timeout=timeout))
    if not m:
        raise TestFailure("exsim: bad READY line")
    sim = type("SimInfo", (), {})()
    sim.p, sim.rest, sim.admin = p, m.group(1), m.group(2)
    sim.rest_url, sim.ws_url = f"http://{sim.rest}", f"ws://{sim.rest}"
    sim.start_s = time.monotonic() - t0
    return sim


def poll(what, fn, timeout, first_wait=0.0, interval=0.01):
    """fn() until truthy: first after first_wait s, then every interval s; fails after timeout."""
    t0 = time.monotonic()
    if first_wait > 0:
        time.sleep(first_wait)
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() - t0 > timeout:
            raise TestFailure(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def proc_sample(pid):
    """{"rss", "hwm", "vm_size" (bytes), "cpu_user_s", "cpu_sys_s", "threads", "t"} of a live
    process from /proc/PID/status and /proc/PID/stat; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    t = time.monotonic()
    kb = {k: int(v) * 1024 for k, v in re.findall(r"^(VmRSS|VmHWM|VmSize):\s+(\d+) kB", status, re.M)}
    # Fields after the command (which may hold spaces): state is field 3, utime 14, stime 15.
    rest = stat[stat.rindex(")") + 2:].split()
    return {"t": t, "rss": kb.get("VmRSS", 0), "hwm": kb.get("VmHWM", 0), "vm_size": kb.get("VmSize", 0),
            "cpu_user_s": int(rest[11]) / CLK_TCK, "cpu_sys_s": int(rest[12]) / CLK_TCK,
            "threads": int(rest[17])}


class Sampler(threading.Thread):
    """Samples a process (proc_sample) every interval s until stop(); keeps the largest RSS seen
    and the last sample. VmHWM is the kernel's own peak, sampling only adds the curve."""

    def __init__(self, pid, interval=0.05):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples = []
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            s = proc_sample(self.pid)
            if s is None:
                return
            self.samples.append(s)
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join(5)

    def peak_rss(self):
        return max((s["rss"] for s in self.samples), default=0)


class NotifySocket(threading.Thread):
    """A datagram socket at `path` standing in for systemd's NOTIFY_SOCKET. A thread receives
    every message as it arrives and records (monotonic time, "KEY=value"); on_message(t, line)
    runs in that thread right away (e.g. to read /proc at the moment READY=1 arrives)."""

    def __init__(self, path, on_message=None):
        super().__init__(daemon=True)
        self.path = path
        self.on_message = on_message
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(path)
        self.s.settimeout(0.2)
        self.msgs = []
        self._halt = threading.Event()
        self._cv = threading.Condition()
        self.start()

    def run(self):
        while not self._halt.is_set():
            try:
                data = self.s.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            t = time.monotonic()
            for line in data.decode(errors="replace").split("\n"):
                if not line:
                    continue
                if self.on_message:
                    self.on_message(t, line)
                with self._cv:
                    self.msgs.append((t, line))
                    self._cv.notify_all()

    def first(self, line):
        """Time of the first message equal to line, or None."""
        with self._cv:
            return next((t for t, m in self.msgs if m == line), None)

    def wait(self, line, timeout, proc=None):
        """Time the message `line` arrived; fails after timeout s or if proc (Popen) exits first."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                t = next((t for t, m in self.msgs if m == line), None)
                if t is not None:
                    return t
                if proc is not None and proc.poll() is not None:
                    raise TestFailure(f"the process exited ({proc.returncode}) before {line}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TestFailure(f"timed out after {timeout}s waiting for {line}")
                self._cv.wait(min(left, 0.5))

    def close(self):
        self._halt.set()
        self.join(2)
        self.s.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def host_info():
    return {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg(), "uname": " ".join(os.uname())}


def stamp():
    return datetime.datetime.now().strftime("%Y%m%dT%H%M%S")


def write_results(out_dir, name, obj):
    """OUT/<name>.json (indented); returns its path."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name + ".json")
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
    return path


def run_main(main):
    """A benchmark's entry: exit with main()'s status; a TestFailure (work not done right) is
    printed as "bench: FAIL: ..." and exits 1."""
    try:
        sys.exit(main())
    except TestFailure as e:
        print(f"bench: FAIL: {e}", file=sys.stderr)
        sys.exit(1)
