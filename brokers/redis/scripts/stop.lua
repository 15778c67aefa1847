-- stop.lua: gives up this broker's lease if it has no running job left.
-- KEYS[1]  leases ZSET
-- KEYS[2]  running HASH (job id -> fetch token) of this broker
-- KEYS[3]  unannounced HASH of this broker (see keep_alive.lua)
-- ARGV[1]  broker id
-- ARGV[2..] ids this broker announced since its last renewal (their entries are removed)
-- Returns { the number of jobs still running on this broker (entries other than the fetch
-- watermark "~seq" and tombstones "x:<token>:<id>" of jobs taken over), the ids of jobs its
-- recoveries ended that it never announced (a lost reply just before stopping: the caller logs
-- them; the HASH goes) }. No job running: the lease and the running HASH are dropped too.
-- Else both are left, the lease to expire so another broker recovers
-- those jobs (as MemoryBroker.stop does). Safe to repeat.
local running = 0
local flat = redis.call('HGETALL', KEYS[2])
for k = 1, #flat, 2 do
  if flat[k] ~= '~seq' and string.sub(flat[k], 1, 2) ~= 'x:' then running = running + 1 end
end
local announced = {}
for i = 2, #ARGV do announced[#announced + 1] = ARGV[i] end
chard_chunked('HDEL', KEYS[3], announced)
local unannounced = redis.call('HKEYS', KEYS[3])
redis.call('DEL', KEYS[3])
if running == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2])
end
return { running, unannounced }
