#!/usr/bin/env python3
"""/health/ready and /health/live against the real daemon (PostgreSQL and Redis from with-services,
the simulator).

1. The leader's websocket URL points at a closed port: /health/live is 200, /health/ready stays 503
   with a "stream" problem naming the leader (and "startup", since the stream was never up).
2. A correctly configured daemon: /health/ready becomes 200 with status "ready".
3. The simulator is stopped under it: /health/ready turns 503 naming the leader's stream as down.
Bad requests to the health endpoints get 4xx, and the daemon keeps serving."""

import argparse
import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Daemon, Sim, TestFailure, free_port, http, require_env, wait_for,  # noqa: E402
                     fresh_database, write_secret, stop_clean)

SYMBOLS = [
    {"symbol": "BTCUSDT", "price": "50000", "step_size": "0.001", "min_qty": "0.001", "max_qty": "1000",
     "market_step_size": "0.001", "market_min_qty": "0.001", "market_max_qty": "120", "tick_size": "0.10",
     "min_price": "0.10", "max_price": "1000000", "min_notional": "5"},
]


def ready(base):
    st, text = http("GET", base + "/health/ready")
    try:
        body = json.loads(text)
    except ValueError:
        raise TestFailure(f"/health/ready -> {st}, not JSON: {text!r}")
    if st not in (200, 503):
        raise TestFailure(f"/health/ready -> {st}: {text}")
    want = "ready" if st == 200 else "not_ready"
    if body.get("status") != want:
        raise TestFailure(f"/health/ready -> {st} with status {body.get('status')!r}: {text}")
    if st == 503:
        probs = body.get("problems")
        if not isinstance(probs, list) or not probs:
            raise TestFailure(f"/health/ready 503 without problems: {text}")
        for p in probs:
            if not isinstance(p.get("check"), str) or not isinstance(p.get("detail"), str):
                raise TestFailure(f"/health/ready: malformed problem {p!r}")
    return st, body


def stream_problem(body, account):
    for p in body.get("problems", []):
        if p["check"] == "stream" and p.get("account") == account:
            return p
    return None


def raw_request(port, data):
    """Sends raw bytes, returns the status line (or '' when the server just closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    return buf.split(b"\r\n", 1)[0].decode(errors="replace")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    args = ap.parse_args()
    pg = fresh_database(require_env("CT_TEST_PG"), "health")
    redis = require_env("CT_TEST_REDIS")
    tmp = require_env("CT_TEST_TMP")
    work = os.path.join(tmp, "health")
    os.makedirs(os.path.join(work, "secrets"), exist_ok=True)

    accounts = [{"name": n, "api_key": f"key-{n}-0123456789abcdef", "api_secret": f"secret-{n}-fedcba9876543210",
                 "balance": "1000000"} for n in ["lead", "f1"]]
    sim = Sim(args.build_dir, work, accounts, SYMBOLS)
    daemon = None
    sim_stopped = False
    try:
        for a in accounts:
            write_secret(os.path.join(work, "secrets"), a)

        def config(port, ws_url):
            acct = "".join(
                f"  - name: {a['name']}\n    exchange: binance-usdm\n    rest_url: {sim.rest_url}\n"
                f"    ws_url: {ws_url}\n    secret_file: secrets/{a['name']}.yaml\n" for a in accounts)
            return (f"daemon:\n  log_level: info\n  http_listen: 127.0.0.1:{port}\n"
                    f"  database: \"{pg}\"\n  redis: {redis}\n\naccounts:\n{acct}\ncopy_rules:\n"
                    f"  - id: f1-copies-lead\n    leader: lead\n    follower: f1\n    sizing: multiplier\n"
                    f"    multiplier: 1\n")

        # 1. Leader stream pointed at a closed port.
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        closed = free_port()
        daemon = Daemon(args.build_dir, work, config(port, f"ws://127.0.0.1:{closed}"), name="daemon-closed")
        wait_for("/health/live", lambda: http("GET", base + "/health/live")[0] == 200)
        # Wait until the stream has tried (the reason is known), then it must still not be ready.
        wait_for("a stream problem naming lead",
                 lambda: stream_problem(ready(base)[1], "lead") and ready(base)[1].get("journal") == "up",
                 timeout=30)
        st, body = ready(base)
        if st != 503:
            raise TestFailure(f"ready with the leader stream on a closed port: {body}")
        p = stream_problem(body, "lead")
        if not p or "never up" not in p["detail"]:
            raise TestFailure(f"stream problem does not say the stream was never up: {body}")
        if not any(q["check"] == "startup" for q in body["problems"]):
            raise TestFailure(f"no startup problem while the stream was never up: {body}")
        if any(q["check"] == "journal" for q in body["problems"]):
            raise TestFailure(f"journal named although PostgreSQL is up: {body}")
        # Bad requests: 4xx, never a crash.
        if http("POST", base + "/health/ready", {})[0] // 100 != 4:
            raise TestFailure("POST /health/ready did not get a 4xx")
        line = raw_request(port, b"GARBAGE\r\n\r\n")
        if line and not (" 4" in line):
            raise TestFailure(f"garbage request answered {line!r}")
        if http("GET", base + "/health/live")[0] != 200 or not daemon.p.alive():
            raise TestFailure("daemon not serving after bad requests")
        d, daemon = daemon, None
        stop_clean(d)

        # 2. A correct configuration becomes ready.
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        daemon = Daemon(args.build_dir, work, config(port, sim.ws_url), name="daemon-ok")
        wait_for("/health/ready 200", lambda: ready(base)[0] == 200, timeout=30)
        st, body = ready(base)
        if body.get("journal") != "up" or body.get("streams_up") != 1 or body.get("streams") != 1 or "problems" in body:
            raise TestFailure(f"ready body: {body}")

        # 3. The exchange goes away: the leader stream goes down and readiness says so.
        sim.stop()
        sim_stopped = True
        wait_for("/health/ready 503 naming lead's stream",
                 lambda: ready(base)[0] == 503 and stream_problem(ready(base)[1], "lead"), timeout=30)
        p = stream_problem(ready(base)[1], "lead")
        if "down since" not in p["detail"]:
            raise TestFailure(f"stream problem does not say since when: {p}")
        if http("GET", base + "/health/live")[0] != 200:
            raise TestFailure("/health/live not 200 while the stream is down")
        d, daemon = daemon, None
        stop_clean(d)
        print(f"ok: not ready on a closed stream port ({p['detail']!r} later), ready with the simulator, "
              "not ready again once it is gone; bad requests get 4xx")
    finally:
        if daemon:
            daemon.stop()
        if not sim_stopped:
            sim.stop()


if __name__ == "__main__":
    try:
        main()
    except TestFailure as e:
        sys.exit(f"FAIL: {e}")
