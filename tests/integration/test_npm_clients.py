#!/usr/bin/env python3
"""Fidelity of copytrader-exsim against real client libraries from npm: ccxt (binanceusdm and
bybit, every URL pointed at the simulator) and Binance's official USD-M connector
(@binance/derivatives-trading-usds-futures, basePath = the simulator) place, query and cancel
orders, read positions, balances and trades (tests/integration/npm/fidelity.mjs; versions pinned
in tests/integration/npm/package-lock.json). If a real client cannot talk to the simulator, the
simulator is wrong.

`npm ci` installs the pinned packages into <build>/npm-cache (the only step that needs the
network: the npm registry); a later run whose lockfile is unchanged reuses them."""

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Sim, TestFailure  # noqa: E402

NPM_FILES = ("package.json", "package-lock.json", "fidelity.mjs")
CLIENTS = ("ccxt-binanceusdm", "ccxt-bybit", "binance-connector")
SYMBOLS = [
    {"symbol": "BTCUSDT", "price": "50000", "step_size": "0.001", "min_qty": "0.001", "max_qty": "1000",
     "market_step_size": "0.001", "market_min_qty": "0.001", "market_max_qty": "120", "tick_size": "0.10",
     "min_price": "0.10", "max_price": "1000000", "min_notional": "5"},
    {"symbol": "ETHUSDT", "price": "3000", "step_size": "0.001", "min_qty": "0.001", "max_qty": "10000",
     "tick_size": "0.01", "min_price": "0.01", "max_price": "100000", "min_notional": "5"},
]


def tool_version(tool):
    path = shutil.which(tool)
    if not path:
        return None
    r = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    return r.stdout.strip() if r.returncode == 0 else None


def need_node():
    node, npm = tool_version("node"), tool_version("npm")
    if not node or not npm:
        raise TestFailure(f"node ({node or 'missing'}) and npm ({npm or 'missing'}) are needed: scripts/deps "
                          "installs them (Debian packages nodejs and npm)")
    major = int(node.lstrip("v").split(".")[0])
    if major < 18:
        raise TestFailure(f"node {node} is too old: ccxt needs node 18 or later")
    return node, npm


def install(src_npm, cache):
    """Copies the npm project into cache and runs `npm ci` there unless node_modules already
    holds what this lockfile pins (a stamp with the lockfile's hash and node's version)."""
    os.makedirs(cache, exist_ok=True)
    for f in NPM_FILES:
        shutil.copyfile(os.path.join(src_npm, f), os.path.join(cache, f))
    with open(os.path.join(cache, "package-lock.json"), "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest() + " " + (tool_version("node") or "")
    stamp = os.path.join(cache, "node_modules", ".ct-installed")
    try:
        with open(stamp) as f:
            if f.read() == want:
                return "cached"
    except OSError:
        pass
    r = subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=cache, capture_output=True, text=True, timeout=480)
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-20:])
        raise TestFailure(f"npm ci in {cache} failed (rc {r.returncode}; it needs the npm registry):\n{tail}")
    with open(stamp, "w") as f:
        f.write(want)
    return "installed"


def accounts():
    """Two simulator accounts per client (one-way and hedge mode), each with a fresh wallet, so what
    /admin reports for an account is exactly what that client did."""
    accts, clients = [], {}
    for c in CLIENTS:
        tag = c.replace("-", "")
        clients[c] = {}
        for mode in ("oneway", "hedge"):
            name = f"{tag}_{mode}"
            key, secret = f"{tag.upper()}{mode.upper()}KEY", f"{tag}{mode}secret0123456789"
            accts.append({"name": name, "api_key": key, "api_secret": secret, "balance": "100000",
                          "position_mode": mode})
            clients[c][mode] = {"name": name, "apiKey": key, "secret": secret}
    return accts, clients


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    a = ap.parse_args()
    try:
        node, npm = need_node()
        cache = os.path.join(a.build_dir, "npm-cache")
        os.makedirs(cache, exist_ok=True)
        # One installer at a time per build directory (two ctest runs sharing it).
        with open(os.path.join(cache, ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            how = install(os.path.join(a.source_dir, "tests", "integration", "npm"), cache)
        print(f"node {node}, npm {npm}; packages {how} in {cache}")

        base = os.environ.get("CT_TEST_TMP") or None
        with tempfile.TemporaryDirectory(prefix="ct-npm-", dir=base) as tmp:
            accts, clients = accounts()
            sim = Sim(a.build_dir, tmp, accts, SYMBOLS)
            try:
                cfg = {"rest": sim.rest_url, "admin": sim.admin, "symbol": "BTCUSDT", "price": "50000",
                       "other_symbol": "ETHUSDT", "clients": clients}
                cfg_path = os.path.join(tmp, "fidelity.json")
                with open(cfg_path, "w") as f:
                    json.dump(cfg, f)
                r = subprocess.run(["node", os.path.join(cache, "fidelity.mjs"), cfg_path], cwd=cache,
                                   capture_output=True, text=True, timeout=180)
                sys.stdout.write(r.stdout)
                if r.returncode != 0:
                    raise TestFailure(f"fidelity.mjs exited {r.returncode}:\n{r.stderr.strip()}\n"
                                      f"exsim log tail:\n{sim.p.tail(15)}")
                if r.stdout.strip().splitlines()[-1:] != ["OK"]:
                    raise TestFailure(f"fidelity.mjs did not print OK:\n{r.stdout}{r.stderr}")
            finally:
                rc = sim.stop()
            log = sim.p.tail(400)
            if rc != 0 or "AddressSanitizer" in log or "runtime error" in log or "LeakSanitizer" in log:
                raise TestFailure(f"exsim exited {rc}; log tail:\n{sim.p.tail(30)}")
    except (TestFailure, subprocess.TimeoutExpired) as e:
        print(f"FAIL: {e}")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
