-- delete_jobs.lua: deletes jobs, atomically per job (Broker.deleteJobs).
-- KEYS[1]   jobs HASH (job id -> job JSON)
-- KEYS[2]   future ZSET
-- KEYS[3]   revoked SET
-- KEYS[4]   leases ZSET (a job in a leased broker's running HASH is running: left alone)
-- KEYS[5]   ended HASH (job id -> ended record)
-- KEYS[6]   failed ZSET
-- KEYS[7]   succeeded ZSET
-- KEYS[8]   results HASH
-- KEYS[9]   result-expiry ZSET
-- KEYS[10]  progress HASH
-- KEYS[11]  max-concurrency HASH (the flags of lane levels)
-- ARGV[1]   key prefix "{chard:<ns>}": queues, levels, lanes, key records and running HASHes are
--           built here from it (same hash tag, same Cluster slot)
-- ARGV[2]   results channel (the ids of the jobs deleted before they ran are published to it)
-- ARGV[3]   now (epoch ms)
-- ARGV[4]   the record of a revoked job (lib/results.ts REVOKED_RECORD)
-- ARGV[5]   how long that record is kept (ms)
-- ARGV[6..] the job ids
-- A job not started (waiting, retrying, queued, revoked) is taken out of the future set or its
-- list (chard_unqueue), forgotten, and ends as revoked: its record kept, its key released or
-- given its ttl, its id announced on the results channel. A failed or succeeded one leaves its
-- store (and its result record goes). Each counted out of its state. Applied twice, the second
-- finds nothing.
-- Returns a flat list, per id: the state it was deleted from ("waiting", "retrying", "queued",
-- "revoked", "failed", "succeeded"), "running" (left alone) or "missing"; and its JSON (a job not
-- ended) or false.
local prefix, now, tally, out, ended = ARGV[1], tonumber(ARGV[3]), {}, {}, {}
for i = 6, #ARGV do
  local id = ARGV[i]
  local json = redis.call('HGET', KEYS[1], id)
  local from, kept = 'missing', false
  if json then
    local live = chard_live_state(KEYS[3], KEYS[4], prefix, id)
    local job = chard_read_job(json)
    if live == 'running' then
      from, kept = 'running', json
    else
      local letter = 'q'
      if redis.call('ZREM', KEYS[2], id) == 1 then
        letter = job and chard_wait_letter(job) or 'w'
        from = letter == 'r' and 'retrying' or 'waiting'
      else
        from = 'queued'
        if job then chard_unqueue(prefix, KEYS[11], id, job) end
      end
      if live == 'revoked' then
        from = 'revoked'
        redis.call('SREM', KEYS[3], id)
      end
      if job then
        chard_tally(tally, letter, job, -1)
        if job.key then chard_key_ended(prefix, job.key, id, now) end
      end
      redis.call('HDEL', KEYS[10], id)
      ended[#ended + 1] = id
      kept = json
    end
  else
    local record = redis.call('HGET', KEYS[5], id)
    if record then
      local letter = redis.call('ZREM', KEYS[6], id) == 1 and 'f' or 's'
      if letter == 's' then redis.call('ZREM', KEYS[7], id) end
      from = letter == 'f' and 'failed' or 'succeeded'
      local stored = chard_ended_job(record)
      local job = stored and chard_read_job(stored)
      if job then chard_tally(tally, letter, job, -1) end
      redis.call('HDEL', KEYS[5], id)
      redis.call('HDEL', KEYS[8], id)
      redis.call('ZREM', KEYS[9], id)
    end
  end
  out[#out + 1] = from
  out[#out + 1] = kept
end
chard_write_tally(prefix, tally)
if #ended > 0 then chard_jobs_ended(KEYS[1], KEYS[8], KEYS[9], ARGV[2], ended, nil, now, ARGV[4], ARGV[5]) end
return out
