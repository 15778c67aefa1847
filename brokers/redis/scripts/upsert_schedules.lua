-- upsert_schedules.lua: creates or updates schedules, and removes those of tasks defined without
-- periodicity, in one call (engine.upsertSchedule; a worker start registers the periodic tasks).
-- KEYS[1]   schedules ZSET (name -> next fire ms; only schedules neither paused nor ended)
-- KEYS[2]   schedule-names SET (every schedule's name)
-- KEYS[3]   the periodic ZSET of version 0.1.0 (task name -> next run ms), migrated from here
-- KEYS[4]   the periodic-tasks HASH of version 0.1.0
-- ARGV[1]   key prefix "{chard:<ns>}": each schedule's HASH is prefix..":schedule:"..name (same
--           hash tag, same Cluster slot)
-- ARGV[2]   events channel (published "s" to when something changed: engines re-read their due times)
-- ARGV[3]   now (epoch ms)
-- ARGV[4]   n, the number of arguments of the writes (5 per write)
-- ARGV[5..4+n] the writes, 5 ARGV each: name, definition JSON, source, next fire ms if new (""
--           for none: created ended), next fire ms if its timing changed ("")
-- ARGV[5+n..] names whose schedule goes if it came from a task's periodicity (source "periodicity")
-- A schedule's HASH: def (the JSON), src, rev (counts definition changes and pauses), fires,
-- skipped, created, updated (ms), and once it fired last (fire time ms) and job (its last job's
-- id), paused ("1") while paused.
-- A write whose definition equals the stored one changes nothing ("u"). A write over a schedule of
-- another source changes nothing ("x <source>"). Else the definition is stored and rev counted;
-- the next fire time is kept while cron, tz, every and start are the same, an interval that
-- changed keeps its phase (max(now, next - old every + new every)), else it is the write's; a
-- next fire past the definition's end, or with its limit of fires reached, ends the schedule; a
-- paused one stays paused (no next fire time).
-- A periodicity write whose task had a schedule in the 0.1.0 keys moves it here (its next run
-- kept when it is created here) and removes it there: workers of 0.1.0 then stop firing it.
-- Safe to apply twice: the repeat finds every definition stored ("u") and the removed gone.
-- Returns { one line per write: "c <next>", "p <next> <old every>" (an interval changed),
--   "w <next>" (updated), "u <next>" or "x <source> <next>" with <next> "" when none;
--   names unscheduled }.
local sched_key, names_key, old_key, old_defs = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, now, n = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4])
local changed = false
local lines, unscheduled = {}, {}

local function decode(json)
  local ok, d = pcall(cjson.decode, json)
  if ok and type(d) == 'table' then return d end
  return nil
end
local function text(x) return x and chard_score(x) or '' end

for i = 5, 4 + n, 5 do
  local name, def, src = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local if_new, if_changed = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  local key = prefix .. ':schedule:' .. name
  local old_next = src == 'periodicity' and redis.call('ZSCORE', old_key, name)
  if old_next then
    redis.call('ZREM', old_key, name)
    redis.call('HDEL', old_defs, name)
  end
  local stored = redis.call('HMGET', key, 'def', 'src', 'fires', 'paused')
  if not stored[1] then
    local next_at = old_next and math.max(tonumber(old_next), 0) or if_new
    redis.call('HSET', key, 'def', def, 'src', src, 'rev', 1, 'fires', 0, 'skipped', 0, 'created', ARGV[3],
      'updated', ARGV[3])
    redis.call('SADD', names_key, name)
    if next_at then redis.call('ZADD', sched_key, chard_score(next_at), name) end
    lines[#lines + 1] = 'c ' .. text(next_at)
    changed = true
  elseif stored[2] ~= src then
    lines[#lines + 1] = 'x ' .. stored[2] .. ' ' .. (redis.call('ZSCORE', sched_key, name) or '')
  elseif stored[1] == def then
    lines[#lines + 1] = 'u ' .. (redis.call('ZSCORE', sched_key, name) or '')
  else
    local before, after = decode(stored[1]), decode(def) or {}
    local score = tonumber(redis.call('ZSCORE', sched_key, name))
    local next_at, line = if_changed, 'w '
    if before and score then
      if before.cron == after.cron and before.tz == after.tz and before.every == after.every
          and before.start == after.start then
        next_at = score
      elseif type(before.every) == 'number' and type(after.every) == 'number' and before.cron == nil
          and after.cron == nil then
        next_at = math.max(now, score - before.every + after.every)
        line = 'p '
      end
    end
    if next_at and type(after['end']) == 'number' and next_at > after['end'] then next_at = nil end
    if next_at and type(after.limit) == 'number' and tonumber(stored[3]) >= after.limit then next_at = nil end
    if stored[4] == '1' then next_at = nil end
    redis.call('HSET', key, 'def', def, 'updated', ARGV[3])
    redis.call('HINCRBY', key, 'rev', 1)
    if next_at then redis.call('ZADD', sched_key, chard_score(next_at), name) else redis.call('ZREM', sched_key, name) end
    if line == 'p ' then
      lines[#lines + 1] = line .. text(next_at) .. ' ' .. chard_score(before.every)
    else
      lines[#lines + 1] = line .. text(next_at)
    end
    changed = true
  end
end

for i = 5 + n, #ARGV do
  local name = ARGV[i]
  local key = prefix .. ':schedule:' .. name
  if redis.call('HGET', key, 'src') == 'periodicity' then
    redis.call('DEL', key)
    redis.call('ZREM', sched_key, name)
    redis.call('SREM', names_key, name)
    unscheduled[#unscheduled + 1] = name
    changed = true
  end
  -- A 0.1.0 schedule of the task (from periodicity, or of no source) goes too.
  local old = redis.call('HGET', old_defs, name)
  if old or redis.call('ZSCORE', old_key, name) then
    local d = old and decode(old)
    if not (d and d.source ~= nil and d.source ~= 'periodicity') then
      redis.call('ZREM', old_key, name)
      redis.call('HDEL', old_defs, name)
      if unscheduled[#unscheduled] ~= name then unscheduled[#unscheduled + 1] = name end
    end
  end
end
if changed then redis.call('PUBLISH', ARGV[2], 's') end
return { lines, unscheduled }
