-- wrk script for the order ceiling (tests/bench/copy_latency.py): real POST /fapi/v1/order MARKET
-- orders on keep-alive connections, the same work the simulator does for the daemon's copies
-- (parameter parsing, book, fill, events, the RESULT response) minus the HMAC check: the
-- simulator accounts used here have "unsigned_ok": true (benchmarks only), so requests carry the
-- API key and no signature/timestamp.
--
--   wrk -t T -c C -d S -s order.lua http://HOST:PORT/fapi/v1/order -- QTY KEY1 [KEY2 ...]
--
-- Each request is unique (newClientOrderId "w<thread>x<counter>"), the API keys are used in
-- turn, and each account alternates BUY and SELL of QTY so no position grows without bound.
-- Answers that are not 200, or 200 without "FILLED", are counted and printed by done(), so a
-- refusing server cannot look fast.
local threads = {}
local tid = 0

function setup(thread)
  tid = tid + 1
  thread:set("tid", tid)
  table.insert(threads, thread)
end

local qty, keys, nkeys, cnt
bad, notfilled = 0, 0 -- globals: done() reads them with thread:get
local path = "/fapi/v1/order"

function init(args)
  qty = args[1]
  keys = {}
  for i = 2, #args do keys[#keys + 1] = args[i] end
  nkeys = #keys
  if not qty or nkeys == 0 then
    error("order.lua: arguments: QTY KEY1 [KEY2 ...]")
  end
  cnt, bad, notfilled = 0, 0, 0
end

function request()
  local k = cnt % nkeys
  local side = (math.floor(cnt / nkeys) % 2 == 0) and "BUY" or "SELL"
  local body = "symbol=BTCUSDT&side=" .. side .. "&type=MARKET&quantity=" .. qty ..
      "&newClientOrderId=w" .. tid .. "x" .. cnt .. "&newOrderRespType=RESULT&recvWindow=5000"
  cnt = cnt + 1
  return wrk.format("POST", path, {
    ["X-MBX-APIKEY"] = keys[k + 1],
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Connection"] = "keep-alive",
  }, body)
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
  elseif not string.find(body, '"status":"FILLED"', 1, true) then
    notfilled = notfilled + 1
  end
end

function done(summary, latency, requests)
  local b, nf = 0, 0
  for _, t in ipairs(threads) do
    b = b + (t:get("bad") or 0)
    nf = nf + (t:get("notfilled") or 0)
  end
  io.write(string.format("ceiling: %d requests, %d not 200, %d not FILLED, errors (connect %d, read %d, write %d, timeout %d)\n",
    summary.requests, b, nf, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout))
end
