-- remove_schedule.lua: removes one schedule (its next fire time, its HASH, its name), whatever
-- its source.
-- KEYS[1]   schedules ZSET (name -> next fire ms)
-- KEYS[2]   schedule-names SET
-- KEYS[3]   the schedule's HASH, prefix..":schedule:"..name
-- ARGV[1]   the name
-- ARGV[2]   events channel (published "s" to when it removed something)
-- Jobs it already made are not touched. Safe to apply twice: the repeat removes nothing (and
-- returns 0: a call whose reply was lost and that was re-sent reports false).
-- Returns 1 when the schedule existed, else 0.
local removed = redis.call('ZREM', KEYS[1], ARGV[1]) + redis.call('SREM', KEYS[2], ARGV[1]) + redis.call('DEL', KEYS[3])
if removed == 0 then return 0 end
redis.call('PUBLISH', ARGV[2], 's')
return 1
