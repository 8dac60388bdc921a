#!/usr/bin/env python3
"""Smoke test of copytrader-exsim's Binance market streams (Python 3 standard library only).

    python3 tests/integration/sim_market_smoke.py /path/to/copytrader-exsim

Starts the simulator on free ports and checks: combined mode (/public/stream?streams=, /stream,
/market/stream) with the {"stream","data"} envelope, raw mode (/public/ws/<stream>, /ws/<stream>,
/market/ws + SUBSCRIBE), bookTicker and 24hrTicker shapes, the current message on subscription and
a new one on every POST /admin/price, SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS and their errors,
refused unknown streams, and that /ws/<listenKey> is still the user stream.
Exits 0 and prints OK, or exits 1 naming the first check that failed.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

LEADER_KEY, LEADER_SECRET = "LEADERKEY", "leadersecret"

CONFIG = {
    "port": 0, "admin_port": 0,
    "accounts": [{"name": "leader", "api_key": LEADER_KEY, "api_secret": LEADER_SECRET, "balance": "100000"}],
    "symbols": [
        {"symbol": "BTCUSDT", "price": "50000", "step_size": "0.001", "tick_size": "0.10"},
        {"symbol": "ETHUSDT", "price": "3000", "step_size": "0.01", "tick_size": "0.01"},
    ],
}


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simclient import Fail, Http, Ws, check  # noqa: E402


def book(m, sym, price):
    return (m.get("e") == "bookTicker" and m["s"] == sym and m["b"] == price and m["a"] == price
            and m["B"] == "1000" and isinstance(m["u"], int) and isinstance(m["E"], int))


def silent(w, timeout=0.3):
    f = w.frame(timeout)
    while f is not None and f[0] == 9:
        f = w.frame(timeout)
    return f is None


def run(binary):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(CONFIG, f)
        cfg = f.name
    proc = subprocess.Popen([binary, "--config", cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        check(line.startswith("READY rest=127.0.0.1:"), f"READY line: {line!r}")
        rest = line.split()[1].split("=")[1]
        admin = line.split()[2].split("=")[1]
        api, adm = Http(rest), Http(admin)

        def price(sym, p):
            st, _ = adm.call("POST", "/admin/price", json.dumps({"symbol": sym, "price": p}))
            check(st == 200, f"admin price {sym} {p}")

        # ---- combined mode: the current message at once, then one per price change ----
        cw = Ws(rest, "/public/stream?streams=btcusdt@bookTicker/ethusdt@bookTicker")
        check(cw.accepted, f"combined /public/stream: {cw.status_line}")
        got = {}
        for _ in range(2):
            m = cw.msg()
            got[m["stream"]] = m["data"]
        check(book(got["btcusdt@bookTicker"], "BTCUSDT", "50000") and book(got["ethusdt@bookTicker"], "ETHUSDT", "3000"),
              f"initial combined messages {got}")
        u0 = got["btcusdt@bookTicker"]["u"]
        price("BTCUSDT", "50100.5")
        m = cw.msg()
        check(m["stream"] == "btcusdt@bookTicker" and book(m["data"], "BTCUSDT", "50100.5") and m["data"]["u"] > u0,
              f"combined update {m}")
        check(silent(cw), "nothing for a symbol whose price did not change")

        # ---- raw mode with the stream in the path; 24hrTicker ----
        rw = Ws(rest, "/public/ws/ethusdt@ticker")
        check(rw.accepted, f"raw /public/ws/<stream>: {rw.status_line}")
        m = rw.msg()
        check(m["e"] == "24hrTicker" and m["s"] == "ETHUSDT" and m["c"] == "3000" and m["o"] == "3000"
              and m["n"] == 0 and m["C"] - m["O"] == 86400000, f"24hrTicker {m}")
        price("ETHUSDT", "3001.25")
        m = rw.msg()
        check(m["e"] == "24hrTicker" and m["c"] == "3001.25", f"24hrTicker update {m}")
        m = cw.msg()
        check(m["stream"] == "ethusdt@bookTicker" and book(m["data"], "ETHUSDT", "3001.25"), f"combined eth {m}")

        # ---- routes without the prefix; /ws/<x@y> is a market stream ----
        w2 = Ws(rest, "/stream?streams=btcusdt@ticker")
        check(w2.accepted and w2.msg()["data"]["c"] == "50100.5", "/stream?streams=")
        w3 = Ws(rest, "/ws/btcusdt@bookTicker")
        check(w3.accepted and book(w3.msg(), "BTCUSDT", "50100.5"), "/ws/<symbol>@bookTicker raw")
        w4 = Ws(rest, "/market/stream?streams=btcusdt@ticker/ethusdt@ticker")
        check(w4.accepted, "/market/stream")
        check(sorted(w4.msg()["stream"] for _ in range(2)) == ["btcusdt@ticker", "ethusdt@ticker"], "/market/stream msgs")

        # ---- SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS on a bare raw connection ----
        sw = Ws(rest, "/market/ws")
        check(sw.accepted, "/market/ws bare")
        check(silent(sw), "a bare connection gets nothing")
        sw.send({"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker", "ethusdt@ticker"], "id": 1})
        check(sw.msg() == {"result": None, "id": 1}, "subscribe reply")
        first = [sw.msg(), sw.msg()]
        check(any(book(x, "BTCUSDT", "50100.5") for x in first) and any(x.get("e") == "24hrTicker" for x in first),
              f"current messages after SUBSCRIBE {first}")
        sw.send({"method": "LIST_SUBSCRIPTIONS", "id": 2})
        m = sw.msg()
        check(m["id"] == 2 and sorted(m["result"]) == ["btcusdt@bookTicker", "ethusdt@ticker"], f"list {m}")
        sw.send({"method": "UNSUBSCRIBE", "params": ["ethusdt@ticker"], "id": 3})
        check(sw.msg() == {"result": None, "id": 3}, "unsubscribe reply")
        sw.send({"method": "SUBSCRIBE", "params": ["nopeusdt@bookTicker"], "id": 4})
        m = sw.msg()
        check(m["id"] == 4 and m["error"]["code"] == 2, f"unknown stream refused {m}")
        sw.send({"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"]})
        m = sw.msg()
        check("error" in m and m["id"] is None, f"no id refused {m}")
        sw.send({"method": "FROB", "id": 5})
        check(sw.msg()["error"]["code"] == 2, "unknown method refused")
        price("ETHUSDT", "3002")
        m = cw.msg()
        check(book(m["data"], "ETHUSDT", "3002"), "combined gets eth")
        check(silent(sw), "unsubscribed stream gets nothing")
        price("BTCUSDT", "49999.9")
        check(book(sw.msg(), "BTCUSDT", "49999.9"), "still subscribed to btc bookTicker")

        # ---- refusals ----
        bad = Ws(rest, "/public/stream?streams=nopeusdt@bookTicker")
        check(bad.status_line.startswith("HTTP/1.1 400"), f"unknown symbol refused: {bad.status_line}")
        bad = Ws(rest, "/public/ws/btcusdt@depth")
        check(bad.status_line.startswith("HTTP/1.1 400"), f"unknown stream kind refused: {bad.status_line}")
        bad = Ws(rest, "/stream?streams=BTCUSDT@bookTicker")
        check(bad.status_line.startswith("HTTP/1.1 400"), f"uppercase stream name refused: {bad.status_line}")

        # ---- the user stream still works at /ws/<listenKey> ----
        st, body = api.call("POST", "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": LEADER_KEY})
        check(st == 200 and "@" not in body["listenKey"], f"listenKey {body}")
        uw = Ws(rest, "/ws/" + body["listenKey"])
        check(uw.accepted, f"user stream at /ws/<listenKey>: {uw.status_line}")
        bad = Ws(rest, "/ws/notakey")
        check(bad.status_line.startswith("HTTP/1.1 400"), f"unknown listenKey still -1125: {bad.status_line}")

        proc.send_signal(signal.SIGTERM)
        check(proc.wait(timeout=10) == 0, "clean exit on SIGTERM")
        print("OK")
        return 0
    except Fail as e:
        print(f"FAIL: {e}")
        return 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err = proc.stderr.read()
        if "ERROR" in err or "AddressSanitizer" in err or "runtime error" in err:
            print(err, file=sys.stderr)
        os.unlink(cfg)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(run(sys.argv[1]))
