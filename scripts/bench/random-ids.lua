-- wrk script: GET /customers/<id>/clv for customer IDs read from $IDS (one per line), in random
-- order; with $RATE_PER_CONNECTION (requests/s) each connection is paced (wrk's delay hook).
local ids = {}
for line in io.lines(os.getenv("IDS")) do
  ids[#ids + 1] = line
end
local pace = tonumber(os.getenv("RATE_PER_CONNECTION") or "0")
math.randomseed(os.time())

request = function()
  local id = ids[math.random(#ids)]
  return wrk.format("GET", "/customers/" .. id .. "/clv")
end

if pace > 0 then
  delay = function()
    return 1000 / pace
  end
end
