#!/usr/bin/env python3
"""Fault injection, rate limits, userTrades, batchOrders and allOrders of copytrader-exsim
(Python 3 standard library only).

    python3 tests/integration/sim_faults_smoke.py /path/to/copytrader-exsim

Runs two simulators: one with Binance's default limits for the fault kinds (each one is made to
happen and its effect checked: latency before/after placing, http_5xx, 429, 418, 503_unknown with
the order really placed, reset before/after placing, ws_drop, ws_silent with lost events and no
pings or pongs, ws_duplicate, ws_reorder, listen_key_expire, count/probability/hit counters,
clearing) and for userTrades (ids equal the stream's `t`, fromId backfill after a silent gap),
batchOrders and allOrders; one with tiny limits for 429 -> 418 bans and the order count. Then
sim_bybit_faults_smoke.py's checks (stream faults on Bybit private websockets, Bybit limits).
Exits 0 and prints OK, or 1 naming the first check that failed. Helpers (Ws, check, the simulator
process) come from simclient.py beside this file.
"""
import hashlib
import hmac
import http.client
import json
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simclient import Fail, Http as JsonHttp, SimProcess, Ws, check, wait_for  # noqa: E402
import sim_bybit_faults_smoke  # noqa: E402

KEYS = {"leader": ("LKEY", "lsecret"), "f1": ("F1KEY", "f1secret"), "f2": ("F2KEY", "f2secret")}
SYMBOL = {"symbol": "BTCUSDT", "price": "50000", "step_size": "0.001", "min_qty": "0.001",
          "tick_size": "0.10", "min_notional": "5"}


def config(**extra):
    c = {"port": 0, "admin_port": 0, "ping_interval_s": 1,
         "accounts": [{"name": n, "api_key": k, "api_secret": s, "balance": "100000"} for n, (k, s) in KEYS.items()],
         "symbols": [SYMBOL]}
    c.update(extra)
    return c


class Http(JsonHttp):
    def call(self, method, path, body=None, headers=None):
        """(status, json body or None, headers dict with lower-case names)."""
        self.conn.request(method, path, body=body, headers=headers or {})
        r = self.conn.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        try:
            j = json.loads(data) if data else None
        except ValueError:
            j = data.decode(errors="replace")
        return r.status, j, hdrs


def sign_path(path, params, acct):
    key, secret = KEYS[acct]
    params = dict(params)
    params["timestamp"] = str(int(time.time() * 1000))
    q = urllib.parse.urlencode(params)
    sig = hmac.new(secret.encode(), q.encode(), hashlib.sha256).hexdigest()
    return f"{path}?{q}&signature={sig}", {"X-MBX-APIKEY": key}


def signed(h, method, path, params, acct="f1"):
    p, hd = sign_path(path, params, acct)
    return h.call(method, p, headers=hd)


def order(h, acct, cid, qty="0.010", side="BUY", **kw):
    p = {"symbol": "BTCUSDT", "side": side, "type": "MARKET", "quantity": qty, "newClientOrderId": cid}
    p.update(kw)
    return signed(h, "POST", "/fapi/v1/order", p, acct)


class Sim(SimProcess):
    def __init__(self, binary, cfg):
        super().__init__(binary, cfg, Http)
        self.api = Http(self.rest)

    def admin_json(self, method, path, body=None):
        st, j, _ = self.adm.call(method, path, json.dumps(body) if body is not None else None)
        return st, j

    def fault(self, **spec):
        st, j = self.admin_json("POST", "/admin/fault", spec)
        check(st == 200 and isinstance(j, dict) and j["kind"] == spec["kind"], f"add fault {spec}: {st} {j}")
        return j

    def fault_by_id(self, fid):
        st, lst = self.admin_json("GET", "/admin/faults")
        check(st == 200, "GET /admin/faults")
        for f in lst:
            if f["id"] == fid:
                return f
        raise Fail(f"fault {fid} not listed")

    def orders(self, acct):
        return self.admin_json("GET", f"/admin/orders?account={acct}")[1]

    def placed(self, acct, cid):
        return [o for o in self.orders(acct) if o["clientOrderId"] == cid and o["orderId"] is not None]

    def stream(self, acct):
        key, _ = KEYS[acct]
        st, j, _ = self.api.call("POST", "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": key})
        check(st == 200, "listenKey")
        ws = Ws(self.rest, "/ws/" + j["listenKey"])
        check(ws.accepted, "websocket accepted")
        return ws, j["listenKey"]

def events(ws, n, timeout=5.0):
    return [json.loads(ws.text(timeout)) for _ in range(n)]


def no_text(ws, seconds):
    """True if no text frame arrives within seconds (pings and pongs are reported separately)."""
    deadline = time.time() + seconds
    ctrl = []
    while time.time() < deadline:
        f = ws.frame(max(0.01, deadline - time.time()))
        if f is None:
            break
        check(f[0] != "EOF", "connection closed unexpectedly")
        if f[0] == 1:
            return False, ctrl
        ctrl.append(f[0])
    return True, ctrl


# ---------------------------------------------------------------------------------------------

def http_faults(sim):
    api = sim.api
    ws, _ = sim.stream("f1")
    wait_for(lambda: sim.admin_json("GET", "/admin/streams?account=f1")[1]["connections"] == 1, "f1 stream")

    # Every Binance response carries the IP weight; order responses the order counts.
    st, body, h = api.call("GET", "/fapi/v1/time")
    check(st == 200 and int(h["x-mbx-used-weight-1m"]) >= 1, f"weight header: {h}")
    st, body, h = order(api, "f1", "plain-1")
    check(st == 200 and "x-mbx-order-count-10s" in h and "x-mbx-order-count-1m" in h, f"order headers {h}")
    events(ws, 3)

    # latency, answer delayed, order placed at once.
    f = sim.fault(account="f1", endpoint="POST /fapi/v1/order", kind="latency", ms=400, count=1)
    p, hd = sign_path("/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                         "quantity": "0.010", "newClientOrderId": "lat-after"}, "f1")
    c = http.client.HTTPConnection(*sim.rest.split(":"), timeout=10)
    t0 = time.time()
    c.request("POST", p, headers=hd)
    ev = events(ws, 1)[0]
    check(ev["o"]["c"] == "lat-after" and ev["o"]["x"] == "NEW", "the order's events go out before the answer")
    check(sim.placed("f1", "lat-after"), "latency after_place: placed before the answer")
    r = c.getresponse()
    r.read()
    check(r.status == 200 and time.time() - t0 >= 0.38, f"latency: answer after >= 400 ms ({time.time() - t0:.3f})")
    events(ws, 2)
    st, body, _ = order(api, "f1", "lat-after-2")
    check(st == 200, "second order")
    events(ws, 3)
    f = sim.fault_by_id(f["id"])
    check(f["hits"] == 1 and f["remaining"] == 0 and not f["active"], f"count 1 used up: {f}")

    # latency, after_place false: the order is placed only after the delay.
    f = sim.fault(account="f1", endpoint="POST /fapi/v1/order", kind="latency", min_ms=300, max_ms=350,
                  after_place=False, count=1)
    p, hd = sign_path("/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                         "quantity": "0.010", "newClientOrderId": "lat-before"}, "f1")
    c = http.client.HTTPConnection(*sim.rest.split(":"), timeout=10)
    t0 = time.time()
    c.request("POST", p, headers=hd)
    time.sleep(0.1)
    check(not sim.placed("f1", "lat-before"), "after_place false: nothing placed during the delay")
    r = c.getresponse()
    r.read()
    check(r.status == 200 and time.time() - t0 >= 0.29, "after_place false: answered after the delay")
    check(sim.placed("f1", "lat-before"), "after_place false: placed after the delay")
    events(ws, 3)

    # http_5xx: nothing placed.
    f = sim.fault(account="f1", endpoint="POST /fapi/v1/order", kind="http_5xx", status=502, count=1)
    st, body, _ = order(api, "f1", "x502")
    check(st == 502 and body["code"] == -1000, f"http_5xx: {st} {body}")
    check(not sim.placed("f1", "x502"), "http_5xx: nothing placed")
    check(sim.fault_by_id(f["id"])["hits"] == 1, "http_5xx counted")

    # 429 and 418 with Retry-After; nothing placed.
    f = sim.fault(account="f1", endpoint="POST /fapi/v1/order", kind="429", retry_after_s=7, count=1)
    st, body, h = order(api, "f1", "x429")
    check(st == 429 and body["code"] == -1003 and h.get("retry-after") == "7", f"429: {st} {body} {h}")
    check(not sim.placed("f1", "x429"), "429: nothing placed")
    f = sim.fault(account="f1", endpoint="POST /fapi/v1/order", kind="418", retry_after_s=9, count=1)
    st, body, h = order(api, "f1", "x418")
    check(st == 418 and body["code"] == -1003 and h.get("retry-after") == "9", f"418: {st} {body} {h}")
    check(not sim.placed("f1", "x418"), "418: nothing placed")

    # 503 unknown: the order exists and its events went out.
    f = sim.fault(account="f1", endpoint="POST /fapi/v1/order", kind="503_unknown", count=1)
    st, body, _ = order(api, "f1", "x503")
    check(st == 503 and body["msg"] == "Unknown error, please check your request or try again later.",
          f"503: {st} {body}")
    ev = events(ws, 3)
    check(ev[0]["o"]["c"] == "x503" and ev[1]["o"]["X"] == "FILLED", f"503: events published {ev}")
    st, body, _ = signed(api, "GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "x503"})
    check(st == 200 and body["status"] == "FILLED", f"503: the order exists: {body}")

    # reset before and after placing.
    for after, cid in ((False, "xrst-0"), (True, "xrst-1")):
        f = sim.fault(account="f1", endpoint="POST /fapi/v1/order", kind="reset", after_place=after, count=1)
        c = Http(sim.rest)
        try:
            order(c, "f1", cid)
            raise Fail("reset: got an answer")
        except (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError):
            pass
        check(bool(sim.placed("f1", cid)) == after, f"reset after_place={after}: placed={not after}")
        check(sim.fault_by_id(f["id"])["hits"] == 1, "reset counted")
        if after:
            events(ws, 3)

    # Other accounts and endpoints are untouched; "*" reaches requests without an account.
    f = sim.fault(account="f1", endpoint="*", kind="http_5xx", count=1)
    st, body, _ = order(api, "f2", "f2-ok")
    check(st == 200, "a fault of f1 does not touch f2")
    st, body, _ = signed(api, "GET", "/fapi/v2/balance", {}, "f1")
    check(st == 500, "endpoint * hits any endpoint of the account")
    f = sim.fault(account="*", endpoint="GET /fapi/v1/time", kind="http_5xx", status=504, count=1)
    st, body, _ = api.call("GET", "/fapi/v1/time")
    check(st == 504, "account * hits unauthenticated requests")

    # probability with a seed: hits equal the failures seen, and not all or none fired.
    f = sim.fault(account="*", endpoint="/fapi/v1/ping", kind="http_5xx", probability=0.5, seed=42)
    fails = sum(1 for _ in range(40) if api.call("GET", "/fapi/v1/ping")[0] == 500)
    hits = sim.fault_by_id(f["id"])["hits"]
    check(hits == fails and 0 < fails < 40, f"probability 0.5: {fails} failures, {hits} hits")
    st, j = sim.admin_json("DELETE", f"/admin/fault?id={f['id']}")
    check(st == 200 and j == {"cleared": 1}, f"DELETE one fault: {j}")
    check(all(api.call("GET", "/fapi/v1/ping")[0] == 200 for _ in range(5)), "cleared fault no longer fires")
    st, j = sim.admin_json("POST", "/admin/fault", {"kind": "latency", "account": "f1"})
    check(st == 400 and j.get("field") == "ms", f"latency without ms refused: {j}")
    st, j = sim.admin_json("POST", "/admin/fault", {"kind": "boom"})
    check(st == 400 and j.get("field") == "kind", f"unknown kind refused: {j}")
    st, j = sim.admin_json("POST", "/admin/fault", {"kind": "429", "account": "nobody"})
    check(st == 404 and j.get("field") == "account", f"unknown account refused: {j}")
    ws.sock.close()


def ws_faults(sim):
    api = sim.api
    ws, lk = sim.stream("f2")
    wait_for(lambda: sim.admin_json("GET", "/admin/streams?account=f2")[1]["connections"] == 1, "f2 stream")

    # ws_duplicate: the next 2 events twice each.
    f = sim.fault(account="f2", kind="ws_duplicate", count=2)
    order(api, "f2", "dup-1")
    ev = events(ws, 5)
    kinds = [(e["e"], e.get("o", {}).get("x")) for e in ev]
    check(kinds == [("ORDER_TRADE_UPDATE", "NEW")] * 2 + [("ORDER_TRADE_UPDATE", "TRADE")] * 2
          + [("ACCOUNT_UPDATE", None)], f"duplicates: {kinds}")
    check(ev[0] == ev[1] and ev[2] == ev[3], "duplicates are identical")
    check(sim.fault_by_id(f["id"])["hits"] == 2, "ws_duplicate counted")

    # ws_reorder: NEW held and sent after TRADE.
    f = sim.fault(account="f2", kind="ws_reorder", count=1)
    order(api, "f2", "ro-1")
    ev = events(ws, 3)
    kinds = [(e["e"], e.get("o", {}).get("x")) for e in ev]
    check(kinds == [("ORDER_TRADE_UPDATE", "TRADE"), ("ORDER_TRADE_UPDATE", "NEW"), ("ACCOUNT_UPDATE", None)],
          f"reorder: {kinds}")
    check(sim.fault_by_id(f["id"])["hits"] == 1, "ws_reorder counted")

    # ws_silent: nothing sent (events lost, no pings), client pings unanswered; then live again.
    st, evs = sim.admin_json("GET", "/admin/events?account=f2")
    next_seq = evs[-1]["seq"] + 1
    f = sim.fault(account="f2", kind="ws_silent", duration_ms=2500)
    check(f["hits"] == 1, f"ws_silent applied to one connection: {f}")
    order(api, "f2", "silent-1")
    ws.ping()
    quiet, ctrl = no_text(ws, 1.8)  # ping_interval_s is 1: a live connection would get pings
    check(quiet and ctrl == [], f"silent: no frames at all (got control opcodes {ctrl})")
    wait_for(lambda: not sim.fault_by_id(f["id"])["active"], "silence to end", timeout=3)
    # The pong to the ping sent during the silence comes once it is over; the lost events do not.
    got_pong = False
    deadline = time.time() + 3
    while time.time() < deadline and not got_pong:
        fr = ws.frame(0.5)
        check(fr is None or fr[0] != 1, "events of the silence must be lost")
        got_pong = fr is not None and fr[0] == 10
    check(got_pong, "pong after the silence")
    st, j = sim.admin_json("GET", "/admin/streams?account=f2")
    check(j["silencedFrames"] == 3, f"3 frames lost to the silence: {j}")
    st, j = sim.admin_json("POST", "/admin/replay", {"account": "f2", "from_seq": next_seq})
    check(st == 200 and j["sent"] == 3, f"replay of the lost events: {j}")
    ev = events(ws, 3)
    check(ev[0]["o"]["c"] == "silent-1", "replayed events")

    # ws_silent until cleared.
    f = sim.fault(account="f2", kind="ws_silent")
    order(api, "f2", "silent-2")
    quiet, ctrl = no_text(ws, 0.5)
    check(quiet, "silent until cleared")
    st, j = sim.admin_json("DELETE", f"/admin/fault?id={f['id']}")
    check(st == 200 and j["cleared"] == 1, "clear the silence")
    order(api, "f2", "silent-3")
    ev = events(ws, 3)
    check(ev[0]["o"]["c"] == "silent-3", "live again after DELETE")

    # ws_drop: TCP closed without a close frame; the key stays valid.
    f = sim.fault(account="f2", kind="ws_drop")
    check(f["hits"] == 1 and not f["active"], f"ws_drop applied once: {f}")
    while True:
        fr = ws.frame(5)
        check(fr is not None, "ws_drop: the connection must end")
        check(fr[0] != 8, "ws_drop: no close frame")
        if fr[0] == "EOF":
            break
    ws2 = Ws(sim.rest, "/ws/" + lk)
    check(ws2.accepted, "reconnect with the same key after ws_drop")
    wait_for(lambda: sim.admin_json("GET", "/admin/streams?account=f2")[1]["connections"] == 1, "f2 reconnected")

    # listen_key_expire: the event, then the connection closes; keepalive -> -1125.
    f = sim.fault(account="f2", kind="listen_key_expire")
    check(f["hits"] == 1, f"listen_key_expire applied: {f}")
    ev = json.loads(ws2.text())
    check(ev["e"] == "listenKeyExpired" and ev["listenKey"] == lk, f"listenKeyExpired: {ev}")
    while True:
        fr = ws2.frame(5)
        check(fr is not None and fr[0] != "EOF", "close frame after listenKeyExpired")
        if fr[0] == 8:
            break
    st, body, _ = api.call("PUT", "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": KEYS["f2"][0]})
    check(st == 400 and body["code"] == -1125, f"keepalive after expiry: {body}")
    st, body, _ = api.call("POST", "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": KEYS["f2"][0]})
    check(st == 200 and body["listenKey"] != lk, "a new key after expiry")
    ws2.sock.close()


def trades_and_batches(sim):
    api = sim.api
    ws, _ = sim.stream("leader")
    wait_for(lambda: sim.admin_json("GET", "/admin/streams?account=leader")[1]["connections"] == 1, "stream")
    stream_trades = []

    def collect(n):
        for e in events(ws, n):
            if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "TRADE":
                stream_trades.append(e["o"])

    # Several executions: a split admin fill, a REST buy, a sell that realizes PnL.
    st, j = sim.admin_json("POST", "/admin/order", {"account": "leader", "symbol": "BTCUSDT", "side": "BUY",
                                                    "type": "MARKET", "quantity": "0.010",
                                                    "fills": ["0.004", "0.006"]})
    check(st == 200, f"admin order {j}")
    collect(5)
    order(api, "leader", "lt-2", qty="0.020")
    collect(3)
    sim.admin_json("POST", "/admin/price", {"symbol": "BTCUSDT", "price": "51000"})
    order(api, "leader", "lt-3", qty="0.005", side="SELL")
    collect(3)
    check(len(stream_trades) == 4, f"4 executions on the stream: {len(stream_trades)}")

    st, tr, h = signed(api, "GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"}, "leader")
    check(st == 200 and int(h["x-mbx-used-weight-1m"]) >= 5, "userTrades")
    check([t["id"] for t in tr] == [s["t"] for s in stream_trades], f"trade ids = stream t: {tr} {stream_trades}")
    check(sorted(tr[0]) == sorted(["buyer", "commission", "commissionAsset", "id", "maker", "orderId", "price",
                                   "qty", "quoteQty", "realizedPnl", "side", "positionSide", "symbol", "time"]),
          f"userTrades fields: {sorted(tr[0])}")
    for t, s in zip(tr, stream_trades):
        check(t["orderId"] == s["i"] and t["qty"] == s["l"] and t["price"] == s["L"] and t["realizedPnl"] == s["rp"]
              and t["side"] == s["S"] and t["positionSide"] == s["ps"] and t["maker"] == s["m"]
              and t["buyer"] == (s["S"] == "BUY") and t["time"] == s["T"], f"trade {t} vs stream {s}")
    check(tr[3]["realizedPnl"] == "5" and tr[3]["quoteQty"] == "255", f"sell: pnl and quote {tr[3]}")
    ids = [t["id"] for t in tr]
    st, tr2, _ = signed(api, "GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT", "fromId": ids[1], "limit": 2},
                        "leader")
    check([t["id"] for t in tr2] == ids[1:3], f"fromId + limit: {tr2}")
    st, tr3, _ = signed(api, "GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT", "limit": 2}, "leader")
    check([t["id"] for t in tr3] == ids[2:], "no fromId: the newest, ascending")
    st, tr4, _ = signed(api, "GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT", "orderId": tr[0]["orderId"]},
                        "leader")
    check([t["id"] for t in tr4] == ids[:2], "orderId filter")
    st, body, _ = signed(api, "GET", "/fapi/v1/userTrades", {}, "leader")
    check(st == 400 and body["code"] == -1102, "userTrades without symbol")
    st, body, _ = signed(api, "GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT", "fromId": 1,
                                                             "startTime": 1}, "leader")
    check(st == 400 and body["code"] == -1128, "fromId with startTime")
    st, body, _ = signed(api, "GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT", "limit": 1001}, "leader")
    check(st == 400 and body["code"] == -1130, "limit 1001")

    # The daemon's backfill: a silent stream misses trades; fromId = last seen + 1 gets them all.
    last_seen = ids[-1]
    f = sim.fault(account="leader", kind="ws_silent")
    for i in range(3):
        order(api, "leader", f"gap-{i}", qty="0.001")
    st, gap, _ = signed(api, "GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT", "fromId": last_seen + 1},
                        "leader")
    check(len(gap) == 3 and [t["id"] for t in gap] == list(range(last_seen + 1, last_seen + 4)),
          f"backfill after the gap: {gap}")
    sim.admin_json("DELETE", f"/admin/fault?id={f['id']}")
    ws.sock.close()

    # batchOrders: in order, orders and error objects.
    batch = [{"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002", "newClientOrderId": "b-1"},
             {"symbol": "NOPE", "side": "BUY", "type": "MARKET", "quantity": "0.002", "newClientOrderId": "b-2"},
             {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "price": "40000",
              "quantity": "0.002", "newClientOrderId": "b-3"}]
    st, res, h = signed(api, "POST", "/fapi/v1/batchOrders", {"batchOrders": json.dumps(batch)}, "f1")
    check(st == 200 and len(res) == 3, f"batchOrders: {st} {res}")
    check(res[0]["clientOrderId"] == "b-1" and res[0]["status"] == "NEW", f"batch[0] {res[0]}")
    check(res[1] == {"code": -1121, "msg": "Invalid symbol."}, f"batch[1] {res[1]}")
    check(res[2]["clientOrderId"] == "b-3" and res[2]["type"] == "LIMIT", f"batch[2] {res[2]}")
    check("x-mbx-order-count-10s" in h, "batch order count header")
    st, body, _ = signed(api, "POST", "/fapi/v1/batchOrders", {"batchOrders": json.dumps(batch * 2)}, "f1")
    check(st == 400 and body["code"] == -1130, "more than 5 orders refused")
    st, body, _ = signed(api, "POST", "/fapi/v1/batchOrders", {}, "f1")
    check(st == 400 and body["code"] == -1102, "batchOrders missing")
    logged = [o["clientOrderId"] for o in sim.orders("f1")][-3:]
    check(logged == ["b-1", "b-2", "b-3"], f"batch elements in the request log: {logged}")

    # allOrders: every order of f1 on the symbol, ascending; orderId = from that id.
    st, allo, _ = signed(api, "GET", "/fapi/v1/allOrders", {"symbol": "BTCUSDT"}, "f1")
    oids = [o["orderId"] for o in allo]
    check(st == 200 and oids == sorted(oids) and allo[-1]["clientOrderId"] == "b-3" and "time" in allo[-1],
          f"allOrders: {oids}")
    want = sorted(o["orderId"] for o in sim.orders("f1") if o["orderId"] is not None)
    check(oids == want, f"allOrders = the accepted orders {want}")
    st, part, _ = signed(api, "GET", "/fapi/v1/allOrders", {"symbol": "BTCUSDT", "orderId": oids[-2]}, "f1")
    check([o["orderId"] for o in part] == oids[-2:], "allOrders orderId")


def limits(binary):
    sim = Sim(binary, config(rate_limits={"weight_1m": 30, "orders_10s": 3, "orders_1m": 5, "ban_after": 2,
                                          "ban_s": 2, "ban_max_s": 4}))
    try:
        api = sim.api
        # Orders per account: at most 3 per 10 s; a 429 -1015 with Retry-After.
        seen = []
        for i in range(10):
            st, body, h = order(api, "f1", f"ol-{i}", qty="0.001")
            seen.append(st)
            if st == 429:
                check(body["code"] == -1015 and "10 SECOND" in body["msg"] and 1 <= int(h["retry-after"]) <= 10,
                      f"order limit: {body} {h}")
                check(h["x-mbx-order-count-10s"] == "3", f"order count header at the limit: {h}")
                break
            check(st == 200 and int(h["x-mbx-order-count-10s"]) <= 3, f"order {i}: {st} {h}")
        check(seen[-1] == 429, f"order limit reached: {seen}")
        st, body, _ = order(api, "f2", "other-account", qty="0.001")
        check(st == 200, "order limits are per account")

        # Weight per IP: 429 -1003 with Retry-After, then (ban_after 2) a 418 ban.
        sim.admin_json("POST", "/admin/limits/reset")
        codes = []
        for _ in range(200):
            st, body, h = api.call("GET", "/fapi/v1/exchangeInfo")
            codes.append(st)
            if st == 429:
                check(body["code"] == -1003 and 1 <= int(h["retry-after"]) <= 60
                      and int(h["x-mbx-used-weight-1m"]) > 30, f"429: {body} {h}")
            if st == 418:
                check(body["code"] == -1003 and "banned" in body["msg"] and 1 <= int(h["retry-after"]) <= 2,
                      f"418: {body} {h}")
                break
        check(codes[-1] == 418 and codes.count(429) == 2, f"429 x2 then 418: {codes[-5:]} ({codes.count(429)} 429s)")
        st, body, h = api.call("GET", "/fapi/v1/ping")
        check(st == 418, "banned: every request refused")
        st, body, h = order(api, "f2", "while-banned", qty="0.001")
        check(st == 418 and not sim.placed("f2", "while-banned"), "banned: orders refused, nothing placed")
        time.sleep(int(h["retry-after"]) + 0.2)
        st, body, h = api.call("GET", "/fapi/v1/ping")
        check(st in (200, 429, 418), "after the ban")
        sim.admin_json("POST", "/admin/limits/reset")
        st, body, h = api.call("GET", "/fapi/v1/ping")
        check(st == 200 and h["x-mbx-used-weight-1m"] == "1", f"after a reset: {st} {h}")
        st, body, h = api.call("GET", "/fapi/v1/exchangeInfo")
        rl = {(r["rateLimitType"], r["interval"], r["intervalNum"]): r["limit"] for r in body["rateLimits"]}
        check(rl == {("REQUEST_WEIGHT", "MINUTE", 1): 30, ("ORDERS", "SECOND", 10): 3, ("ORDERS", "MINUTE", 1): 5},
              f"exchangeInfo rateLimits follow the config: {rl}")
    finally:
        sim.close()


def run(binary):
    try:
        sim = Sim(binary, config())
        try:
            st, body, _ = sim.api.call("GET", "/fapi/v1/exchangeInfo")
            rl = {(r["rateLimitType"], r["interval"], r["intervalNum"]): r["limit"] for r in body["rateLimits"]}
            check(rl == {("REQUEST_WEIGHT", "MINUTE", 1): 2400, ("ORDERS", "SECOND", 10): 300,
                         ("ORDERS", "MINUTE", 1): 1200}, f"default rateLimits: {rl}")
            http_faults(sim)
            ws_faults(sim)
            trades_and_batches(sim)
            st, j = sim.admin_json("DELETE", "/admin/fault")
            check(st == 200 and j["cleared"] >= 1, "clear all faults")
            st, j = sim.admin_json("GET", "/admin/faults")
            check(j == [], "no faults left")
        finally:
            sim.close()
        limits(binary)
        # The same fault kinds and the limits on the Bybit side (prints its own OK / FAIL).
        if sim_bybit_faults_smoke.run(binary) != 0:
            return 1
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
