-- remove_periodic_task.lua: unschedules one periodic task (its next run and its definition),
-- whatever registered it.
-- KEYS[1]   periodic ZSET (task name -> next run ms)
-- KEYS[2]   periodic-tasks HASH (task name -> definition JSON)
-- ARGV[1]   task name
-- Jobs it already fired are not touched. Workers still defining the task as periodic register it
-- again when they next start. Safe to apply twice: the second run finds nothing and removes
-- nothing (it then returns 0: a call whose reply was lost and that was re-sent reports false).
-- Returns 1 when the task had a schedule or a definition, else 0.
local removed = redis.call('ZREM', KEYS[1], ARGV[1]) + redis.call('HDEL', KEYS[2], ARGV[1])
if removed > 0 then return 1 end
return 0
