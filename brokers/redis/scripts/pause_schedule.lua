-- pause_schedule.lua: pauses a schedule (drops its next fire time) or resumes it at a next fire
-- time the client computed from the revision it read.
-- KEYS[1]   schedules ZSET (name -> next fire ms)
-- KEYS[2]   the schedule's HASH, prefix..":schedule:"..name
-- ARGV[1]   the name
-- ARGV[2]   "1" to pause, "0" to resume
-- ARGV[3]   for a resume: the revision the next fire time was computed from ("" for a pause)
-- ARGV[4]   for a resume: its next fire ms ("" for none: it resumes ended)
-- ARGV[5]   now (epoch ms)
-- ARGV[6]   events channel (published "s" to on a change)
-- A pause or resume counts the revision, so a claim computed before it is refused.
-- Safe to apply twice: the repeat finds the schedule in the state asked for ("unchanged").
-- Returns "done", "unchanged", "unknown" (no such schedule) or "stale" (a resume whose revision is
-- not the stored one: nothing written).
local state = redis.call('HMGET', KEYS[2], 'def', 'paused', 'rev')
if not state[1] then return 'unknown' end
local paused = state[2] == '1'
if (ARGV[2] == '1') == paused then return 'unchanged' end
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[2], 'paused', '1', 'updated', ARGV[5])
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  if state[3] ~= ARGV[3] then return 'stale' end
  redis.call('HDEL', KEYS[2], 'paused')
  redis.call('HSET', KEYS[2], 'updated', ARGV[5])
  if ARGV[4] ~= '' then redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1]) end
end
redis.call('HINCRBY', KEYS[2], 'rev', 1)
redis.call('PUBLISH', ARGV[6], 's')
return 'done'
