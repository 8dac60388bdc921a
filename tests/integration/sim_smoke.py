#!/usr/bin/env python3
"""End-to-end smoke test of copytrader-exsim (Python 3 standard library only).

    python3 tests/integration/sim_smoke.py /path/to/copytrader-exsim

Starts the simulator on free ports, reads its READY line, trades over signed REST, listens on
two raw websocket connections of the user-data stream, drives it through the admin API, checks
replay, a hedge-mode account (positionSide orders, leverage changes and their
ACCOUNT_CONFIG_UPDATE events, wallet/equity and balance adjustments, position mode switches),
listen-key deletion and a clean SIGTERM shutdown. Exits 0 and prints OK, or exits 1
naming the first check that failed. ctest runs it as integration/sim_smoke.
"""
import hashlib
import hmac
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simclient import Fail, Http, Ws, check, reap, wait_for  # noqa: E402

LEADER_KEY, LEADER_SECRET = "LEADERKEY", "leadersecret"
FOLLOWER_KEY, FOLLOWER_SECRET = "FOLLOWERKEY", "followersecret"
HEDGER_KEY, HEDGER_SECRET = "HEDGERKEY", "hedgersecret"

CONFIG = {
    "port": 0, "admin_port": 0, "ping_interval_s": 180,
    "accounts": [
        {"name": "leader", "api_key": LEADER_KEY, "api_secret": LEADER_SECRET, "balance": "100000"},
        {"name": "follower", "api_key": FOLLOWER_KEY, "api_secret": FOLLOWER_SECRET, "balance": "5000"},
        {"name": "hedger", "api_key": HEDGER_KEY, "api_secret": HEDGER_SECRET, "balance": "1000",
         "position_mode": "hedge", "leverage": 10},
    ],
    "symbols": [
        {"symbol": "BTCUSDT", "price": "50000", "step_size": "0.001", "min_qty": "0.001", "max_qty": "1000",
         "market_step_size": "0.001", "market_min_qty": "0.001", "market_max_qty": "120", "tick_size": "0.10",
         "min_price": "0.10", "max_price": "1000000", "min_notional": "5"},
    ],
}


def signed(http_, method, path, params, key=LEADER_KEY, secret=LEADER_SECRET, ts=None):
    params = dict(params)
    params["timestamp"] = str(ts if ts is not None else int(time.time() * 1000))
    q = urllib.parse.urlencode(params)
    sig = hmac.new(secret.encode(), q.encode(), hashlib.sha256).hexdigest()
    return http_.call(method, f"{path}?{q}&signature={sig}", headers={"X-MBX-APIKEY": key})


def hedge_checks(api, adm, rest):
    """A hedge-mode account: sides, leverage events, equity, balance adjustments, mode switches."""
    def h(method, path, params):
        return signed(api, method, path, params, key=HEDGER_KEY, secret=HEDGER_SECRET)

    st, body = adm.call("POST", "/admin/price", json.dumps({"symbol": "BTCUSDT", "price": "50000"}))
    check(st == 200, "price back to 50000")
    st, body = h("GET", "/fapi/v1/positionSide/dual", {})
    check(st == 200 and body == {"dualSidePosition": True}, f"hedger dual: {body}")
    st, body = signed(api, "GET", "/fapi/v1/positionSide/dual", {})
    check(st == 200 and body == {"dualSidePosition": False}, "leader is one-way")
    st, body = api.call("POST", "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": HEDGER_KEY})
    ws = Ws(rest, "/ws/" + body["listenKey"])
    check(ws.accepted, "hedger websocket")
    wait_for(lambda: adm.call("GET", "/admin/streams?account=hedger")[1]["connections"] == 1, "hedger stream")

    def events(n):
        return [json.loads(ws.text()) for _ in range(n)]

    # Opens on both sides.
    st, body = h("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "positionSide": "LONG",
                                            "type": "MARKET", "quantity": "0.010", "newClientOrderId": "h-long",
                                            "newOrderRespType": "RESULT"})
    check(st == 200 and body["status"] == "FILLED" and body["positionSide"] == "LONG", f"LONG open: {body}")
    ev = events(3)
    check(ev[1]["o"]["ps"] == "LONG" and ev[1]["o"]["x"] == "TRADE", "TRADE carries ps LONG")
    check(ev[2]["a"]["P"][0]["ps"] == "LONG" and ev[2]["a"]["P"][0]["pa"] == "0.01", f"ACCOUNT_UPDATE LONG {ev[2]}")
    st, body = h("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "SELL", "positionSide": "SHORT",
                                            "type": "MARKET", "quantity": "0.005", "newOrderRespType": "RESULT"})
    check(st == 200 and body["positionSide"] == "SHORT", f"SHORT open: {body}")
    ev = events(3)
    check(ev[2]["a"]["P"][0]["ps"] == "SHORT" and ev[2]["a"]["P"][0]["pa"] == "-0.005", "ACCOUNT_UPDATE SHORT")

    # Hedge-mode refusals.
    for params, code, what in [
            ({"side": "BUY", "type": "MARKET", "quantity": "0.001"}, -4061, "no positionSide"),
            ({"side": "BUY", "positionSide": "BOTH", "type": "MARKET", "quantity": "0.001"}, -4061, "BOTH"),
            ({"side": "SELL", "positionSide": "LONG", "type": "MARKET", "quantity": "0.001", "reduceOnly": "true"},
             -1106, "reduceOnly"),
            ({"side": "SELL", "positionSide": "LONG", "type": "MARKET", "quantity": "0.001", "reduceOnly": "false"},
             -1106, "reduceOnly=false"),
            ({"side": "SELL", "positionSide": "LONG", "type": "MARKET", "quantity": "0.011"}, -2022, "close > long"),
            ({"side": "BUY", "positionSide": "UP", "type": "MARKET", "quantity": "0.001"}, -4060, "bad side")]:
        params = dict(params, symbol="BTCUSDT")
        st, body = h("POST", "/fapi/v1/order", params)
        check(st == 400 and body["code"] == code, f"hedge refusal {what}: {st} {body}")
    st, body = signed(api, "POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "positionSide": "LONG",
                                                      "type": "MARKET", "quantity": "0.001"})
    check(st == 400 and body["code"] == -4061, "one-way account refuses positionSide LONG")

    st, pr = h("GET", "/fapi/v2/positionRisk", {"symbol": "BTCUSDT"})
    check(st == 200 and [(p["positionSide"], p["positionAmt"], p["leverage"]) for p in pr]
          == [("LONG", "0.01", "10"), ("SHORT", "-0.005", "10")], f"positionRisk v2 hedge: {pr}")
    st, pr = h("GET", "/fapi/v3/positionRisk", {})
    check(st == 200 and [p["positionSide"] for p in pr] == ["LONG", "SHORT"], f"positionRisk v3 hedge: {pr}")
    st, body = h("POST", "/fapi/v1/positionSide/dual", {"dualSidePosition": "false"})
    check(st == 400 and body["code"] == -4068, f"mode switch with positions: {body}")
    st, body = h("POST", "/fapi/v1/positionSide/dual", {"dualSidePosition": "true"})
    check(st == 400 and body["code"] == -4059, f"mode switch to the same mode: {body}")

    # Leverage: the owner's change (REST) and a scripted one (admin) both reach the stream.
    st, body = h("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": "15"})
    check(st == 200 and body["leverage"] == 15 and body["symbol"] == "BTCUSDT", f"set leverage: {body}")
    ev = events(1)[0]
    check(ev["e"] == "ACCOUNT_CONFIG_UPDATE" and ev["ac"] == {"s": "BTCUSDT", "l": 15}, f"config event {ev}")
    st, body = h("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": "126"})
    check(st == 400 and body["code"] == -4028, "leverage 126 refused")
    st, body = adm.call("POST", "/admin/leverage", json.dumps({"account": "hedger", "symbol": "BTCUSDT",
                                                                "leverage": 3}))
    check(st == 200 and body["leverage"] == 3, f"admin leverage: {body}")
    ev = events(1)[0]
    check(ev["e"] == "ACCOUNT_CONFIG_UPDATE" and ev["ac"]["l"] == 3, "admin leverage event")
    st, pr = h("GET", "/fapi/v2/positionRisk", {"symbol": "BTCUSDT"})
    check(all(p["leverage"] == "3" for p in pr), "positionRisk shows the new leverage")
    st, body = adm.call("POST", "/admin/leverage", json.dumps({"account": "hedger", "symbol": "BTCUSDT",
                                                                "leverage": 0}))
    check(st == 400 and body.get("field") == "leverage", "admin leverage 0 refused")

    # Equity = wallet + unrealized at the current price: long +10, short -5 at 51000.
    adm.call("POST", "/admin/price", json.dumps({"symbol": "BTCUSDT", "price": "51000"}))
    st, acc = h("GET", "/fapi/v3/account", {})
    check(st == 200 and acc["totalWalletBalance"] == "1000" and acc["totalUnrealizedProfit"] == "5"
          and acc["totalMarginBalance"] == "1005", f"account equity: {acc}")
    st, acc2 = h("GET", "/fapi/v2/account", {})
    check(acc2["totalMarginBalance"] == "1005", "v2 account")
    st, bal = h("GET", "/fapi/v2/balance", {})
    check(st == 200 and bal[0]["balance"] == "1000" and bal[0]["crossUnPnl"] == "5", f"balance: {bal}")

    # Close the long: realized +10 goes to the wallet.
    st, body = h("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "SELL", "positionSide": "LONG",
                                            "type": "MARKET", "quantity": "0.010", "newOrderRespType": "RESULT"})
    check(st == 200 and body["status"] == "FILLED", f"LONG close: {body}")
    ev = events(3)
    check(ev[1]["o"]["rp"] == "10" and ev[2]["a"]["B"][0]["wb"] == "1010" and ev[2]["a"]["P"][0]["pa"] == "0",
          f"close events {ev[1:]}")

    # A balance adjustment (tests use it to trip loss stops).
    st, body = adm.call("POST", "/admin/balance", json.dumps({"account": "hedger", "balance": "500"}))
    check(st == 200 and body == {"account": "hedger", "balance": "500"}, f"admin balance: {body}")
    ev = events(1)[0]
    check(ev["e"] == "ACCOUNT_UPDATE" and ev["a"]["m"] == "ADJUSTMENT" and ev["a"]["B"][0]["wb"] == "500"
          and ev["a"]["B"][0]["bc"] == "-510" and ev["a"]["P"] == [], f"ADJUSTMENT event {ev}")
    st, acc = h("GET", "/fapi/v3/account", {})
    check(acc["totalWalletBalance"] == "500" and acc["totalMarginBalance"] == "495", f"after adjustment {acc}")
    st, body = adm.call("POST", "/admin/balance", json.dumps({"account": "hedger", "balance": 1.5}))
    check(st == 400 and body.get("field") == "balance", "admin balance must be a decimal string")
    st, accts = adm.call("GET", "/admin/accounts")
    hed = [a for a in accts if a["name"] == "hedger"][0]
    check(hed["positionMode"] == "hedge" and hed["balance"] == "500" and hed["equity"] == "495", f"accounts {hed}")

    # Admin orders name the side; the request log keeps it.
    st, body = adm.call("POST", "/admin/order", json.dumps({"account": "hedger", "symbol": "BTCUSDT", "side": "BUY",
                                                            "positionSide": "SHORT", "quantity": "0.005"}))
    check(st == 200 and body["status"] == "FILLED" and body["positionSide"] == "SHORT", f"admin hedge order {body}")
    events(3)
    st, body = adm.call("POST", "/admin/order", json.dumps({"account": "hedger", "symbol": "BTCUSDT", "side": "BUY",
                                                            "quantity": "0.005"}))
    check(st == 400 and body["code"] == -4061, f"admin order without side on a hedge account: {body}")
    st, log = adm.call("GET", "/admin/orders?account=hedger")
    check(log[0]["positionSide"] == "LONG" and log[-1]["positionSide"] is None, "request log positionSide")
    st, pos = adm.call("GET", "/admin/positions?account=hedger&all=1")
    check([(p["positionSide"], p["positionAmt"], p["leverage"]) for p in pos] == [("LONG", "0", 3), ("SHORT", "0", 3)],
          f"admin positions {pos}")

    # Flat and no open orders: back to one-way.
    st, body = h("POST", "/fapi/v1/positionSide/dual", {"dualSidePosition": "false"})
    check(st == 200 and body == {"code": 200, "msg": "success"}, f"mode switch: {body}")
    st, body = h("GET", "/fapi/v1/positionSide/dual", {})
    check(body == {"dualSidePosition": False}, "now one-way")
    st, body = adm.call("POST", "/admin/position_mode", json.dumps({"account": "hedger", "position_mode": "hedge"}))
    check(st == 200 and body["positionMode"] == "hedge", f"admin position mode {body}")


def run(binary):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(CONFIG, f)
        cfg = f.name
    proc = subprocess.Popen([binary, "--config", cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        check(line.startswith("READY rest=127.0.0.1:") and " admin=127.0.0.1:" in line, f"READY line: {line!r}")
        rest = line.split()[1].split("=")[1]
        admin = line.split()[2].split("=")[1]
        api, adm = Http(rest), Http(admin)

        st, body = api.call("GET", "/fapi/v1/ping")
        check(st == 200 and body == {}, "ping")
        st, body = api.call("GET", "/fapi/v1/time")
        check(st == 200 and abs(body["serverTime"] - time.time() * 1000) < 5000, "time")
        st, body = api.call("GET", "/fapi/v1/exchangeInfo")
        check(st == 200 and body["symbols"][0]["symbol"] == "BTCUSDT", "exchangeInfo")
        st, body = api.call("GET", "/fapi/v2/ticker/price")
        check(st == 200 and isinstance(body, list) and sorted(body[0]) == ["price", "symbol", "time"]
              and body[0]["symbol"] == "BTCUSDT" and body[0]["price"] == "50000", f"ticker v2 (all): {body}")
        st, body = api.call("GET", "/fapi/v2/ticker/price?symbol=BTCUSDT")
        check(st == 200 and sorted(body) == ["price", "symbol", "time"], f"ticker v2 (one): {body}")
        st, body = api.call("GET", "/fapi/v2/ticker/price?symbol=NOPE")
        check(st == 400 and body["code"] == -1121, "ticker of an unknown symbol")
        st, body = api.call("GET", "/fapi/v9/nothing")
        check(st == 404 and "code" in body, "unknown path is a JSON 404")

        st, body = api.call("POST", "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": LEADER_KEY})
        check(st == 200 and len(body["listenKey"]) == 64, "listenKey")
        lk = body["listenKey"]
        st, body = api.call("POST", "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": LEADER_KEY})
        check(body["listenKey"] == lk, "second POST returns the same key")
        bad = Ws(rest, "/ws/" + "x" * 64)
        check(not bad.accepted and " 400 " in bad.status_line, f"unknown key refused: {bad.status_line}")
        w1, w2 = Ws(rest, "/ws/" + lk), Ws(rest, "/private/ws/" + lk)
        check(w1.accepted and w2.accepted, "websocket handshakes")
        wait_for(lambda: adm.call("GET", "/admin/streams?account=leader")[1]["connections"] == 2, "2 connections")

        # A signed REST order: the exact quantity string must be kept.
        st, body = signed(api, "POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                          "quantity": "0.010", "newClientOrderId": "smoke-1",
                                                          "newOrderRespType": "RESULT"})
        check(st == 200 and body["status"] == "FILLED" and body["executedQty"] == "0.01", f"market order: {body}")
        for w in (w1, w2):
            ev = [json.loads(w.text()) for _ in range(3)]
            check([e["e"] for e in ev] == ["ORDER_TRADE_UPDATE", "ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE"],
                  f"event kinds {[e['e'] for e in ev]}")
            check(ev[0]["o"]["x"] == "NEW" and ev[1]["o"]["x"] == "TRADE" and ev[1]["o"]["X"] == "FILLED",
                  "NEW then TRADE/FILLED")
            check(ev[1]["o"]["c"] == "smoke-1" and ev[1]["o"]["l"] == "0.01" and ev[1]["o"]["L"] == "50000",
                  "fill fields")
            check(ev[2]["a"]["P"][0]["pa"] == "0.01", "ACCOUNT_UPDATE position")
        st, body = signed(api, "GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "smoke-1"})
        check(st == 200 and body["status"] == "FILLED", "query order")
        st, body = signed(api, "GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "nope"})
        check(st == 400 and body["code"] == -2013, "unknown order -> -2013")

        # Rejections.
        st, body = signed(api, "POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                          "quantity": "0.001"}, secret="wrong")
        check(st == 400 and body["code"] == -1022, "bad signature -> -1022")
        st, body = signed(api, "POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                          "quantity": "0.001"}, ts=int(time.time() * 1000) - 60000)
        check(st == 400 and body["code"] == -1021, "stale timestamp -> -1021")
        st, body = signed(api, "POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                                                          "quantity": "0.001", "reduceOnly": "true"},
                          key=FOLLOWER_KEY, secret=FOLLOWER_SECRET)
        check(st == 400 and body["code"] == -2022, "reduce-only while flat -> -2022")
        st, body = api.call("POST", "/fapi/v1/order?symbol=BTCUSDT", headers={"X-MBX-APIKEY": "nobody"})
        check(st == 401 and body["code"] == -2015, "unknown API key -> 401 -2015")

        # Admin order split in two executions.
        st, body = adm.call("POST", "/admin/order", json.dumps({
            "account": "leader", "symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.010",
            "reduceOnly": True, "fills": ["0.004", "0.006"]}))
        check(st == 200 and body["status"] == "FILLED", f"admin order: {body}")
        ev = [json.loads(w1.text()) for _ in range(5)]
        check([e["o"]["X"] for e in ev if e["e"] == "ORDER_TRADE_UPDATE"] == ["NEW", "PARTIALLY_FILLED", "FILLED"],
              "admin order statuses")
        check(ev[-1]["a"]["P"][0]["pa"] == "0", "flat after the reduce-only sell")
        for _ in range(5):
            w2.text()
        st, body = adm.call("POST", "/admin/order", json.dumps({
            "account": "leader", "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.010", "fills": ["0.004"]}))
        check(st == 400 and body.get("field") == "fills", "fills must sum to quantity")
        st, body = adm.call("POST", "/admin/order", json.dumps({"account": "ghost"}))
        check(st == 404 and "ghost" in body["error"], "unknown account -> 404 naming it")

        # Request log.
        st, log = adm.call("GET", "/admin/orders?account=leader")
        check(st == 200 and log[0]["origQty"] == "0.010" and log[0]["clientOrderId"] == "smoke-1"
              and log[0]["status"] == "FILLED" and log[0]["source"] == "rest", f"request log[0]: {log[0]}")
        check(any(e["errorCode"] == -1022 and e["status"] == "REJECTED" for e in log), "rejected order logged")
        check(log[-2]["source"] == "admin", "admin order logged")

        # Resting limit, filled by a price move.
        st, body = signed(api, "POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                                          "timeInForce": "GTC", "quantity": "0.002",
                                                          "price": "49000", "newClientOrderId": "rest-1"})
        check(st == 200 and body["status"] == "NEW", "resting limit")
        st, body = adm.call("POST", "/admin/price", json.dumps({"symbol": "BTCUSDT", "price": "48950.5"}))
        check(st == 200, "price move")
        st, body = signed(api, "GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "rest-1"})
        check(body["status"] == "FILLED" and body["avgPrice"] == "49000", f"limit filled at its price: {body}")
        for w in (w1, w2):
            kinds = [json.loads(w.text())["e"] for _ in range(3)]
            check(kinds == ["ORDER_TRADE_UPDATE", "ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE"], "limit events")

        # Replay: byte-identical to the log.
        st, events = adm.call("GET", "/admin/events?account=leader&from_seq=1")
        check(st == 200 and [e["seq"] for e in events] == list(range(1, len(events) + 1)), "event log seqs")
        st, body = adm.call("POST", "/admin/replay", json.dumps({"account": "leader", "from_seq": 1}))
        check(st == 200 and body["sent"] == len(events), f"replay count {body}")
        replayed = [w1.text() for _ in range(len(events))]
        check([json.loads(r) for r in replayed] == [e["event"] for e in events], "replayed events equal the log")

        hedge_checks(api, adm, rest)

        # Delete the key: connections get a close frame (1000).
        st, body = api.call("DELETE", "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": LEADER_KEY})
        check(st == 200 and body == {}, "DELETE listenKey")
        for w in (w1, w2):
            while True:
                f = w.frame()
                check(f is not None and f[0] != "EOF", "close frame after DELETE")
                if f[0] == 8:
                    check(struct.unpack(">H", f[1][:2])[0] == 1000, "close code 1000")
                    break
        st, body = api.call("PUT", "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": LEADER_KEY})
        check(st == 400 and body["code"] == -1125, "PUT after DELETE -> -1125")

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
