-- finish_jobs.lua: acknowledges ended executions of this broker atomically.
-- KEYS[1]   running HASH of this broker
-- KEYS[2]   max-concurrency HASH
-- KEYS[3]   concurrency HASH
-- KEYS[4]   future ZSET
-- KEYS[5]   jobs HASH (id -> "p" pending / "r" running / "x" revoked)
-- KEYS[6]   results HASH
-- KEYS[7]   result-expiry ZSET
-- KEYS[8]   progress HASH
-- KEYS[9..] queue LISTs that retried jobs go back to
-- ARGV[1]   events channel (published to when a job was re-enqueued or a concurrency slot freed)
-- ARGV[2]   results channel (the ids of the jobs that ended are published to it, space-separated)
-- ARGV[3]   now (epoch ms)
-- ARGV[4..] one group of 7 per job: job id, task name, target, job JSON, result record, result
--           TTL ms, progress flag. Target is "" (ended: succeeded or failed), an index into KEYS
--           (retry now: RPUSH the new JSON to that queue), or "f<atMs>" (retry later: ZADD the
--           new JSON to future). The record ("" for none) is kept for the TTL; flag "1" forgets
--           the job's progress.
-- Returns one integer per job: 1 when applied, 0 when the job was no longer running here (another
-- broker recovered it after this broker's lease expired: it is theirs now, nothing is done).
local running_key, max_key, cur_key, future_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local jobs_key, results_key, expiry_key, progress_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local now = tonumber(ARGV[3])
local applied, notify = {}, false
local pending, ended, records, progress = {}, {}, {}, {}
local limits = redis.call('EXISTS', max_key) == 1 -- no limited task at all: skip per-job checks
for i = 4, #ARGV, 7 do
  local id, task, target, json = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if redis.call('HDEL', running_key, id) == 1 then
    if limits and chard_release(max_key, cur_key, task) then notify = true end
    if ARGV[i + 6] == '1' then progress[#progress + 1] = id end
    if string.sub(target, 1, 1) == 'f' then
      redis.call('ZADD', future_key, string.sub(target, 2), json)
      pending[#pending + 1] = id
      notify = true
    elseif target ~= '' then
      redis.call('RPUSH', KEYS[tonumber(target)], json)
      pending[#pending + 1] = id
      notify = true
    else
      ended[#ended + 1] = id
      if ARGV[i + 4] ~= '' then records[#records + 1] = { id, ARGV[i + 4], ARGV[i + 5] } end
    end
    applied[#applied + 1] = 1
  else
    applied[#applied + 1] = 0
  end
end
if #pending > 0 then chard_hset_all(jobs_key, pending, 'p') end
if #progress > 0 then chard_chunked('HDEL', progress_key, progress) end
if #ended > 0 then
  chard_chunked('HDEL', jobs_key, ended)
  chard_keep_results(results_key, expiry_key, records, now)
  redis.call('PUBLISH', ARGV[2], table.concat(ended, ' '))
end
if notify then redis.call('PUBLISH', ARGV[1], '') end
return applied
