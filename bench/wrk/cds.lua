-- wrk body script for the CDS bench: each line of a file ("<JWT>\t<hook request JSON>") is
-- posted once (a token's jti is single-use); after the first <n> answers the thread stops and
-- creates the file <marker>, on which the caller interrupts wrk (SIGINT ends its -d wait).
-- Usage: wrk -t1 -c<C> -d<max>s -s bench/wrk/cds.lua URL -- <pairs file> <path> <n> <marker>
-- The file holds n + C lines: the C spare ones are the requests still in flight at the stop.
-- Prints one JSON line in done() (latencies in microseconds).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local lines = {}
local sent = 0
local answered = 0
local wanted = 0
not_ok = 0  -- global: done() reads it with thread:get
local path = "/"
local marker = nil

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then lines[#lines + 1] = line end
  end
  path = args[2]
  wanted = tonumber(args[3])
  marker = args[4]
end

function request()
  sent = sent + 1
  local line = lines[math.min(sent, #lines)]  -- past the end: a replay, refused and counted
  local tab = line:find("\t", 1, true)
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. line:sub(1, tab - 1),
  }
  return wrk.format("POST", path, headers, line:sub(tab + 1))
end

function response(status, headers, body)
  answered = answered + 1
  -- a 200 without a card is a failure too (wrk itself counts only statuses >= 400)
  if status ~= 200 or not body:find('"cards":[{', 1, true) then not_ok = not_ok + 1 end
  if answered == wanted then
    wrk.thread:stop()
    io.open(marker, "w"):close()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local failed = 0
  for _, thread in ipairs(threads) do failed = failed + (thread:get("not_ok") or 0) end
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"failed":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, failed,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
