#!/usr/bin/env python3
"""systemd integration, checked without systemd as PID 1:

1. `cmake --install` into a DESTDIR (prefix /usr) puts the binary, the unit, the sysusers.d and
   tmpfiles.d snippets and the example config where systemd and operators look for them, and the
   unit's ExecStart names the installed binary.
2. `systemd-analyze verify` accepts the unit without a single warning (on a copy whose ExecStart
   points into the DESTDIR, since verify wants the binary to exist), and
   `systemd-analyze security --offline=true` rates its exposure at 2.0 or less.
3. systemd-sysusers and systemd-tmpfiles, run on a scratch root, create the copytrader user and
   /etc/copytrader with the modes and owners the unit relies on.
4. The daemon speaks the notify protocol: run against the simulator and the PostgreSQL/Redis of
   with-services, under a fake NOTIFY_SOCKET with WATCHDOG_USEC/WATCHDOG_PID set as systemd sets
   them and secrets in $CREDENTIALS_DIRECTORY (as LoadCredential= provides them), it sends STATUS=
   while starting, READY=1, STATUS= with the streams up, WATCHDOG=1 again and again, and STOPPING=1
   after SIGTERM; every datagram comes from the main pid (NotifyAccess=main).

A machine without systemd-analyze fails this test (scripts/deps installs the systemd package)."""

import argparse
import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Sim, TestFailure, free_port, fresh_database, require_env, write_secret  # noqa: E402

EXPOSURE_MAX = 2.0
SYMBOLS = [
    {"symbol": "BTCUSDT", "price": "50000", "step_size": "0.001", "min_qty": "0.001", "max_qty": "1000",
     "market_step_size": "0.001", "market_min_qty": "0.001", "market_max_qty": "120", "tick_size": "0.10",
     "min_price": "0.10", "max_price": "1000000", "min_notional": "5"},
]
# Files `cmake --install --prefix /usr` must produce (relative to DESTDIR), and their modes' x bit.
INSTALLED = {
    "usr/bin/copytraderd": True,
    "usr/lib/systemd/system/copytraderd.service": False,
    "usr/lib/sysusers.d/copytrader.conf": False,
    "usr/lib/tmpfiles.d/copytrader.conf": False,
    "usr/share/doc/copytrader/examples/copytrader.example.yaml": False,
}
# Unit settings the daemon's behaviour depends on (the hardening is scored by systemd-analyze).
UNIT_MUST = {
    "Type": "notify",
    "NotifyAccess": "main",
    "WatchdogSec": "10s",
    "Restart": "on-failure",
    "User": "copytrader",
    "ExecStart": "/usr/bin/copytraderd --config /etc/copytrader/copytrader.yaml",
    "ProtectSystem": "strict",
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "UMask": "0077",
}


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, **kw)


def need_tool(name):
    path = shutil.which(name)
    if not path:
        raise TestFailure(f"{name} not found: install the Debian package systemd (scripts/deps does)")
    return path


def unit_settings(path):
    """{key: value} of the unit's assignments (the last one wins, as in systemd)."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", ";", "[")) and "=" in line:
                k, v = line.split("=", 1)
                out[k.strip()] = v.strip()
    return out


def check_install(build_dir, dest):
    r = run(["cmake", "--install", build_dir, "--prefix", "/usr"], env={**os.environ, "DESTDIR": dest})
    if r.returncode != 0:
        raise TestFailure(f"cmake --install failed ({r.returncode}): {r.stderr.strip()}")
    for rel, executable in INSTALLED.items():
        p = os.path.join(dest, rel)
        if not os.path.isfile(p):
            raise TestFailure(f"cmake --install did not install {rel}; got:\n" + "\n".join(
                sorted(os.path.relpath(os.path.join(d, f), dest) for d, _, fs in os.walk(dest) for f in fs)))
        if executable and not os.access(p, os.X_OK):
            raise TestFailure(f"{rel} is not executable")
    unit = os.path.join(dest, "usr/lib/systemd/system/copytraderd.service")
    got = unit_settings(unit)
    for k, v in UNIT_MUST.items():
        if got.get(k) != v:
            raise TestFailure(f"copytraderd.service: {k}={got.get(k)!r}, want {v!r}")
    print(f"ok: cmake --install put {len(INSTALLED)} files in place; unit ExecStart={got['ExecStart']}")
    return unit


def check_analyze(dest, unit, work):
    analyze = need_tool("systemd-analyze")
    # verify checks that ExecStart's binary exists: point it at the DESTDIR's copy.
    copy = os.path.join(work, "copytraderd.service")
    with open(unit) as f:
        text = f.read()
    text, n = re.subn(r"^ExecStart=/usr/bin/", f"ExecStart={dest}/usr/bin/", text, flags=re.M)
    if n != 1:
        raise TestFailure("copytraderd.service: no ExecStart=/usr/bin/ line to redirect")
    with open(copy, "w") as f:
        f.write(text)
    r = run([analyze, "verify", copy])
    # verify exits 0 even on unknown keys or unparsable values: any output is a failure.
    if r.returncode != 0 or r.stdout.strip() or r.stderr.strip():
        raise TestFailure(f"systemd-analyze verify (rc {r.returncode}):\n{r.stdout}{r.stderr}")
    print("ok: systemd-analyze verify: no warnings")

    r = run([analyze, "security", "--offline=true", "--no-pager", unit])
    m = re.search(r"Overall exposure level for copytraderd\.service:\s*([0-9.]+)", r.stdout)
    if r.returncode != 0 or not m:
        raise TestFailure(f"systemd-analyze security --offline=true (rc {r.returncode}) printed no "
                          f"exposure level:\n{r.stdout}{r.stderr}")
    score = float(m.group(1))
    if score > EXPOSURE_MAX:
        worst = "\n".join(line for line in r.stdout.splitlines() if line.startswith("✗"))
        raise TestFailure(f"exposure {score} > {EXPOSURE_MAX}; unmet:\n{worst}")
    print(f"ok: systemd-analyze security exposure {score} (<= {EXPOSURE_MAX})")


def check_sysusers_tmpfiles(dest, work):
    sysusers = need_tool("systemd-sysusers")
    tmpfiles = need_tool("systemd-tmpfiles")
    root = os.path.join(work, "root")
    os.makedirs(os.path.join(root, "etc"))
    r = run([sysusers, f"--root={root}", os.path.join(dest, "usr/lib/sysusers.d/copytrader.conf")])
    if r.returncode != 0:
        raise TestFailure(f"systemd-sysusers failed ({r.returncode}): {r.stderr.strip()}")
    users = {}
    groups = {}
    with open(os.path.join(root, "etc/passwd")) as f:
        for line in f:
            p = line.rstrip("\n").split(":")
            users[p[0]] = p
    with open(os.path.join(root, "etc/group")) as f:
        for line in f:
            p = line.rstrip("\n").split(":")
            groups[p[0]] = int(p[2])
    u = users.get("copytrader")
    if not u or "copytrader" not in groups:
        raise TestFailure(f"systemd-sysusers created no copytrader user/group: {sorted(users)}")
    if not u[6].endswith("nologin"):
        raise TestFailure(f"copytrader user has a login shell: {u[6]}")
    if os.geteuid() != 0:
        # tmpfiles would have to chown; only the syntax can be checked without root.
        r = run([tmpfiles, f"--root={root}", "--dry-run", "--create",
                 os.path.join(dest, "usr/lib/tmpfiles.d/copytrader.conf")])
        if r.returncode != 0:
            raise TestFailure(f"systemd-tmpfiles --dry-run failed ({r.returncode}): {r.stderr.strip()}")
        print("ok: sysusers creates copytrader; tmpfiles snippet parses (not root: not created)")
        return
    r = run([tmpfiles, f"--root={root}", "--create", os.path.join(dest, "usr/lib/tmpfiles.d/copytrader.conf")])
    if r.returncode != 0 or r.stderr.strip():
        raise TestFailure(f"systemd-tmpfiles failed ({r.returncode}): {r.stderr.strip()}")
    want = {"etc/copytrader": (0o750, 0, groups["copytrader"]), "etc/copytrader/secrets": (0o700, 0, 0)}
    for rel, (mode, uid, gid) in want.items():
        st = os.stat(os.path.join(root, rel))
        got = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        if not stat.S_ISDIR(st.st_mode) or got != (mode, uid, gid):
            raise TestFailure(f"/{rel}: mode/uid/gid {oct(got[0])}/{got[1]}/{got[2]}, "
                              f"want {oct(mode)}/{uid}/{gid}")
    print("ok: sysusers creates copytrader (nologin); tmpfiles creates /etc/copytrader 0750 "
          "root:copytrader and /etc/copytrader/secrets 0700 root:root")


class NotifySocket:
    """A datagram socket standing in for systemd's notify socket; records (pid, assignment)."""

    def __init__(self, path):
        self.path = path
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(path)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)  # sender pid, as systemd checks
        self.msgs = []  # (pid, "KEY=value")

    def pump(self, timeout):
        self.s.settimeout(timeout)
        try:
            data, anc, _, _ = self.s.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            return
        pid = None
        for level, typ, cdata in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", cdata[:12])[0]
        for line in data.decode(errors="replace").split("\n"):
            if line:
                self.msgs.append((pid, line))

    def wait(self, what, pred, timeout=30.0, proc=None):
        """Pumps until pred(msgs) holds; fails naming `what`, or if proc exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self.msgs):
                return
            if proc is not None and proc.poll() is not None and not pred(self.msgs):
                self.pump(0.2)  # what it sent before exiting
                if pred(self.msgs):
                    return
                raise TestFailure(f"daemon exited ({proc.returncode}) before {what}; got {self.summary()}")
            self.pump(min(0.5, max(0.0, deadline - time.monotonic())))
        raise TestFailure(f"timed out after {timeout}s waiting for {what}; got {self.summary()}")

    def lines(self):
        return [m for _, m in self.msgs]

    def summary(self):
        """For failure messages: each distinct message once, in order of first arrival, with a count."""
        seen = {}
        for _, m in self.msgs:
            seen[m] = seen.get(m, 0) + 1
        return "; ".join(f"{m!r} x{n}" if n > 1 else repr(m) for m, n in seen.items()) or "nothing"

    def close(self):
        self.s.close()


def count(msgs, text):
    return sum(1 for _, m in msgs if m == text)


def after(msgs, text):
    """The messages after the first one equal to text (none if it never came)."""
    for i, (_, m) in enumerate(msgs):
        if m == text:
            return msgs[i + 1:]
    return []


def check_notify(build_dir, work):
    pg = fresh_database(require_env("CT_TEST_PG"), "systemd")
    redis = require_env("CT_TEST_REDIS")
    accounts = [{"name": n, "api_key": f"key-{n}-0123456789abcdef", "api_secret": f"secret-{n}-fedcba9876543210",
                 "balance": "1000000"} for n in ["leader", "f1"]]
    sim = Sim(build_dir, work, accounts, SYMBOLS)
    proc = None
    ns = None
    log_path = os.path.join(work, "copytraderd.log")
    try:
        # Secrets only in the credentials directory: the config names them relatively and its own
        # directory has none, so the daemon must find them through $CREDENTIALS_DIRECTORY.
        creds = os.path.join(work, "credentials")
        etc = os.path.join(work, "etc")
        os.makedirs(creds)
        os.makedirs(etc)
        for a in accounts:
            write_secret(creds, a)
        acct_yaml = "".join(
            f"  - name: {a['name']}\n    exchange: binance-usdm\n    rest_url: {sim.rest_url}\n"
            f"    ws_url: {sim.ws_url}\n    secret_file: {a['name']}.yaml\n" for a in accounts)
        config = (f"daemon:\n  log_level: info\n  http_listen: 127.0.0.1:{free_port()}\n"
                  f"  database: \"{pg}\"\n  redis: {redis}\n\naccounts:\n{acct_yaml}\n"
                  f"copy_rules:\n  - id: f1-copies-leader\n    leader: leader\n    follower: f1\n"
                  f"    sizing: multiplier\n    multiplier: 1\n")
        cfg = os.path.join(etc, "copytrader.yaml")
        with open(cfg, "w") as f:
            f.write(config)

        ns = NotifySocket(os.path.join(work, "notify.sock"))
        env = {**os.environ, "NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "1000000",
               "CREDENTIALS_DIRECTORY": creds}
        env.pop("WATCHDOG_PID", None)
        exe = os.path.join(build_dir, "daemon", "copytraderd")
        # systemd sets WATCHDOG_PID to the main pid; the shell's pid is the daemon's after exec.
        with open(log_path, "w") as log:
            proc = subprocess.Popen(["sh", "-c", 'export WATCHDOG_PID=$$; exec "$0" "$@"', exe, "--config", cfg],
                                    env=env, stdout=log, stderr=subprocess.STDOUT)

        ns.wait("READY=1", lambda ms: count(ms, "READY=1") >= 1, timeout=60, proc=proc)
        lines = ns.lines()
        ready_at = lines.index("READY=1")
        if not any(m.startswith("STATUS=starting") for m in lines[:ready_at]):
            raise TestFailure(f"no STATUS=starting... before READY=1: {lines[:ready_at + 1]}")
        steady = "STATUS=copying: 1/1 leader streams up, 1 followers, 1 copy rules, 0 orders/min"
        ns.wait(f"{steady!r} after READY=1", lambda ms: steady in [m for _, m in ms[ready_at:]], proc=proc)
        # WATCHDOG_USEC=1 s: pings every 0.5 s from the loop; several must follow READY=1.
        ns.wait("3 WATCHDOG=1 after READY=1", lambda ms: count(ms[ready_at:], "WATCHDOG=1") >= 3, proc=proc)
        if count(ns.msgs, "READY=1") != 1:
            raise TestFailure(f"READY=1 sent {count(ns.msgs, 'READY=1')} times")

        proc.send_signal(signal.SIGTERM)
        ns.wait("STOPPING=1 after SIGTERM", lambda ms: count(ms, "STOPPING=1") == 1, timeout=15)
        ns.wait("STATUS=draining after STOPPING=1",
                lambda ms: any(m.startswith("STATUS=draining") for _, m in after(ms, "STOPPING=1")), timeout=15)
        try:
            rc = proc.wait(30)
        except subprocess.TimeoutExpired:
            raise TestFailure("daemon did not exit within 30 s of SIGTERM")
        if rc != 0:
            raise TestFailure(f"daemon exited {rc} after SIGTERM")
        ns.pump(0.1)
        pids = {pid for pid, _ in ns.msgs}
        if pids != {proc.pid}:
            raise TestFailure(f"notify messages from pids {pids}, want only the main pid {proc.pid} "
                              "(NotifyAccess=main drops the others)")
        n_wd = count(ns.msgs, "WATCHDOG=1")
        proc = None
        print(f"ok: notify protocol: STATUS=starting, READY=1, {steady!r}, {n_wd} x WATCHDOG=1, "
              "STOPPING=1, STATUS=draining, exit 0; all from the main pid; secrets read from $CREDENTIALS_DIRECTORY")
    except TestFailure:
        try:
            with open(log_path) as f:
                print("--- daemon log tail:\n" + "".join(f.readlines()[-40:]), file=sys.stderr)
        except OSError:
            pass
        raise
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if ns:
            ns.close()
        sim.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    args = ap.parse_args()
    tmp = require_env("CT_TEST_TMP")
    work = os.path.join(tmp, "systemd")
    os.makedirs(work)
    build_dir = os.path.abspath(args.build_dir)
    try:
        dest = os.path.join(work, "dest")
        unit = check_install(build_dir, dest)
        check_analyze(dest, unit, work)
        check_sysusers_tmpfiles(dest, work)
        check_notify(build_dir, work)
    except TestFailure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
