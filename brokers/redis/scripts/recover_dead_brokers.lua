-- recover_dead_brokers.lua: takes back the running jobs of brokers whose lease expired.
-- KEYS[1]   leases ZSET
-- KEYS[2]   max-concurrency HASH
-- KEYS[3]   concurrency HASH
-- KEYS[4..] running HASH of each candidate broker, in the order of their ids in ARGV
-- ARGV[1]   key prefix "{chard:<ns>}": a requeued job goes to the queue named in its JSON, whose
--           key is built here as prefix..":queue:"..queue (same hash tag, same Cluster slot)
-- ARGV[2]   events channel (published to when a job was requeued)
-- ARGV[3]   now (epoch ms)
-- ARGV[4..] candidate broker ids (from keep_alive.lua)
-- A candidate whose lease is gone (already recovered) or was renewed meanwhile is skipped. Each job
-- of a dead broker is taken back (chard_take_back: slot released; retries + 1 and requeued when
-- retryable, the crash counting as an attempt; else failed), then its running hash and lease go.
-- Returns { requeued JSONs (new retries), failed JSONs, corrupt entries dropped }
local leases_key, max_key, cur_key = KEYS[1], KEYS[2], KEYS[3]
local prefix, now = ARGV[1], tonumber(ARGV[3])
local out = { requeued = {}, failed = {}, dropped = {} }
for i = 4, #ARGV do
  local id, running_key = ARGV[i], KEYS[i]
  local lease = redis.call('ZSCORE', leases_key, id)
  if lease and tonumber(lease) < now then
    for _, json in ipairs(redis.call('HVALS', running_key)) do
      chard_take_back(json, prefix, max_key, cur_key, out)
    end
    redis.call('DEL', running_key)
    redis.call('ZREM', leases_key, id)
  end
end
if #out.requeued > 0 then redis.call('PUBLISH', ARGV[2], '') end
return { out.requeued, out.failed, out.dropped }
