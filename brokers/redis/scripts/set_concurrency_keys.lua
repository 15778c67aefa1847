-- set_concurrency_keys.lua: records the concurrency limits of the given tasks.
-- KEYS[1]   max-concurrency HASH (task name -> limit)
-- KEYS[2]   concurrency HASH (task name -> jobs running now)
-- ARGV[1..] one pair per task: name, limit ("" = unlimited)
-- A limited task gets its limit (overwritten) and a counter initialised to 0 only if missing, so
-- jobs running now stay counted. An unlimited task is removed from both hashes: only limited
-- tasks are tracked. Tasks absent from this call are left alone.
-- Returns the number of limited tasks.
local limited = 0
for i = 1, #ARGV, 2 do
  local name, limit = ARGV[i], ARGV[i + 1]
  if limit == '' then
    redis.call('HDEL', KEYS[1], name)
    redis.call('HDEL', KEYS[2], name)
  else
    redis.call('HSET', KEYS[1], name, limit)
    redis.call('HSETNX', KEYS[2], name, 0)
    limited = limited + 1
  end
end
return limited
