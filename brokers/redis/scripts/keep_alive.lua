-- keep_alive.lua: renews this broker's lease and lists brokers whose lease expired.
-- KEYS[1]  leases ZSET (broker id -> lease expiry ms)
-- KEYS[2]  running HASH of this broker (kept from expiring when the lease was lost: see
--          recover_dead_brokers.lua)
-- ARGV[1]  broker id
-- ARGV[2]  now (epoch ms)
-- ARGV[3]  new lease expiry (now + leaseMs)
-- Returns { leaseLost (1 when this broker's lease was missing or already expired, so others may
--           have recovered its jobs), up to 10 ids of other brokers whose lease expired }
-- The caller recovers the expired brokers with recover_dead_brokers.lua, passing their running
-- HASHes in KEYS; that script checks the leases again. Safe to repeat.
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
local lost = 0
if not old or tonumber(old) < tonumber(ARGV[2]) then
  lost = 1
  redis.call('PERSIST', KEYS[2])
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
local result = { lost }
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0, 11)) do
  if id ~= ARGV[1] and #result <= 10 then result[#result + 1] = id end
end
return result
