-- register_periodic_tasks.lua: when an engine's workers start, records its periodic tasks and
-- unschedules the tasks it defines without periodicity, in one call.
-- KEYS[1]   periodic ZSET (task name -> next run ms)
-- KEYS[2]   periodic-tasks HASH (task name -> definition JSON, see keys.ts periodicTaskJSON)
-- ARGV[1]   events channel (always published to: workers recompute their next wake-up)
-- ARGV[2]   now (epoch ms)
-- ARGV[3]   n, the number of arguments of the triples that follow (3 per periodic task)
-- ARGV[4..3+n] one triple per periodic task: name, periodMs, definition JSON
-- ARGV[4+n..] names of the tasks the engine defines without periodicity
-- A periodic task already registered with the same period keeps its next run (a restart neither
-- delays nor duplicates it). One registered with another period keeps its phase: its next run is
-- max(now, last run + new period), the last run being its next run minus its old period, so at
-- most one new period after the last run and never a catch-up burst; it is reported. A new task
-- (or one without a valid definition) runs next at now + periodMs. The definition is always
-- overwritten: the latest registration's period, queue and maxRetries are used.
-- A task without periodicity loses the schedule of its name only if that schedule came from a
-- task's periodicity (definition "source":"periodicity", or no source: written before the field
-- existed, or not readable); schedules of another source are never touched here. Tasks absent from
-- this call are left alone: several deployments with different task sets may share a namespace.
-- Safe to apply twice: a repeat finds each period registered (kept) and each schedule already
-- removed, so it changes nothing and reports nothing (a change whose first reply was lost is not
-- reported again).
-- Returns { { name, old periodMs, next run ms } flattened, for each task whose period changed
-- (numbers as exact text), names of the tasks unscheduled }.
local periodic_key, tasks_key = KEYS[1], KEYS[2]
local now, n = tonumber(ARGV[2]), tonumber(ARGV[3])
local changed, unscheduled = {}, {}
for i = 4, 3 + n, 3 do
  local name, period, json = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local next_run = now + period
  local old = redis.call('HGET', tasks_key, name)
  local score = old and redis.call('ZSCORE', periodic_key, name)
  if score then
    local ok, task = pcall(cjson.decode, old)
    if ok and type(task) == 'table' and type(task.periodMs) == 'number' and task.periodMs > 0 then
      if task.periodMs == period then
        next_run = nil -- kept
      else
        next_run = math.max(now, tonumber(score) - task.periodMs + period)
        changed[#changed + 1] = name
        changed[#changed + 1] = chard_score(task.periodMs)
        changed[#changed + 1] = chard_score(next_run)
      end
    end
  end
  if next_run then redis.call('ZADD', periodic_key, chard_score(next_run), name) end
  redis.call('HSET', tasks_key, name, json)
end

local names = {}
for i = 4 + n, #ARGV do names[#names + 1] = ARGV[i] end
if #names > 0 then
  local defs = chard_chunked_list('HMGET', tasks_key, names)
  local scores = chard_chunked_list('ZMSCORE', periodic_key, names)
  local gone = {}
  for i, name in ipairs(names) do
    local ours = true
    if defs[i] then
      local ok, task = pcall(cjson.decode, defs[i])
      ours = not (ok and type(task) == 'table' and task.source ~= nil and task.source ~= 'periodicity')
    end
    if ours and (defs[i] or scores[i]) then gone[#gone + 1] = name end
  end
  if #gone > 0 then
    chard_chunked('ZREM', periodic_key, gone)
    chard_chunked('HDEL', tasks_key, gone)
  end
  unscheduled = gone
end
redis.call('PUBLISH', ARGV[1], '')
return { changed, unscheduled }
