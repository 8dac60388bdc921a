#!/usr/bin/env python3
"""Stream faults on Bybit private websockets and Bybit rate limits of copytrader-exsim (Python 3
standard library only).

    python3 tests/integration/sim_bybit_faults_smoke.py /path/to/copytrader-exsim

Simulator 1 (default limits): ws_duplicate (each topic message twice), ws_reorder (a message
held and sent after the next, or alone after ~2 s), ws_silent (no topic data, no pong to
{"op":"ping"} nor to websocket pings for the duration, the messages of the silence lost and
counted in GET /admin/streams, then live again; also until the fault is deleted), ws_drop (TCP
ends without a close frame, the client reconnects), listen_key_expire (no effect on Bybit), the
fault hit counts, GET /admin/streams counting Bybit connections, another account untouched.
Simulator 2 (bybit_trade_per_s 3, bybit_query_per_s 5): X-Bapi-Limit headers on private answers,
retCode 10006 "Too many visits!" (HTTP 200, headers, nothing placed) per account and endpoint,
allowed again after X-Bapi-Limit-Reset-Timestamp. Simulator 3 ("enabled": false): headers sent,
nothing refused. Exits 0 and prints OK, or 1 naming the first check that failed. Helpers come
from simclient.py and sim_bybit_smoke.py beside this file; sim_faults_smoke.py runs this file's run() too.
"""
import hashlib
import hmac
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sim_bybit_smoke import Bybit  # noqa: E402
from simclient import Fail, Http, SimProcess, Ws, check, wait_for  # noqa: E402

KEYS = {"f1": ("BF1KEY", "bf1secret"), "f2": ("BF2KEY", "bf2secret")}
SYMBOL = {"symbol": "BTCUSDT", "price": "50000", "step_size": "0.001", "min_qty": "0.001",
          "tick_size": "0.10", "min_notional": "5"}


def config(**extra):
    c = {"port": 0, "admin_port": 0,
         "accounts": [{"name": n, "api_key": k, "api_secret": s, "balance": "100000"} for n, (k, s) in KEYS.items()],
         "symbols": [SYMBOL]}
    c.update(extra)
    return c


class Sim(SimProcess):
    def admin(self, method, path, body=None):
        return self.adm.call(method, path, json.dumps(body) if body is not None else None)

    def fault(self, **spec):
        st, j = self.admin("POST", "/admin/fault", spec)
        check(st == 200 and j["kind"] == spec["kind"], f"add fault {spec}: {st} {j}")
        return j

    def hits(self, fid):
        for f in self.admin("GET", "/admin/faults")[1]:
            if f["id"] == fid:
                return f["hits"]
        raise Fail(f"fault {fid} not listed")

    def streams(self, acct):
        st, j = self.admin("GET", f"/admin/streams?account={acct}")
        check(st == 200, f"streams {acct}: {st} {j}")
        return j

    def order(self, acct, cid, qty="0.010", side="BUY", **kw):
        body = {"account": acct, "symbol": "BTCUSDT", "side": side, "type": "MARKET", "quantity": qty,
                "clientOrderId": cid}
        body.update(kw)
        st, j = self.admin("POST", "/admin/order", body)
        check(st == 200, f"admin order {cid}: {st} {j}")
        return j

def private(sim, acct, topics=("order",)):
    """An authenticated /v5/private connection of acct subscribed to topics."""
    key, secret = KEYS[acct]
    ws = Ws(sim.rest, "/v5/private")
    check(ws.accepted, f"{acct}: private websocket {ws.status_line}")
    expires = int(time.time() * 1000) + 10000
    sig = hmac.new(secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
    ws.send({"op": "auth", "args": [key, expires, sig]})
    m = ws.msg()
    check(m["op"] == "auth" and m["success"] is True, f"{acct}: auth {m}")
    ws.send({"op": "subscribe", "args": list(topics)})
    m = ws.msg()
    check(m["op"] == "subscribe" and m["success"] is True, f"{acct}: subscribe {m}")
    return ws


def orders(ws, n):
    """The next n order-topic messages: [(orderLinkId, orderStatus, raw message)]."""
    out = []
    for _ in range(n):
        m = ws.msg()
        check(m.get("topic") == "order", f"an order message, got {m}")
        out.append((m["data"][0]["orderLinkId"], m["data"][0]["orderStatus"], m))
    return out


def frames_within(ws, seconds):
    """Every frame (opcode, payload) arriving within seconds; fails on EOF."""
    got, deadline = [], time.time() + seconds
    while True:
        left = deadline - time.time()
        if left <= 0:
            return got
        f = ws.frame(left)
        if f is None:
            return got
        check(f[0] != "EOF", "connection closed unexpectedly")
        got.append(f)


def stream_faults(sim):
    w1 = private(sim, "f1")
    w2 = private(sim, "f2")
    s = sim.streams("f1")
    check(s["connections"] == 1 and s["bybitConnections"] == 1 and s["binanceConnections"] == 0
          and s["listenKey"] is None, f"streams counts the Bybit private connection: {s}")

    # ws_duplicate: the next 2 topic messages twice each; f2 untouched.
    f = sim.fault(account="f1", kind="ws_duplicate", count=2)
    sim.order("f1", "dup-1")
    got = orders(w1, 4)
    check([(c, st) for c, st, _ in got] == [("dup-1", "New")] * 2 + [("dup-1", "Filled")] * 2,
          f"duplicated messages: {[(c, st) for c, st, _ in got]}")
    check(got[0][2] == got[1][2] and got[2][2] == got[3][2], "duplicates are identical")
    check(sim.hits(f["id"]) == 2, f"ws_duplicate hits {sim.hits(f['id'])}")
    sim.order("f2", "f2-a")
    check([(c, st) for c, st, _ in orders(w2, 2)] == [("f2-a", "New"), ("f2-a", "Filled")],
          "another account's stream is not duplicated")
    sim.order("f1", "dup-2")
    check([(c, st) for c, st, _ in orders(w1, 2)] == [("dup-2", "New"), ("dup-2", "Filled")],
          "count 2 used up: no more duplicates")

    # ws_reorder: New held and sent after Filled.
    f = sim.fault(account="f1", kind="ws_reorder", count=1)
    sim.order("f1", "ro-1")
    got = orders(w1, 2)
    check([(c, st) for c, st, _ in got] == [("ro-1", "Filled"), ("ro-1", "New")],
          f"reordered: {[(c, st) for c, st, _ in got]}")
    check(sim.hits(f["id"]) == 1, "ws_reorder counted")
    # A held message with no next one goes out alone (after ~2 s).
    f = sim.fault(account="f1", kind="ws_reorder", count=1)
    sim.order("f1", "ro-rest", type="LIMIT", price="40000", quantity="0.001", timeInForce="GTC")
    check(frames_within(w1, 1.0) == [], "the held message is held")
    check([(c, st) for c, st, _ in orders(w1, 1)] == [("ro-rest", "New")], "the held message goes out alone")
    check(sim.hits(f["id"]) == 1, "ws_reorder counted (alone)")

    # ws_silent for a duration: nothing at all, no pongs; the messages of the silence are lost.
    lost0 = sim.streams("f1")["bybitSilencedFrames"]
    f = sim.fault(account="f1", kind="ws_silent", duration_ms=2000)
    check(f["hits"] == 1, f"ws_silent applied to one connection: {f}")
    t_end = time.time() + 2.0
    sim.order("f1", "sil-1")
    w1.send({"req_id": "ps", "op": "ping"})
    w1.ping()
    got = frames_within(w1, max(0.0, t_end - 0.2 - time.time()))  # the silence ends by t_end
    check(got == [], f"silent: no frames at all, no pong (got {got})")
    s = sim.streams("f1")
    check(s["bybitSilencedFrames"] - lost0 == 2 and s["silencedFrames"] >= 2 and s["connections"] == 1,
          f"2 messages lost to the silence, connection kept: {s}")
    w2.send({"req_id": "p2", "op": "ping"})
    check(w2.msg()["op"] == "pong", "another account's connection still answers")
    wait_for(lambda: not sim.admin("GET", "/admin/faults")[1][-1]["active"], "the silence to end", timeout=4)
    # Live again: what the client sent meanwhile is read now, so both pings get their (late)
    # pongs; the lost messages never arrive.
    sim.order("f1", "sil-2")
    seen, pongs = [], set()
    while len(seen) < 2 or len(pongs) < 2:
        fr = w1.frame(5)
        check(fr is not None and fr[0] in (1, 10), f"after the silence: {fr} (seen {seen}, pongs {pongs})")
        check(time.time() >= t_end - 0.2, "a frame before the silence ended")
        m = json.loads(fr[1]) if fr[0] == 1 else {"op": "ws-pong"}
        if m.get("op") in ("pong", "ws-pong"):
            check(m["op"] == "ws-pong" or m["req_id"] == "ps", f"pong {m}")
            pongs.add(m["op"])
            continue
        check(m.get("topic") == "order", f"unexpected message {m}")
        seen.append((m["data"][0]["orderLinkId"], m["data"][0]["orderStatus"]))
    check(seen == [("sil-2", "New"), ("sil-2", "Filled")], f"after the silence only the new order: {seen}")

    # ws_silent until the fault is deleted.
    f = sim.fault(account="f1", kind="ws_silent")
    sim.order("f1", "sil-3")
    got = frames_within(w1, 0.5)
    check(got == [], f"silent until deleted: {got}")
    st, j = sim.admin("DELETE", f"/admin/fault?id={f['id']}")
    check(st == 200 and j["cleared"] == 1, f"delete the silence: {j}")
    sim.order("f1", "sil-4")
    check([(c, st) for c, st, _ in orders(w1, 2)] == [("sil-4", "New"), ("sil-4", "Filled")],
          "live again after DELETE")

    # listen_key_expire: nothing to expire on a Bybit-only account; the connection lives on.
    f = sim.fault(account="f1", kind="listen_key_expire")
    check(f["hits"] == 0, f"listen_key_expire has no Bybit effect: {f}")
    sim.order("f1", "lke-1")
    check([c for c, _, _ in orders(w1, 2)] == ["lke-1"] * 2, "Bybit stream unaffected by listen_key_expire")

    # ws_drop: TCP closed without a close frame; the client reconnects and gets data again.
    f = sim.fault(account="f1", kind="ws_drop")
    check(f["hits"] == 1 and not f["active"], f"ws_drop applied once: {f}")
    check(sim.streams("f1")["connections"] == 0, "a dropped connection no longer counts")
    while True:
        fr = w1.frame(5)
        check(fr is not None, "ws_drop: the connection must end")
        check(fr[0] != 8, "ws_drop: no close frame")
        if fr[0] == "EOF":
            break
    check(sim.streams("f2")["connections"] == 1, "f2 not dropped")
    w1 = private(sim, "f1")
    check(sim.streams("f1")["bybitConnections"] == 1, "f1 reconnected")
    sim.order("f1", "drop-1")
    check([(c, st) for c, st, _ in orders(w1, 2)] == [("drop-1", "New"), ("drop-1", "Filled")],
          "data after the reconnect")
    sim.order("f2", "f2-b")
    check([c for c, _, _ in orders(w2, 2)] == ["f2-b"] * 2, "f2 still live")

    # Every account ("*"): both connections silenced, then the fault cleared.
    f = sim.fault(kind="ws_silent")
    check(f["hits"] == 2, f"ws_silent on every account: {f}")
    st, j = sim.admin("DELETE", "/admin/fault")
    check(st == 200 and j["cleared"] >= 1, "clear all")
    sim.order("f2", "f2-c")
    check([c for c, _, _ in orders(w2, 2)] == ["f2-c"] * 2, "f2 live after clearing")
    w1.sock.close()
    w2.sock.close()


def limit_headers(h):
    return int(h["x-bapi-limit"]), int(h["x-bapi-limit-status"]), int(h["x-bapi-limit-reset-timestamp"])


def create(by, cid):
    return by.post("/v5/order/create", {"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                                        "orderType": "Market", "qty": "0.001", "orderLinkId": cid})


def limits(binary):
    sim = Sim(binary, config(rate_limits={"bybit_trade_per_s": 3, "bybit_query_per_s": 5}))
    try:
        http_ = Http(sim.rest)
        by = Bybit(http_, *KEYS["f1"])
        st, body = http_.call("GET", "/v5/market/time")
        check(st == 200 and "x-bapi-limit" not in http_.headers, "public endpoints carry no X-Bapi-Limit")
        now = int(time.time() * 1000)
        st, body = by.get("/v5/position/list", {"category": "linear", "symbol": "BTCUSDT"})
        lim, left, reset = limit_headers(http_.headers)
        check(st == 200 and body["retCode"] == 0 and lim == 5 and left == 4 and abs(reset - now) < 5000,
              f"query limit headers: {http_.headers}")

        # Orders: 3 per second per account; the next is 10006 with the headers, nothing placed.
        results = []
        for i in range(50):
            st, body = create(by, f"rl-{i}")
            results.append((st, body["retCode"], limit_headers(http_.headers)))
            if body["retCode"] != 0:
                break
        st, code, (lim, left, reset) = results[-1]
        check(st == 200 and code == 10006 and body["retMsg"] == "Too many visits!",
              f"over the limit: {st} {body}")
        check(len(results) >= 4 and all(r[1] == 0 for r in results[:-1]), f"3 allowed first: {results}")
        check(lim == 3 and left == 0 and reset > int(time.time() * 1000) - 1000, f"10006 headers {results[-1]}")
        check(results[0][2][1] == 2 and all(r[2][1] >= 0 for r in results), f"remaining counts down: {results}")
        refused = f"rl-{len(results) - 1}"
        st, lst = sim.admin("GET", "/admin/orders?account=f1")
        check(all(o["clientOrderId"] != refused for o in lst), "a 10006 request is not placed")
        # Other endpoints and other accounts have their own windows.
        st, body = by.get("/v5/order/realtime", {"category": "linear", "symbol": "BTCUSDT"})
        check(body["retCode"] == 0, f"another endpoint is not limited: {body}")
        st, body = create(Bybit(http_, *KEYS["f2"]), "other-acct")
        check(body["retCode"] == 0 and limit_headers(http_.headers)[1] == 2, f"another account: {body}")
        # A slot frees at the reset timestamp.
        time.sleep(max(0.0, reset / 1000 - time.time()) + 0.05)
        st, body = create(by, "after-reset")
        check(body["retCode"] == 0, f"allowed again after the reset timestamp: {body}")
        # Queries: 5 per second.
        codes = []
        for _ in range(50):
            st, body = by.get("/v5/account/wallet-balance", {"accountType": "UNIFIED"})
            codes.append(body["retCode"])
            if body["retCode"] != 0:
                break
        check(codes[-1] == 10006 and len(codes) >= 6 and limit_headers(http_.headers)[:2] == (5, 0),
              f"query limit: {codes} {http_.headers}")
        # /admin/limits/reset forgets the windows.
        sim.admin("POST", "/admin/limits/reset")
        st, body = by.get("/v5/account/wallet-balance", {"accountType": "UNIFIED"})
        check(body["retCode"] == 0 and limit_headers(http_.headers)[1] == 4, "after /admin/limits/reset")
    finally:
        sim.close()

    sim = Sim(binary, config(rate_limits={"enabled": False, "bybit_trade_per_s": 2}))
    try:
        http_ = Http(sim.rest)
        by = Bybit(http_, *KEYS["f1"])
        for i in range(5):
            st, body = create(by, f"off-{i}")
            check(st == 200 and body["retCode"] == 0, f"limits off: never refused ({i}: {body})")
            lim, left, _ = limit_headers(http_.headers)
            check(lim == 2 and left >= 0, f"limits off: headers still sent {http_.headers}")
    finally:
        sim.close()


def run(binary):
    try:
        sim = Sim(binary, config())
        try:
            stream_faults(sim)
        finally:
            sim.close()
        limits(binary)
        print("OK")
        return 0
    except Fail as e:
        print(f"FAIL: {e}")
        return 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(run(sys.argv[1]))
