-- gate_task.lua: pauses or resumes a task, or blocks a rate limiter, for every worker of the namespace.
-- KEYS[1]  max-concurrency HASH (task -> limit, "0" for a task gated without one; field "": flags)
-- KEYS[2]  concurrency HASH (task -> jobs running now)
-- KEYS[3]  jobs HASH (read for the priorities of the jobs of a lane put back)
-- ARGV[1]  key prefix "{chard:<ns>}" (lanes: see set_concurrency_keys.lua)
-- ARGV[2]  events channel (published to when a gate opens, so that idle workers fetch at once)
-- ARGV[3]  "pause", "resume" or "block"
-- ARGV[4]  task name
-- ARGV[5]  block: the limiter blocked ("t:<task>" for the task itself, "n:<name>" for a named
--          one, "g:" and a group lane for one group of the task)
-- ARGV[6]  block: until when (epoch ms); a later block of the same limiter stands
-- ARGV[7]  now (epoch ms)
-- A task's jobs can only wait behind a gate in its lanes, so a paused or blocked task is gated
-- (in KEYS[1], with "0" when it has no concurrency limit; its counter set to 0 if missing), and
-- the fetch moves its jobs to its lanes as it meets them. The pause is the flag "tpaused:<task>",
-- a block "until:<id>" (fetch_jobs.lua reads both with the limits). A resume clears the flag and,
-- when nothing else gates the task (no limit, no rate limits, no block under way), takes it out
-- of the max-concurrency HASH and puts its lanes' jobs back to the front of their queues
-- (chard_unlane).
-- Safe to apply twice: the second run finds the state the first left.
-- Returns: pause and resume, 1 when the task was paused before the call, else 0; block, the
-- block's end (epoch ms, as text).
local prefix, op, task, now = ARGV[1], ARGV[3], ARGV[4], tonumber(ARGV[7])
if task == '' then return redis.error_reply('CHARD_ARGS gate_task: a task name is not empty') end
local flags = chard_decode_flags(redis.call('HGET', KEYS[1], ''))
local function gate()
  redis.call('HSETNX', KEYS[1], task, '0')
  redis.call('HSETNX', KEYS[2], task, 0)
end
if op == 'block' then
  local id, until_ = ARGV[5], tonumber(ARGV[6])
  if not until_ or id == '' then return redis.error_reply('CHARD_ARGS gate_task: block needs a limiter and a time') end
  local before = tonumber(flags['until:' .. id])
  if not before or before < until_ then
    flags['until:' .. id] = until_
    chard_write_flags(KEYS[1], flags)
  else
    until_ = before
  end
  if id == 't:' .. task or string.sub(id, 1, 2) == 'g:' then gate() end
  return chard_score(until_)
end
local flag = 'tpaused:' .. task
local before = flags[flag] == true
if op == 'pause' then
  if not before then
    flags[flag] = true
    chard_write_flags(KEYS[1], flags)
  end
  gate()
elseif op == 'resume' then
  if before then
    flags[flag] = nil
    chard_write_flags(KEYS[1], flags)
  end
  local block = tonumber(flags['until:t:' .. task])
  if redis.call('HGET', KEYS[1], task) == '0' and flags['rl:' .. task] == nil and not (block and block > now) then
    redis.call('HDEL', KEYS[1], task)
    redis.call('HDEL', KEYS[2], task)
    for _, queue in ipairs(redis.call('SMEMBERS', prefix .. ':lane-queues')) do
      chard_unlane(prefix, KEYS[1], KEYS[3], queue, task)
    end
  end
  redis.call('PUBLISH', ARGV[2], '')
else
  return redis.error_reply('CHARD_ARGS gate_task: ARGV[3] is pause, resume or block')
end
if before then return 1 end
return 0
