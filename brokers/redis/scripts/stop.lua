-- stop.lua: gives up this broker's lease if it has no running job left.
-- KEYS[1]  leases ZSET
-- KEYS[2]  running HASH (job id -> fetch token) of this broker
-- ARGV[1]  broker id
-- Returns the number of jobs still running on this broker (entries other than the fetch
-- watermark "~seq" and tombstones "x:<token>:<id>" of jobs taken over). 0: the lease and the HASH are dropped.
-- More: both are left, the lease to expire so another broker recovers those jobs (as
-- MemoryBroker.stop does). Safe to repeat.
local running = 0
local flat = redis.call('HGETALL', KEYS[2])
for k = 1, #flat, 2 do
  if flat[k] ~= '~seq' and string.sub(flat[k], 1, 2) ~= 'x:' then running = running + 1 end
end
if running == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2])
end
return running
