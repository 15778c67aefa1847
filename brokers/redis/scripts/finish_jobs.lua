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
-- ARGV[4]   the jobs, one line each, led by its kind (the common case is "e <id>"):
--             e <id>                     ended (succeeded or failed), nothing kept
--             r <id> <ttlMs> <record>    ended, its result record kept for ttlMs
--             q <id> <keyIndex> <json>   retry now: RPUSH the new JSON to KEYS[keyIndex]
--             f <id> <atMs> <json>       retry later: ZADD the new JSON to future at atMs
--           An upper-case kind (E, R, Q, F) also forgets the job's progress. A job of a limited
--           task releases its slot; its task is read from the running entry.
-- Returns one integer per job: 1 when applied, 0 when the job was no longer running here (another
-- broker recovered it after this broker's lease expired: it is theirs now, nothing is done).
local running_key, max_key, cur_key, future_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local jobs_key, results_key, expiry_key, progress_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local now = tonumber(ARGV[3])
local applied, notify = {}, false
local pending, ended, records, progress = {}, {}, {}, {}
local limits = redis.call('EXISTS', max_key) == 1 -- no limited task at all: skip per-job checks
for _, e in ipairs(chard_lines(ARGV[4], 4)) do
  local kind, id = e[1], e[2]
  local lower = string.lower(kind)
  local entry = limits and redis.call('HGET', running_key, id)
  if redis.call('HDEL', running_key, id) == 1 then
    local job = entry and chard_read_job(entry)
    if job and chard_release(max_key, cur_key, job.task) then notify = true end
    if kind ~= lower then progress[#progress + 1] = id end
    if lower == 'f' then
      redis.call('ZADD', future_key, e[3], e[4])
      pending[#pending + 1] = id
      notify = true
    elseif lower == 'q' then
      redis.call('RPUSH', KEYS[tonumber(e[3])], e[4])
      pending[#pending + 1] = id
      notify = true
    else
      ended[#ended + 1] = id
      if lower == 'r' then records[#records + 1] = { id, e[4], e[3] } end
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
