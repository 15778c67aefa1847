-- finish_jobs.lua: acknowledges ended executions of this broker atomically.
-- KEYS[1]   running HASH of this broker
-- KEYS[2]   max-concurrency HASH
-- KEYS[3]   concurrency HASH
-- KEYS[4]   future ZSET
-- KEYS[5..] queue LISTs that retried jobs go back to
-- ARGV[1]   events channel (published to when a job was re-enqueued or a concurrency slot freed)
-- ARGV[2..] one group of 4 per job: job id, task name, target, job JSON, where target is
--           "" (succeeded or failed: just forget it), an index into KEYS (retry now: RPUSH the
--           new JSON to that queue), or "f<atMs>" (retry later: ZADD the new JSON to future)
-- Returns one integer per job: 1 when applied, 0 when the job was no longer running here (another
-- broker recovered it after this broker's lease expired: it is theirs now, nothing is done).
local running_key, max_key, cur_key, future_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local applied, notify = {}, false
local limits = redis.call('EXISTS', max_key) == 1 -- no limited task at all: skip per-job checks
for i = 2, #ARGV, 4 do
  local id, task, target, json = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if redis.call('HDEL', running_key, id) == 1 then
    if limits and chard_release(max_key, cur_key, task) then notify = true end
    if string.sub(target, 1, 1) == 'f' then
      redis.call('ZADD', future_key, string.sub(target, 2), json)
      notify = true
    elseif target ~= '' then
      redis.call('RPUSH', KEYS[tonumber(target)], json)
      notify = true
    end
    applied[#applied + 1] = 1
  else
    applied[#applied + 1] = 0
  end
end
if notify then redis.call('PUBLISH', ARGV[1], '') end
return applied
