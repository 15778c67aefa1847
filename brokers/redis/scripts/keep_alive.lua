-- keep_alive.lua: renews this broker's lease, lists brokers whose lease expired, hands back the
-- recoveries this broker applied but has not announced yet, and removes expired result records.
-- KEYS[1]  leases ZSET (broker id -> lease expiry ms)
-- KEYS[2]  running HASH of this broker (kept from expiring when the lease was lost: see
--          recover_dead_brokers.lua)
-- KEYS[3]  unannounced HASH of this broker (job id -> "f"/"c" + JSON of a job it failed or
--          cancelled in recover_dead_brokers.lua)
-- KEYS[4]  results HASH
-- KEYS[5]  result-expiry ZSET
-- ARGV[1]  broker id
-- ARGV[2]  now (epoch ms)
-- ARGV[3]  new lease expiry (now + leaseMs)
-- ARGV[4]  at most this many expired result records are removed
-- ARGV[5]  the stores' bounds (see finish_jobs.lua ARGV[10]): each store is trimmed to them, at
--          most 100 records per store per renewal (chard_trim_store), counted (<p>:counts)
-- ARGV[6]  "1" when the broker believes its pool sleeps (its sleep mark, see fetch_jobs.lua
--          ARGV[19]): the mark is written again (the field ARGV[1] of <p>:sleepers, built from
--          KEYS[1]'s prefix), so a mark dropped by anything else (a flushed server) is back within
--          a renewal period; "" otherwise
-- ARGV[7..] ids this broker announced since (their entries are removed first)
-- Returns { leaseLost (1 when this broker's lease was missing or already expired, so others may
--           have recovered its jobs), up to 10 ids of other brokers whose lease expired,
--           the entries still unannounced, flat: id, entry, id, entry...,
--           how many expired result records were removed }
-- An entry is still there only when the reply of the recovery that wrote it never reached the
-- broker (or the broker has not confirmed it yet): the broker announces those it did not
-- announce before. The caller recovers the expired brokers with recover_dead_brokers.lua, passing
-- their running HASHes in KEYS; that script checks the leases again.
-- Up to ARGV[4] result records whose expiry has passed are removed (chard_trim_results): the
-- calls that store records remove more than they add, and this removes what expires once no call
-- stores records any more (every task keepResult: false, or no traffic); when it removed ARGV[4],
-- the broker goes on with trim_results.lua. Safe to repeat: a record removed is one
-- read_result.lua already reads as gone, and a second run finds fewer to remove.
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
local lost = 0
if not old or tonumber(old) < tonumber(ARGV[2]) then
  lost = 1
  redis.call('PERSIST', KEYS[2])
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
local expired = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0, 11)) do
  if id ~= ARGV[1] and #expired < 10 then expired[#expired + 1] = id end
end
local announced = {}
for i = 7, #ARGV do announced[#announced + 1] = ARGV[i] end
if ARGV[6] == '1' then redis.call('HSET', string.sub(KEYS[1], 1, -8) .. ':sleepers', ARGV[1], ARGV[2]) end
chard_chunked('HDEL', KEYS[3], announced)
local trimmed = chard_trim_results(KEYS[4], KEYS[5], tonumber(ARGV[2]), ARGV[4])
local bounds, prefix, tally = chard_read_bounds(ARGV[5]), string.sub(KEYS[1], 1, -8), {}
if bounds then
  chard_trim_store(prefix, 'f', bounds.f, tonumber(ARGV[2]), 100, tally)
  chard_trim_store(prefix, 's', bounds.s, tonumber(ARGV[2]), 100, tally)
  chard_write_tally(prefix, tally)
end
return { lost, expired, redis.call('HGETALL', KEYS[3]), trimmed }
