-- set_concurrency_keys.lua: records the concurrency limits of the given tasks.
-- KEYS[1]   max-concurrency HASH (task name -> limit)
-- KEYS[2]   concurrency HASH (task name -> jobs running now)
-- ARGV[1]   key prefix "{chard:<ns>}": the lane of a task in a queue is built here as
--           prefix..":lane:"..queue..":t:"..task, listed in prefix..":lanes:"..queue, and the
--           queues that have had lanes are the SET prefix..":lane-queues" (same hash tag)
-- ARGV[2..] one pair per task: name, limit ("" = unlimited)
-- A limited task gets its limit (overwritten) and a counter initialised to 0 only if missing, so
-- jobs running now stay counted. An unlimited task is removed from both hashes: only limited
-- tasks are tracked; the jobs waiting in its lane of each queue (it was limited before) go back to
-- the front of the queue LIST, in their order (a rare call: O(jobs in that lane)). Tasks absent
-- from this call are left alone. Applied twice, the second call finds nothing more to change.
-- Returns the number of limited tasks.
local limited, prefix = 0, ARGV[1]
-- Puts the jobs of the lane of task `name` in `queue` back to the front of the queue LIST.
local function unlane(queue, name)
  local lane = prefix .. ':lane:' .. queue .. ':t:' .. name
  local ids = redis.call('LRANGE', lane, 0, -1)
  -- LPUSH a b c leaves c first: push from the last to the first, in chunks.
  for last = #ids, 1, -1000 do
    local chunk = {}
    for j = last, math.max(1, last - 999), -1 do chunk[#chunk + 1] = ids[j] end
    redis.call('LPUSH', prefix .. ':queue:' .. queue, unpack(chunk))
  end
  redis.call('DEL', lane)
  redis.call('ZREM', prefix .. ':lanes:' .. queue, name)
end
for i = 2, #ARGV, 2 do
  local name, limit = ARGV[i], ARGV[i + 1]
  if limit == '' then
    if redis.call('HDEL', KEYS[1], name) == 1 then
      for _, queue in ipairs(redis.call('SMEMBERS', prefix .. ':lane-queues')) do unlane(queue, name) end
    end
    redis.call('HDEL', KEYS[2], name)
  else
    redis.call('HSET', KEYS[1], name, limit)
    redis.call('HSETNX', KEYS[2], name, 0)
    limited = limited + 1
  end
end
return limited
