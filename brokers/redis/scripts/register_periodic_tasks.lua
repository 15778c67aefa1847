-- register_periodic_tasks.lua: records periodic tasks; never deletes a task it was not given.
-- KEYS[1]   periodic ZSET (task name -> next run ms)
-- KEYS[2]   periodic-tasks HASH (task name -> {"maxRetries":..,"periodMs":..,"queue":..})
-- ARGV[1]   events channel (always published to: workers recompute their next wake-up)
-- ARGV[2]   now (epoch ms)
-- ARGV[3..] one triple per task: name, periodMs, task JSON
-- A task already registered with the same period keeps its next run (a restart neither delays
-- nor duplicates it); a new task or a changed period runs next at now + periodMs. The definition
-- is always overwritten. Tasks absent from this call are left alone: several deployments with
-- different task sets may share a namespace (Spinach deleted them: last writer wins).
-- Returns the number of tasks whose next run was (re)set.
local periodic_key, tasks_key = KEYS[1], KEYS[2]
local now, reset = tonumber(ARGV[2]), 0
for i = 3, #ARGV, 3 do
  local name, period, json = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local keep = false
  local old = redis.call('HGET', tasks_key, name)
  if old and redis.call('ZSCORE', periodic_key, name) then
    local ok, task = pcall(cjson.decode, old)
    keep = ok and type(task) == 'table' and task.periodMs == period
  end
  if not keep then
    redis.call('ZADD', periodic_key, chard_score(now + period), name)
    reset = reset + 1
  end
  redis.call('HSET', tasks_key, name, json)
end
redis.call('PUBLISH', ARGV[1], '')
return reset
