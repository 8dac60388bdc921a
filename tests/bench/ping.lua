-- wrk script for the ceiling measurement (tests/bench/copy_latency.py): GET /fapi/v1/ping on
-- keep-alive connections; counts answers that are not 200 so a refusing server cannot look fast.
wrk.method = "GET"
wrk.headers["Connection"] = "keep-alive"
local bad = 0
response = function(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format("ceiling: %d requests, %d errors (connect %d, read %d, write %d, timeout %d)\n",
    summary.requests, summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout))
end
