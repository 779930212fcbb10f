-- wrk body script: POST a different patient (one JSON body per line of a file) per request.
-- Usage: wrk ... -s bench/wrk/predict.lua URL -- <bodies file> <path> [api key]
-- Prints one JSON line of results in done() (latencies in microseconds).

local counter = 0
local threads = {}

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

local bodies = {}
local idx = 0
local path = "/predict"
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then bodies[#bodies + 1] = line end
  end
  path = args[2] or path
  if args[3] and #args[3] > 0 then headers["X-API-Key"] = args[3] end
  -- each thread starts at a different patient
  idx = ((id or 1) * 7919) % #bodies
end

function request()
  idx = idx % #bodies + 1
  return wrk.format("POST", path, headers, bodies[idx])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
