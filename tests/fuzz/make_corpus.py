#!/usr/bin/env python3
"""make_corpus: (re)writes the seed corpora tests/fuzz/corpus/<harness>/ and the dictionaries
tests/fuzz/dict/<harness>.dict from tests/data/samples (the copy of ../shared/samples), the
configuration files (config/*.yaml, tests/data/config) and a few hand-written inputs.
Run it after adding samples; scripts/fuzz only reads what it wrote. Deterministic output."""
import json, os, re, shutil, struct, sys

top = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
samples = os.path.join(top, 'tests', 'data', 'samples')
out = os.path.join(top, 'tests', 'fuzz', 'corpus')
dictdir = os.path.join(top, 'tests', 'fuzz', 'dict')

def sample(name):
    with open(os.path.join(samples, name), 'rb') as f:
        return f.read()

def jcompact(b):
    return json.dumps(json.loads(b), separators=(',', ':')).encode()

corp = {}
def add(h, name, data):
    corp.setdefault(h, {})[name] = data

def samples_like(pat):
    return sorted(n for n in os.listdir(samples) if re.fullmatch(pat, n))

# ---- streams: frames as received ----
for n in samples_like(r'binance_(order_trade_update.*|account_update\.cleaned|account_config_update_.*|'
                      r'listen_key_expired|trade_lite\.cleaned|ws_.*)\.json'):
    add('binance_stream', n, sample(n))
    add('binance_stream', 'compact_' + n, jcompact(sample(n)))
# The fill itself (the docs' sample is a NEW): what the copy path reads, with yajl first and
# jansson's tree as the check (fuzz_binance_stream compares them).
for k, (x, st, ps, r) in enumerate((('TRADE', 'FILLED', 'BOTH', False), ('TRADE', 'PARTIALLY_FILLED', 'LONG', True))):
    ev = json.loads(sample('binance_order_trade_update.json'))
    ev['o'].update({'x': x, 'X': st, 'ps': ps, 'R': r, 't': 123456 + k, 'l': '0.001', 'L': '7103.04',
                    'z': '0.001', 'o': 'MARKET', 'ot': 'MARKET'})
    add('binance_stream', 'trade_%d.json' % k, json.dumps(ev, separators=(',', ':')).encode())
for n in samples_like(r'bybit_(execution|order|position|wallet|ws_.*)\.json'):
    add('bybit_stream', n, sample(n))
    add('bybit_stream', 'compact_' + n, jcompact(sample(n)))

# ---- Binance REST: selector byte + body (numbers: enum BR_* in fuzz_binance_rest.c) ----
BR = dict(ERROR=0, ORDER=1, INSTRUMENTS=2, POSITIONS=3, RISK_MODE=4, LEVERAGES=5, ACCOUNT=6,
          TICKERS=7, POSITION_MODE=8, SET_LEVERAGE=9, SERVER_TIME=10, LISTEN_KEY=11,
          USER_TRADES=12, ORDER_INFO=13, BOOK_TICKERS=14, CLASSIFY_PLACE=15, CLASSIFY_QUERY=16,
          CLASSIFY_CANCEL=17, CLASSIFY_BATCH=18, STATUS=19, FILLS=20)
user_trades = json.dumps([
    {"buyer": False, "commission": "-0.07819010", "commissionAsset": "USDT", "id": 698759,
     "maker": False, "orderId": 1917641, "price": "7819.01", "qty": "0.002",
     "quoteQty": "15.63802", "realizedPnl": "-0.91539999", "side": "SELL",
     "positionSide": "SHORT", "symbol": "BTCUSDT", "time": 1569514978020},
    {"buyer": False, "commission": "-0.07819010", "commissionAsset": "USDT", "id": 698760,
     "maker": True, "orderId": 1917641, "price": "7819.02", "qty": "0.001",
     "quoteQty": "7.81902", "realizedPnl": "0", "side": "SELL",
     "positionSide": "SHORT", "symbol": "BTCUSDT", "time": 1569514978021}]).encode()
def br(mode, name, body):
    add('binance_rest', name, bytes([BR[mode]]) + body)
br('ERROR', 'error', sample('binance_error_payload.json'))
for n in ('binance_new_order_response.json', 'binance_query_order_response.json',
          'binance_cancel_order_response.json'):
    br('ORDER', 'order_' + n, sample(n))
    br('ORDER_INFO', 'info_' + n, sample(n))
for n in ('binance_exchangeinfo.cleaned.json', 'binance_exchangeinfo_filters.json'):
    br('INSTRUMENTS', 'instr_' + n, sample(n))
for n in samples_like(r'binance_position_risk_v[23]_.*\.json'):
    br('POSITIONS', 'pos_' + n, sample(n))
    if '_v2_' in n:
        br('RISK_MODE', 'mode_' + n, sample(n))
        br('LEVERAGES', 'lev_' + n, sample(n))
br('ACCOUNT', 'account_v3', sample('binance_account_v3_single_asset.cleaned.json'))
for n in ('binance_ticker_price_v2_all.json', 'binance_ticker_price_v2_single.json'):
    br('TICKERS', 'tick_' + n, sample(n))
br('POSITION_MODE', 'dual_true', b'{"dualSidePosition": true}')
br('POSITION_MODE', 'dual_false', b'{"dualSidePosition":false}')
br('SET_LEVERAGE', 'set_lev', sample('binance_change_leverage_response.json'))
br('SERVER_TIME', 'time', b'{"serverTime": 1499827319559}')
for n in ('binance_listenkey_start_response.json', 'binance_listenkey_keepalive_response.json'):
    br('LISTEN_KEY', 'lk_' + n, sample(n))
br('USER_TRADES', 'user_trades', user_trades)
br('BOOK_TICKERS', 'book', sample('binance_book_ticker_rest_single.json'))
br('BOOK_TICKERS', 'book_arr', b'[' + sample('binance_book_ticker_rest_single.json') + b']')
def ctl(status, err=0, sent=True, retry=0):
    return bytes([err | (8 if sent else 0)]) + struct.pack('<H', status) + bytes([retry])
hdr = b'Content-Type: application/json\r\nX-MBX-USED-WEIGHT-1M: 10\r\n\r\n'
for mode in ('CLASSIFY_PLACE', 'CLASSIFY_QUERY', 'CLASSIFY_CANCEL'):
    m = mode.lower()
    br(mode, m + '_200', ctl(200) + hdr + sample('binance_new_order_response.json'))
    br(mode, m + '_400', ctl(400) + hdr + sample('binance_error_payload.json'))
    br(mode, m + '_2013', ctl(400) + hdr + b'{"code":-2013,"msg":"Order does not exist."}')
    br(mode, m + '_2011', ctl(400) + hdr + b'{"code":-2011,"msg":"Unknown order sent."}')
    br(mode, m + '_429', ctl(429, retry=5) + b'Retry-After: 5\r\n\r\n' + b'{"code":-1003,"msg":"Too many requests"}')
    br(mode, m + '_503', ctl(503) + hdr + b'{"code":-1000,"msg":"Unknown error, please check your request or try again later."}')
    br(mode, m + '_timeout', ctl(0, err=4) + b'')
    br(mode, m + '_notsent', ctl(0, err=5, sent=False) + b'')
br('CLASSIFY_BATCH', 'batch_2', b'\x01' + ctl(200) + hdr + sample('binance_batch_orders_response.json'))
br('CLASSIFY_BATCH', 'batch_err', b'\x01' + ctl(400) + hdr + sample('binance_error_payload.json'))
br('STATUS', 'status_200', ctl(200) + hdr + b'{}')
br('STATUS', 'status_418', ctl(418, retry=60) + b'Retry-After: 60\r\n\r\n')
br('STATUS', 'status_400', ctl(400) + hdr + sample('binance_error_payload.json'))
br('FILLS', 'fills', user_trades + b'\0' + sample('binance_query_order_response.json'))

# ---- Bybit REST (enum YR_* in fuzz_bybit_rest.c) ----
YR = dict(ENVELOPE=0, ACK=1, ORDER_LIST=2, BATCH=3, INSTRUMENTS=4, POSITIONS=5, SERVER_TIME=6,
          WALLET=7, TICKERS=8, BOOK_TICKERS=9, EXECUTIONS=10, CLASSIFY_PLACE=11,
          CLASSIFY_QUERY=12, CLASSIFY_CANCEL=13, STATUS=14, USAGE=15, STATUS_WORD=16, EXEC_MODE=17)
def yr(mode, name, body):
    add('bybit_rest', name, bytes([YR[mode]]) + body)
ex = json.loads(sample('bybit_execution.json'))
exec_list = json.dumps({"retCode": 0, "retMsg": "OK", "result": {"nextPageCursor": "132766%3A2%2C132766%3A2",
                        "category": "linear", "list": ex["data"]}, "retExtInfo": {}, "time": 1672221263862}).encode()
yr('ENVELOPE', 'env', sample('bybit_common_response_envelope.json'))
yr('ENVELOPE', 'env_err', b'{"retCode":10006,"retMsg":"Too many visits!","result":{},"retExtInfo":{},"time":1672211928338}')
for n in ('bybit_create_order_response.json', 'bybit_cancel_order_response.json'):
    yr('ACK', 'ack_' + n, sample(n))
yr('ORDER_LIST', 'list', sample('bybit_open_order_realtime_response.json'))
yr('BATCH', 'batch', b'\x01' + sample('bybit_batch_place_response.json'))
for n in samples_like(r'bybit_instruments_info_linear_.*\.cleaned\.json'):
    yr('INSTRUMENTS', 'instr_' + n, sample(n))
yr('POSITIONS', 'pos', sample('bybit_position_list_response_inverse.json'))
yr('SERVER_TIME', 'time', sample('bybit_server_time_response.json'))
yr('WALLET', 'wallet', sample('bybit_wallet_balance_response.json'))
yr('TICKERS', 'tick', sample('bybit_tickers_rest_inverse.json'))
yr('BOOK_TICKERS', 'book', sample('bybit_tickers_rest_inverse.json'))
yr('EXECUTIONS', 'execs', exec_list)
yr('EXEC_MODE', 'execs_hedge', b'\x01' + exec_list)
yhdr = b'Content-Type: application/json\r\nX-Bapi-Limit: 10\r\nX-Bapi-Limit-Status: 9\r\nX-Bapi-Limit-Reset-Timestamp: 1700000000500\r\n\r\n'
for mode in ('CLASSIFY_PLACE', 'CLASSIFY_QUERY', 'CLASSIFY_CANCEL'):
    m = mode.lower()
    yr(mode, m + '_ok', ctl(200) + yhdr + sample('bybit_create_order_response.json'))
    yr(mode, m + '_list', ctl(200) + yhdr + sample('bybit_open_order_realtime_response.json'))
    yr(mode, m + '_10006', ctl(200) + yhdr + b'{"retCode":10006,"retMsg":"Too many visits!","result":{},"retExtInfo":{},"time":1}')
    yr(mode, m + '_110001', ctl(200) + yhdr + b'{"retCode":110001,"retMsg":"order not exists or too late to cancel","result":{},"retExtInfo":{},"time":1}')
    yr(mode, m + '_403', ctl(403) + b'\r\n\r\naccess too frequent')
    yr(mode, m + '_timeout', ctl(0, err=4))
yr('STATUS', 'status_ok', ctl(200) + yhdr + sample('bybit_set_leverage_response.json'))
yr('STATUS', 'status_err', ctl(200) + yhdr + b'{"retCode":110043,"retMsg":"leverage not modified","result":{},"retExtInfo":{},"time":1}')
yr('USAGE', 'usage', ctl(200) + yhdr + b'{}')
for w in (b'New', b'PartiallyFilled', b'Filled', b'Cancelled', b'PartiallyFilledCanceled', b'Rejected', b'Untriggered'):
    yr('STATUS_WORD', 'word_' + w.decode(), w)

# ---- config: main file [NUL trader file] ----
cfgs = []
for d in (os.path.join(top, 'config'), os.path.join(top, 'tests', 'data', 'config')):
    for root, _, files in os.walk(d):
        for n in sorted(files):
            if n.endswith(('.yaml', '.yml')) and 'alerts' not in n and 'secrets' not in root:
                p = os.path.join(root, n)
                cfgs.append((os.path.relpath(p, top).replace('/', '_'), open(p, 'rb').read()))
for name, data in sorted(cfgs):
    add('config', name, data)
main = open(os.path.join(top, 'tests', 'data', 'config', 'traders', 'main.yaml'), 'rb').read()
tdir = os.path.join(top, 'tests', 'data', 'config', 'traders', 'traders.d')
if os.path.isdir(tdir):
    for n in sorted(os.listdir(tdir)):
        if n.endswith('.yaml'):
            add('config', 'with_trader_' + n, main + b'\0' + open(os.path.join(tdir, n), 'rb').read())

# ---- decimal: one to four strings, '\n'-separated ----
for i, s in enumerate([b'0', b'-0', b'123', b'-0.001', b'123456.78', b'0001.5000', b'+7.25',
                       b'9223372036854775807', b'-9223372036854775807', b'9223372036854775808',
                       b'0.000000000000000001', b'0.0000000000000000001', b'922337203.6854775807',
                       b'1.', b'.5', b'1e5', b' 1', b'nan',
                       b'1.5\n0.1', b'-2.75\n0.01\n3', b'100\n0.5\n7\n0.001',
                       b'92233720368.54775807\n0.00000001\n0.1\n0.001', b'0.3\n0.1\n-0.7\n0.05']):
    add('decimal', 'd%02d' % i, s)

# ---- spool (format in fuzz_spool.c) ----
def rec(seq, payload, typ=1, ctl=0, us=1700000000000000):
    return bytes([ctl]) + struct.pack('<IIHHQQI', 0, len(payload), typ, 0, seq, us, 0) + payload
def seg(step, first, body):
    return bytes([step, first]) + struct.pack('<H', len(body)) + body
r3 = rec(1, b'{"fill":1}') + rec(2, b'intent') + rec(3, b'')
add('spool', 'one_segment', b'\x00' + seg(1, 1, r3))
add('spool', 'salvage', b'\x01' + seg(1, 1, rec(1, b'a') + rec(2, b'b', ctl=1) + rec(3, b'c')))
add('spool', 'torn_tail', b'\x00' + seg(1, 1, r3 + rec(4, b'torn payload', ctl=4)[:-5]))
add('spool', 'acked', b'\x04' + struct.pack('<Q', 2) + seg(1, 1, r3))
add('spool', 'two_segments', b'\x10' + seg(1, 1, r3) + seg(1, 4, rec(4, b'x') + rec(5, b'y')))
add('spool', 'gap', b'\x10' + seg(1, 1, r3) + seg(1, 5, rec(5, b'x')))
add('spool', 'missing_segment', b'\x10' + seg(1, 1, r3) + seg(2, 4, rec(4, b'x')))
add('spool', 'raw_garbage', b'\x02' + seg(1, 0, b'CTSPOOL\n' + b'\x01\x00\x00\x00' + b'\0' * 40))

# ---- http: raw bytes on one connection ----
reqs = [
    b'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
    b'GET /health/live HTTP/1.1\r\nHost: x\r\n\r\nGET /health/ready HTTP/1.1\r\nHost: x\r\n\r\n',
    b'HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n',
    b'GET /state?x=1&y=%20z HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    b'POST /rules/r1/pause HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n',
    b'POST /rules/bob-copies-alice/reset HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}',
    b'POST /echo?a=b HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world',
    b'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    b'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
    b'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\nabc',
    b'PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx',
    b'DELETE /rules/r1/pause HTTP/1.1\r\nHost: x\r\n\r\n',
    b'GET /nope HTTP/1.1\r\nHost: x\r\n\r\n',
    b'GET /echo?f HTTP/1.1\r\nHost: x\r\n\r\n',
    b'GET /echo?text/html HTTP/1.1\r\nHost: x\r\n\r\n',
    b'GET /big HTTP/1.1\r\nHost: x\r\n\r\n',
    b'GET /metrics HTTP/1.0\r\n\r\n',
    b'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    b'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n',
    b'GET /%2e%2e/metrics HTTP/1.1\r\nHost: x\r\n\r\n',
]
for i, r in enumerate(reqs):
    add('http', 'req%02d' % i, r)

# ---- fixed findings: fixed/<harness>-<what> stays in its harness's corpus ----
fixed = os.path.join(top, 'tests', 'fuzz', 'fixed')
for n in sorted(os.listdir(fixed)) if os.path.isdir(fixed) else []:
    h = n.split('-', 1)[0]
    with open(os.path.join(fixed, n), 'rb') as f:
        add(h, 'fixed-' + n, f.read())

# ---- write ----
if os.path.isdir(out):
    shutil.rmtree(out)
for h, files in sorted(corp.items()):
    d = os.path.join(out, h)
    os.makedirs(d)
    for n, data in sorted(files.items()):
        with open(os.path.join(d, n), 'wb') as f:
            f.write(data)

# ---- dictionaries: JSON keys and enum words of the samples; YAML keys; HTTP tokens ----
def keys_of(files):
    ks = set()
    for n in files:
        t = sample(n).decode('utf-8', 'replace')
        ks.update(re.findall(r'"([A-Za-z_][A-Za-z0-9_]{0,40})"\s*:', t))
        ks.update(re.findall(r':\s*"([A-Z][A-Za-z_]{1,30})"', t))
    return ks
def esc(s):
    return ''.join(c if 32 <= ord(c) < 127 and c not in '\\"' else '\\x%02x' % ord(c)
                   for c in s)
def write_dict(name, words):
    os.makedirs(dictdir, exist_ok=True)
    with open(os.path.join(dictdir, name + '.dict'), 'w') as f:
        f.write('# generated by tests/fuzz/make_corpus.py\n')
        for i, w in enumerate(sorted(words)):
            f.write('k%d="%s"\n' % (i, esc(w)))
bn = keys_of(samples_like(r'binance_.*\.json'))
by = keys_of(samples_like(r'bybit_.*\.json'))
jsonish = {'{', '}', '[', ']', '":"', '","', 'null', 'true', 'false', '""', '"0"', '"-1"', '1e308'}
write_dict('binance_stream', {'"%s"' % k for k in bn} | jsonish)
write_dict('binance_rest', {'"%s"' % k for k in bn} | jsonish)
write_dict('bybit_stream', {'"%s"' % k for k in by} | jsonish)
write_dict('bybit_rest', {'"%s"' % k for k in by} | jsonish | {'Retry-After: ', 'X-Bapi-Limit-Reset-Timestamp: ', '\r\n'})
ykeys = set()
for _, data in cfgs:
    ykeys.update(re.findall(r'^\s*-?\s*([a-z_]+):', data.decode('utf-8', 'replace'), re.M))
write_dict('config', {k + ': ' for k in ykeys} | {'\n  - ', '\n    ', '!!', '&a', '*a', '<<: ', '"', "'", '[', ']', '{', '}', '---\n', '...\n', '~', '0.0001', 'unix:/', '127.0.0.1:'})
write_dict('decimal', {'.', '-', '+', '0', '9', '\n', '000000000', '999999999', '9223372036854775807', '0.000000000000000001'})
write_dict('http', {'GET ', 'POST ', 'HEAD ', 'PUT ', 'DELETE ', 'OPTIONS ', 'PATCH ', ' HTTP/1.1\r\n', ' HTTP/1.0\r\n', '\r\n\r\n',
                    'Content-Length: ', 'Transfer-Encoding: chunked\r\n', 'Connection: close\r\n', 'Connection: keep-alive\r\n',
                    'Host: x\r\n', 'Expect: 100-continue\r\n', 'Upgrade: h2c\r\n', '/metrics', '/health/live', '/health/ready',
                    '/state', '/rules/r1/pause', '/rules/r1/resume', '/rules/bob-copies-alice/reset', '/echo', '/big', '?', '&', '%00', '%2F', '=',
                    'Cookie: ', 'Authorization: ', 'Range: bytes=0-1\r\n'})
print('corpora:', {h: len(f) for h, f in sorted(corp.items())})
