-- wrk script: each thread asks one instance directly for the customers whose partitions it owns,
-- as a client that routes by /cluster's partition map does. $OWNERS: a file of lines
-- "<host:port> <file of customer IDs>", one per instance; run wrk with as many threads (-t).
local targets = {}
for line in io.lines(os.getenv("OWNERS")) do
  local addr, file = line:match("(%S+)%s+(%S+)")
  targets[#targets + 1] = { addr, file }
end
local threads = 0

function setup(thread)
  threads = threads + 1
  local target = targets[(threads - 1) % #targets + 1]
  local host, port = target[1]:match("([^:]+):(%d+)")
  thread.addr = wrk.lookup(host, port)[1]
  thread:set("ids_file", target[2])
end

function init(args)
  ids = {}
  for line in io.lines(ids_file) do
    ids[#ids + 1] = line
  end
  math.randomseed(os.time())
end

request = function()
  return wrk.format("GET", "/customers/" .. ids[math.random(#ids)] .. "/clv")
end
