-- stop.lua: gives up this broker's lease if it has no running job left.
-- KEYS[1]  leases ZSET
-- KEYS[2]  running HASH (job id -> fetch token) of this broker
-- KEYS[3]  unannounced HASH of this broker (see keep_alive.lua)
-- ARGV[1]  broker id
-- ARGV[2..] ids this broker announced since its last renewal (their entries are removed)
-- Returns { the number of jobs still running on this broker (entries other than the fetch
-- watermark "~seq", tombstones "x:" and "k:" and held slots), the ids of
-- jobs its recoveries ended that it never announced (a lost reply just before stopping: the
-- caller logs them; the HASH goes), the number of concurrency slots still held for task
-- functions that run on past their job's end ("s:<token>:<id>") }. No job running and no slot
-- held: the lease, the running HASH and the broker's worker info (the field ARGV[1] of the HASH
-- <p>:brokers, built from KEYS[1]'s prefix) are dropped too. Its sleep mark (the field ARGV[1] of
-- <p>:sleepers, see fetch_jobs.lua ARGV[19]) goes in any case: it fetches no more. Else both are left, the lease to expire so
-- another broker recovers those jobs and frees those slots (as MemoryBroker.stop does). Safe to
-- repeat.
local running, held = 0, 0
local flat = redis.call('HGETALL', KEYS[2])
for k = 1, #flat, 2 do
  local head = string.sub(flat[k], 1, 2)
  if head == 's:' then
    held = held + 1
  elseif flat[k] ~= '~seq' and head ~= 'x:' and head ~= 'k:' then
    running = running + 1
  end
end
local announced = {}
for i = 2, #ARGV do announced[#announced + 1] = ARGV[i] end
chard_chunked('HDEL', KEYS[3], announced)
local unannounced = redis.call('HKEYS', KEYS[3])
redis.call('DEL', KEYS[3])
redis.call('HDEL', string.sub(KEYS[1], 1, -8) .. ':sleepers', ARGV[1])
if running == 0 and held == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2])
  redis.call('HDEL', string.sub(KEYS[1], 1, -8) .. ':brokers', ARGV[1])
end
return { running, unannounced, held }
