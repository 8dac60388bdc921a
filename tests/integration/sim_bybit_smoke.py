#!/usr/bin/env python3
"""End-to-end smoke test of copytrader-exsim's Bybit v5 front end (Python 3 standard library only).

    python3 tests/integration/sim_bybit_smoke.py /path/to/copytrader-exsim

Starts the simulator on free ports, signs Bybit v5 requests (X-BAPI-* headers, HMAC-SHA256),
places / queries / cancels single and batch orders, checks the error codes, positions, leverage,
position mode, wallet, execution list pagination, the private websocket (auth, subscribe, ping,
order / execution / position / wallet topics, closing of an unauthenticated connection), the
public ticker stream and that the same account's Binance user stream sees Bybit orders too.
Exits 0 and prints OK, or exits 1 naming the first check that failed.
"""
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simclient import Fail, Http, Ws, check, reap  # noqa: E402

LEADER_KEY, LEADER_SECRET = "LEADERKEY", "leadersecret"
HEDGER_KEY, HEDGER_SECRET = "HEDGERKEY", "hedgersecret"

CONFIG = {
    "port": 0, "admin_port": 0,
    # The refusals below come faster than Bybit's 10 orders/s; the limits themselves are checked by
    # sim_bybit_faults_smoke.py. Disabled limits still send the X-Bapi-Limit headers.
    "rate_limits": {"enabled": False},
    "accounts": [
        {"name": "leader", "api_key": LEADER_KEY, "api_secret": LEADER_SECRET, "balance": "100000"},
        {"name": "hedger", "api_key": HEDGER_KEY, "api_secret": HEDGER_SECRET, "balance": "1000",
         "position_mode": "hedge", "leverage": 10},
    ],
    "symbols": [
        {"symbol": "BTCUSDT", "price": "50000", "step_size": "0.001", "min_qty": "0.001", "max_qty": "1000",
         "tick_size": "0.10", "min_price": "0.10", "max_price": "1000000", "min_notional": "5"},
        {"symbol": "ETHUSDT", "price": "3000", "step_size": "0.01", "min_qty": "0.01", "tick_size": "0.01",
         "min_notional": "5"},
    ],
}
AUTH_TIMEOUT_MS = 1500


class Bybit:
    """Signed Bybit v5 calls: sign = HMAC(ts + key + recvWindow + (query | body))."""

    def __init__(self, http_, key, secret):
        self.http, self.key, self.secret = http_, key, secret

    def headers(self, payload, ts=None, secret=None, key=None):
        ts = str(ts if ts is not None else int(time.time() * 1000))
        key = key or self.key
        sig = hmac.new((secret or self.secret).encode(), (ts + key + "5000" + payload).encode(),
                       hashlib.sha256).hexdigest()
        return {"X-BAPI-API-KEY": key, "X-BAPI-TIMESTAMP": ts, "X-BAPI-SIGN": sig, "X-BAPI-RECV-WINDOW": "5000",
                "Content-Type": "application/json"}

    def get(self, path, params, **kw):
        q = urllib.parse.urlencode(params)
        return self.http.call("GET", f"{path}?{q}", headers=self.headers(q, **kw))

    def post(self, path, body, **kw):
        b = json.dumps(body, separators=(",", ":"))
        return self.http.call("POST", path, body=b, headers=self.headers(b, **kw))

    def ok(self, method, path, params, what):
        st, body = (self.get if method == "GET" else self.post)(path, params)
        check(st == 200 and body and body.get("retCode") == 0, f"{what}: {st} {body}")
        return body["result"]


def uuid_of(order_id):
    """The simulator's orderId for a book order id on the first symbol."""
    return "00000000-0000-4000-8000-%012d" % order_id


def run(binary):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(CONFIG, f)
        cfg = f.name
    env = dict(os.environ, EXSIM_BYBIT_AUTH_TIMEOUT_MS=str(AUTH_TIMEOUT_MS))
    proc = subprocess.Popen([binary, "--config", cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        line = proc.stdout.readline()
        check(line.startswith("READY rest=127.0.0.1:"), f"READY line: {line!r}")
        rest = line.split()[1].split("=")[1]
        admin = line.split()[2].split("=")[1]
        api, adm = Http(rest), Http(admin)
        by = Bybit(api, LEADER_KEY, LEADER_SECRET)
        hb = Bybit(Http(rest), HEDGER_KEY, HEDGER_SECRET)

        # ---- public REST ----
        st, body = api.call("GET", "/v5/market/time")
        check(st == 200 and body["retCode"] == 0 and abs(int(body["result"]["timeSecond"]) - time.time()) < 5, "time")
        st, body = api.call("GET", "/v5/market/instruments-info?category=linear")
        check(st == 200 and [i["symbol"] for i in body["result"]["list"]] == ["BTCUSDT", "ETHUSDT"], f"instr {body}")
        ins = body["result"]["list"][0]
        check(ins["lotSizeFilter"]["qtyStep"] == "0.001" and ins["lotSizeFilter"]["minNotionalValue"] == "5"
              and ins["priceFilter"]["tickSize"] == "0.1" and ins["settleCoin"] == "USDT", f"filters {ins}")
        st, body = api.call("GET", "/v5/market/instruments-info?category=spot")
        check(st == 200 and body["retCode"] == 0 and body["result"]["list"] == [], "no spot markets")
        st, body = api.call("GET", "/v5/market/tickers?category=linear&symbol=BTCUSDT")
        t = body["result"]["list"][0]
        check(t["lastPrice"] == "50000" and t["bid1Price"] == "50000" and t["markPrice"] == "50000", f"ticker {t}")
        st, body = api.call("GET", "/v5/market/tickers?category=linear&symbol=NOPE")
        check(body["retCode"] == 10001, "unknown symbol -> 10001")
        st, body = api.call("GET", "/v5/nope")
        check(st == 404, "unknown path 404")

        # ---- signing errors ----
        st, body = by.get("/v5/position/list", {"category": "linear", "symbol": "BTCUSDT"}, secret="wrong")
        check(st == 200 and body["retCode"] == 10004, f"bad signature -> 10004: {body}")
        st, body = by.get("/v5/position/list", {"category": "linear"}, key="NOKEY")
        check(st == 401 and body["retCode"] == 10003, f"unknown key -> 10003: {st} {body}")
        st, body = by.get("/v5/position/list", {"category": "linear", "symbol": "BTCUSDT"},
                          ts=int(time.time() * 1000) - 10000)
        check(body["retCode"] == 10002, f"stale timestamp -> 10002: {body}")
        st, body = by.get("/v5/position/list", {"category": "linear", "symbol": "BTCUSDT"},
                          ts=int(time.time() * 1000) + 3000)
        check(body["retCode"] == 10002, f"future timestamp -> 10002: {body}")
        st, body = api.call("GET", "/v5/position/list?category=linear&symbol=BTCUSDT")
        check(st == 401 and body["retCode"] == 10003, "no auth headers -> 401")

        # ---- private websocket ----
        unauth = Ws(rest, "/v5/private")
        check(unauth.accepted, "unauthenticated private connection accepted")
        pw = Ws(rest, "/v5/private")
        check(pw.accepted, f"private websocket: {pw.status_line}")
        expires = int(time.time() * 1000) + 10000
        sig = hmac.new(LEADER_SECRET.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
        pw.send({"op": "subscribe", "args": ["order"]})
        m = pw.msg()
        check(m["op"] == "subscribe" and m["success"] is False, f"subscribe before auth refused: {m}")
        pw.send({"op": "auth", "args": [LEADER_KEY, expires, "0" * 64]})
        m = pw.msg()
        check(m["op"] == "auth" and m["success"] is False, f"bad auth refused: {m}")
        pw.send({"req_id": "a1", "op": "auth", "args": [LEADER_KEY, expires, sig]})
        m = pw.msg()
        check(m["op"] == "auth" and m["success"] is True and m["ret_msg"] == "" and m["conn_id"], f"auth: {m}")
        pw.send({"op": "subscribe", "args": ["order", "execution.linear"]})
        m = pw.msg()
        check(m["success"] is False, "mixed all-in-one and categorised topics refused")
        pw.send({"req_id": "s1", "op": "subscribe", "args": ["order", "execution", "position", "wallet"]})
        m = pw.msg()
        check(m["op"] == "subscribe" and m["success"] is True and m["req_id"] == "s1", f"subscribe: {m}")
        pw.send({"req_id": "p1", "op": "ping"})
        m = pw.msg()
        check(m["op"] == "pong" and m["req_id"] == "p1" and int(m["args"][0]) > 0, f"pong: {m}")

        # The leader's Binance user stream sees Bybit orders too.
        st, lk = api.call("POST", "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": LEADER_KEY})
        bw = Ws(rest, "/ws/" + lk["listenKey"])
        check(bw.accepted, "binance user stream")

        # ---- orders ----
        r = by.ok("POST", "/v5/order/create", {"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                                               "orderType": "Limit", "qty": "0.002", "price": "40000",
                                               "timeInForce": "GTC", "orderLinkId": "by-lim-1", "positionIdx": 0},
                  "resting limit")
        check(r["orderLinkId"] == "by-lim-1" and len(r["orderId"]) == 36, f"create ack {r}")
        lim_id = r["orderId"]
        m = pw.topic("order")
        o = m["data"][0]
        check(o["orderId"] == lim_id and o["orderStatus"] == "New" and o["orderLinkId"] == "by-lim-1"
              and o["category"] == "linear" and o["leavesQty"] == "0.002", f"order New {m}")
        ev = json.loads(bw.frame()[1])
        check(ev["e"] == "ORDER_TRADE_UPDATE" and ev["o"]["c"] == "by-lim-1", f"binance stream sees it: {ev}")
        st, orders = adm.call("GET", "/admin/orders?account=leader")
        check(orders[-1]["clientOrderId"] == "by-lim-1" and uuid_of(orders[-1]["orderId"]) == lim_id
              and orders[-1]["status"] == "NEW", f"admin orders: {orders[-1]}")
        res = by.ok("GET", "/v5/order/realtime", {"category": "linear", "orderLinkId": "by-lim-1"}, "realtime")
        check(len(res["list"]) == 1 and res["list"][0]["orderStatus"] == "New" and res["list"][0]["price"] == "40000",
              f"realtime by link {res}")
        res = by.ok("GET", "/v5/order/realtime", {"category": "linear", "symbol": "BTCUSDT"}, "realtime open")
        check([x["orderLinkId"] for x in res["list"]] == ["by-lim-1"], f"open orders {res}")
        r = by.ok("POST", "/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "by-lim-1"},
                  "cancel")
        check(r == {"orderId": lim_id, "orderLinkId": "by-lim-1"}, f"cancel ack {r}")
        o = pw.topic("order")["data"][0]
        check(o["orderStatus"] == "Cancelled" and o["cancelType"] == "CancelByUser", f"Cancelled {o}")
        st, body = by.post("/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT", "orderId": lim_id})
        check(body["retCode"] == 110001, f"cancel again -> 110001: {body}")
        st, body = by.post("/v5/order/create", {"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                                                "orderType": "Market", "qty": "0.001", "orderLinkId": "by-lim-1"})
        check(body["retCode"] == 110072, f"orderLinkId reused after cancel -> 110072: {body}")

        r = by.ok("POST", "/v5/order/create", {"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                                               "orderType": "Market", "qty": "0.010", "orderLinkId": "by-mkt-1"},
                  "market buy")
        ex = pw.topic("execution")["data"][0]
        check(ex["orderLinkId"] == "by-mkt-1" and ex["execQty"] == "0.01" and ex["execPrice"] == "50000"
              and ex["closedSize"] == "0" and ex["execType"] == "Trade" and ex["isMaker"] is False
              and ex["orderId"] == r["orderId"] and ex["leavesQty"] == "0", f"execution {ex}")
        pos = pw.topic("position")["data"][0]
        check(pos["side"] == "Buy" and pos["size"] == "0.01" and pos["entryPrice"] == "50000"
              and pos["positionIdx"] == 0, f"position topic {pos}")
        wal = pw.topic("wallet")["data"][0]
        check(wal["accountType"] == "UNIFIED" and wal["coin"][0]["coin"] == "USDT", f"wallet topic {wal}")

        r = by.ok("POST", "/v5/order/create", {"category": "linear", "symbol": "BTCUSDT", "side": "Sell",
                                               "orderType": "Market", "qty": "0.004", "reduceOnly": True,
                                               "orderLinkId": "by-red-1"}, "reduce-only sell")
        ex = pw.topic("execution")["data"][0]
        check(ex["closedSize"] == "0.004" and ex["side"] == "Sell", f"closing execution {ex}")
        for body_, code, what in [
                ({"side": "Sell", "orderType": "Market", "qty": "0.02", "reduceOnly": True}, 110017, "reduce > pos"),
                ({"side": "Buy", "orderType": "Market", "qty": "0.0001"}, 10001, "qty precision"),
                ({"side": "Buy", "orderType": "Limit", "qty": "0.001", "price": "1000"}, 110094, "min notional"),
                ({"side": "Buy", "orderType": "Limit", "qty": "0.001"}, 10001, "limit without price"),
                ({"side": "Buy", "orderType": "Market", "qty": "0.001", "positionIdx": 1}, 10001, "idx 1 one-way"),
                ({"side": "Buy", "orderType": "Market", "qty": "0.001", "orderLinkId": "bad id!"}, 10001, "link id"),
                ({"side": "Up", "orderType": "Market", "qty": "0.001"}, 10001, "side")]:
            st, body = by.post("/v5/order/create", dict(body_, category="linear", symbol="BTCUSDT"))
            check(st == 200 and body["retCode"] == code, f"{what} -> {code}: {body}")
        st, orders = adm.call("GET", "/admin/orders?account=leader")
        check(orders[-2]["status"] == "REJECTED" and orders[-2]["errorCode"] == 10001
              and orders[-2]["clientOrderId"] == "bad id!" and orders[-1]["side"] == "Up",
              f"rejections logged {orders[-2:]}")

        # Batch: per-order results in two parallel lists.
        st, body = by.post("/v5/order/create-batch", {"category": "linear", "request": [
            {"symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": "0.001", "orderLinkId": "b-1"},
            {"symbol": "NOPE", "side": "Buy", "orderType": "Market", "qty": "0.001", "orderLinkId": "b-2"},
            {"symbol": "ETHUSDT", "side": "Sell", "orderType": "Limit", "qty": "0.10", "price": "3100",
             "orderLinkId": "b-3"}]})
        check(st == 200 and body["retCode"] == 0, f"batch {body}")
        codes = [x["code"] for x in body["retExtInfo"]["list"]]
        lst = body["result"]["list"]
        check(codes == [0, 10001, 0] and [x["orderLinkId"] for x in lst] == ["b-1", "b-2", "b-3"]
              and lst[1]["orderId"] == "" and len(lst[2]["orderId"]) == 36, f"batch results {body}")
        ex = pw.topic("execution")["data"][0]
        check(ex["orderLinkId"] == "b-1", f"batch fill on the stream {ex}")
        st, body = by.post("/v5/order/create-batch", {"category": "linear", "request": [
            {"symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": "0.001"}] * 11})
        check(body["retCode"] == 10001, "batch of 11 refused")

        # An admin order (scripted leader fill) reaches the Bybit stream and the execution list.
        st, body = adm.call("POST", "/admin/order", json.dumps({"account": "leader", "symbol": "BTCUSDT", "side": "BUY",
                                                                "quantity": "0.005", "fills": ["0.002", "0.003"],
                                                                "clientOrderId": "adm-1"}))
        check(st == 200, f"admin order {body}")
        e1, e2 = pw.topic("execution")["data"][0], pw.topic("execution")["data"][0]
        check((e1["execQty"], e2["execQty"]) == ("0.002", "0.003") and e2["leavesQty"] == "0"
              and e1["leavesQty"] == "0.003" and e1["orderLinkId"] == "adm-1", f"admin fills {e1} {e2}")

        # Execution list: complete, newest first, paginated with nextPageCursor.
        full = by.ok("GET", "/v5/execution/list", {"category": "linear"}, "executions")["list"]
        check(len(full) == 5 and [x["orderLinkId"] for x in full] == ["adm-1", "adm-1", "b-1", "by-red-1", "by-mkt-1"],
              f"execution list {[(x['orderLinkId'], x['execQty']) for x in full]}")
        check(all(int(full[i]["execTime"]) >= int(full[i + 1]["execTime"]) for i in range(4)), "newest first")
        check(len({x["execId"] for x in full}) == 5, "execIds unique")
        pages, cursor = [], None
        while True:
            params = {"category": "linear", "limit": "2"}
            if cursor:
                params["cursor"] = cursor
            res = by.ok("GET", "/v5/execution/list", params, "execution page")
            pages += res["list"]
            cursor = res["nextPageCursor"]
            if not cursor:
                break
        check([x["execId"] for x in pages] == [x["execId"] for x in full], "paginated = full list")
        res = by.ok("GET", "/v5/execution/list", {"category": "linear", "orderLinkId": "by-mkt-1"}, "by link")
        check(len(res["list"]) == 1 and res["list"][0]["orderQty"] == "0.01", f"executions of one order {res}")
        res = by.ok("GET", "/v5/execution/list", {"category": "linear", "symbol": "ETHUSDT"}, "by symbol")
        check(res["list"] == [], "no ETH executions")

        # History: closed orders, newest first.
        res = by.ok("GET", "/v5/order/history", {"category": "linear"}, "history")
        check([x["orderLinkId"] for x in res["list"]] == ["adm-1", "b-1", "by-red-1", "by-mkt-1", "by-lim-1"]
              and res["list"][3]["orderStatus"] == "Filled" and res["list"][4]["orderStatus"] == "Cancelled",
              f"history {[(x['orderLinkId'], x['orderStatus']) for x in res['list']]}")

        # ---- positions, leverage, mode, wallet ----
        res = by.ok("GET", "/v5/position/list", {"category": "linear", "symbol": "BTCUSDT"}, "position")
        p = res["list"][0]
        check(p["size"] == "0.012" and p["side"] == "Buy" and p["leverage"] == "20" and p["positionIdx"] == 0,
              f"position {p}")
        res = by.ok("GET", "/v5/position/list", {"category": "linear", "settleCoin": "USDT"}, "positions by coin")
        check([x["symbol"] for x in res["list"]] == ["BTCUSDT"], "only open positions by coin")
        st, body = by.get("/v5/position/list", {"category": "linear"})
        check(body["retCode"] == 10001, "position list needs symbol or settleCoin")
        by.ok("POST", "/v5/position/set-leverage", {"category": "linear", "symbol": "BTCUSDT", "buyLeverage": "10",
                                                    "sellLeverage": "10"}, "set leverage")
        seen = []
        while not seen or seen[-1]["leverage"] != "10":  # earlier fills' updates come first
            seen.append(pw.topic("position")["data"][0])
        check(len(seen) <= 4 and seen[-1]["size"] == "0.012", f"leverage change on the position topic {seen}")
        st, body = by.post("/v5/position/set-leverage", {"category": "linear", "symbol": "BTCUSDT",
                                                         "buyLeverage": "10", "sellLeverage": "10"})
        check(body["retCode"] == 110043, f"same leverage -> 110043 {body}")
        st, body = by.post("/v5/position/switch-mode", {"category": "linear", "coin": "USDT", "mode": 3})
        check(body["retCode"] == 110024, f"switch with a position -> 110024 {body}")
        res = by.ok("GET", "/v5/account/wallet-balance", {"accountType": "UNIFIED"}, "wallet")
        st, accts = adm.call("GET", "/admin/accounts")
        w = res["list"][0]
        check(w["totalWalletBalance"] == accts[0]["balance"] and w["coin"][0]["walletBalance"] == accts[0]["balance"],
              f"wallet {w} vs {accts[0]}")

        # ---- hedge mode ----
        hb.ok("POST", "/v5/order/create", {"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                                           "orderType": "Market", "qty": "0.010", "positionIdx": 1}, "hedge long")
        hb.ok("POST", "/v5/order/create", {"category": "linear", "symbol": "BTCUSDT", "side": "Sell",
                                           "orderType": "Market", "qty": "0.004", "positionIdx": 1,
                                           "reduceOnly": True}, "hedge close long")
        for body_, code, what in [({"side": "Buy", "qty": "0.001", "positionIdx": 0}, 10001, "idx 0 in hedge"),
                                  ({"side": "Buy", "qty": "0.001", "positionIdx": 1, "reduceOnly": True}, 110017,
                                   "reduceOnly on an opening order"),
                                  ({"side": "Buy", "qty": "0.001", "positionIdx": 2}, 110017, "close empty short")]:
            st, body = hb.post("/v5/order/create", dict(body_, category="linear", symbol="BTCUSDT", orderType="Market"))
            check(body["retCode"] == code, f"hedge {what} -> {code}: {body}")
        res = hb.ok("GET", "/v5/position/list", {"category": "linear", "symbol": "BTCUSDT"}, "hedge positions")
        check([(x["positionIdx"], x["side"], x["size"]) for x in res["list"]] == [(1, "Buy", "0.006"), (2, "", "0")],
              f"hedge positions {res}")
        st, body = hb.post("/v5/position/switch-mode", {"category": "linear", "symbol": "BTCUSDT", "mode": 3})
        check(body["retCode"] == 110025, f"same mode -> 110025 {body}")

        # ---- public ticker stream ----
        tw = Ws(rest, "/v5/public/linear")
        tw.send({"op": "subscribe", "args": ["tickers.BTCUSDT"]})
        m = tw.msg()
        check(m["op"] == "subscribe" and m["success"] is True, f"public subscribe {m}")
        m = tw.msg()
        check(m["topic"] == "tickers.BTCUSDT" and m["type"] == "snapshot" and m["data"]["lastPrice"] == "50000",
              f"snapshot {m}")
        adm.call("POST", "/admin/price", json.dumps({"symbol": "BTCUSDT", "price": "50100"}))
        m = tw.msg()
        check(m["type"] == "delta" and m["data"]["lastPrice"] == "50100" and m["data"]["tickDirection"] == "PlusTick",
              f"delta {m}")
        tw.send({"op": "ping"})
        m = tw.msg()
        check(m["op"] == "ping" and m["ret_msg"] == "pong", f"public pong {m}")

        # The unauthenticated private connection got nothing and was closed.
        while True:
            f = unauth.frame(timeout=AUTH_TIMEOUT_MS / 1000 + 3)
            check(f is not None, "unauthenticated connection not closed")
            if f[0] in ("EOF", 8):
                break
            check(f[0] == 9, f"unauthenticated connection received {f}")

        proc.send_signal(signal.SIGTERM)
        check(proc.wait(timeout=10) == 0, "clean exit on SIGTERM")
        print("OK")
        return 0
    except Fail as e:
        print(f"FAIL: {e}")
        return 1
    finally:
        reap(proc, cfg)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(run(sys.argv[1]))
