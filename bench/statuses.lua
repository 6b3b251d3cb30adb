-- Shared by the POST scripts of scripts/bench.sh: counts the answers by status and error code and prints
-- them when wrk is done, one "status <code> <error code or -> <count>" line each, after wrk's report.
-- (Each wrk thread runs its own Lua state; done() reads their tallies through thread:get.)
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  tally = {}
end

function response(status, headers, body)
  local code = "-"
  if status >= 400 and body then code = body:match('"code"%s*:%s*"([^"]+)"') or "-" end
  local key = status .. " " .. code
  tally[key] = (tally[key] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("tally") or {}
    for key, count in pairs(counts) do total[key] = (total[key] or 0) + count end
  end
  for key, count in pairs(total) do io.write(string.format("status %s %d\n", key, count)) end
end
