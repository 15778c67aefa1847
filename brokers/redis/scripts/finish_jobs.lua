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
-- Which jobs are still ours, in one HMGET, then one HDEL for all of them (not one per job): the
-- entries also give the task of a limited job. A job listed twice (an ack re-sent in the same
-- batch) is applied once, as when each line ran its own HDEL.
local lines, ids, seen = chard_lines(ARGV[4], 4), {}, {}
for i, e in ipairs(lines) do ids[i] = e[2] end
local entries = {}
for i = 1, #ids, 1000 do
  local part = redis.call('HMGET', running_key, unpack(ids, i, math.min(i + 999, #ids)))
  for j = 1, #part do entries[i + j - 1] = part[j] end
end
local ours = {}
for i, e in ipairs(lines) do
  local kind, id, entry = e[1], e[2], entries[i]
  local lower = string.lower(kind)
  if entry and not seen[id] then
    seen[id] = true
    ours[#ours + 1] = id
    local job = limits and chard_read_job(entry)
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
    applied[i] = 1
  else
    applied[i] = 0
  end
end
if #ours > 0 then chard_chunked('HDEL', running_key, ours) end
if #pending > 0 then chard_hset_all(jobs_key, pending, 'p') end
if #progress > 0 then chard_chunked('HDEL', progress_key, progress) end
if #ended > 0 then
  chard_jobs_ended(jobs_key, results_key, expiry_key, ARGV[2], ended, records, now)
end
if notify then redis.call('PUBLISH', ARGV[1], '') end
return applied
