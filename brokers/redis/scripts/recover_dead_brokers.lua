-- recover_dead_brokers.lua: takes back the running jobs of brokers whose lease expired.
-- KEYS[1]   leases ZSET
-- KEYS[2]   max-concurrency HASH
-- KEYS[3]   concurrency HASH
-- KEYS[4]   jobs HASH (job id -> job JSON)
-- KEYS[5]   results HASH
-- KEYS[6]   result-expiry ZSET
-- KEYS[7]   progress HASH
-- KEYS[8..] running SET (job ids) of each candidate broker, in the order of their ids in ARGV[7..]
-- ARGV[1]   key prefix "{chard:<ns>}": a requeued job goes to the queue named in its JSON, whose
--           key is built here as prefix..":queue:"..queue (same hash tag, same Cluster slot)
-- ARGV[2]   events channel (published to when a job was requeued)
-- ARGV[3]   now (epoch ms)
-- ARGV[4]   results channel (ids of the jobs failed here are published to it)
-- ARGV[5]   how long the record of a lost job is kept (ms)
-- ARGV[6]   the record of a lost job (lib/results.ts LOST_RECORD)
-- ARGV[7..] candidate broker ids (from keep_alive.lua)
-- A candidate whose lease is gone (already recovered) or was renewed meanwhile is skipped. Each job
-- of a dead broker is taken back (chard_take_back: slot released; retries + 1 and requeued when
-- retryable, the crash counting as an attempt; else failed; a missing or corrupt JSON forgotten),
-- then its running SET and lease go.
-- Returns { requeued JSONs (new retries), failed JSONs, corrupt entries dropped }
local leases_key, max_key, cur_key = KEYS[1], KEYS[2], KEYS[3]
local jobs_key, results_key, expiry_key, progress_key = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local prefix, now = ARGV[1], tonumber(ARGV[3])
local out = { requeued = {}, failed = {}, dropped = {}, failed_ids = {}, lost_ids = {} }
for i = 7, #ARGV do
  local id, running_key = ARGV[i], KEYS[i + 1]
  local lease = redis.call('ZSCORE', leases_key, id)
  if lease and tonumber(lease) < now then
    local ids = redis.call('SMEMBERS', running_key)
    local jsons = chard_chunked_list('HMGET', jobs_key, ids)
    for k = 1, #ids do
      chard_take_back(ids[k], jsons[k], prefix, jobs_key, max_key, cur_key, out)
    end
    redis.call('DEL', running_key)
    redis.call('ZREM', leases_key, id)
  end
end
if #out.requeued > 0 then redis.call('PUBLISH', ARGV[2], '') end
if #out.lost_ids > 0 then chard_chunked('HDEL', jobs_key, out.lost_ids) end
if #out.failed > 0 then
  chard_chunked('HDEL', progress_key, out.failed_ids)
  chard_jobs_ended(jobs_key, results_key, expiry_key, ARGV[4], out.failed_ids, nil, now, ARGV[6], ARGV[5])
end
return { out.requeued, out.failed, out.dropped }
