-- stop.lua: gives up this broker's lease if it has no running job left.
-- KEYS[1]  leases ZSET
-- KEYS[2]  running SET (job ids) of this broker
-- ARGV[1]  broker id
-- Returns the number of jobs still running on this broker. 0: the lease was dropped. More: the
-- lease is left to expire so another broker recovers those jobs (as MemoryBroker.stop does).
local running = redis.call('SCARD', KEYS[2])
if running == 0 then redis.call('ZREM', KEYS[1], ARGV[1]) end
return running
