-- set_concurrency_keys.lua: records the concurrency limits of the given tasks.
-- KEYS[1]   max-concurrency HASH (task name -> limit)
-- KEYS[2]   concurrency HASH (task name -> jobs running now)
-- KEYS[3]   jobs HASH (job id -> job JSON: read for the priorities of the jobs of a lane put back)
-- ARGV[1]   key prefix "{chard:<ns>}": the lane of a task in a queue is built here as
--           prefix..":lane:"..queue..":t:"..task, listed in prefix..":lanes:"..queue, and the
--           queues that have had lanes are the SET prefix..":lane-queues" (same hash tag)
-- ARGV[2..] one pair per task: name, limit ("" = unlimited)
-- A limited task gets its limit (overwritten) and a counter initialised to 0 only if missing, so
-- jobs running now stay counted. An unlimited task is removed from both hashes: only limited
-- tasks are tracked; the jobs waiting in its lane of each queue (it was limited before) go back to
-- the front of the queue LIST, in their order, those with a priority (in the lane's levels,
-- prefix..":plane:"..n..":"..queue..":t:"..task, see fetch_jobs.lua) to the front of their level
-- (chard_push_level; a rare call: O(jobs in that lane)), and the lane's flag is cleared. Tasks
-- absent from this call are left alone; so is the field "" of KEYS[1], the namespace's flags (no
-- task has an empty name), but for the flags of the lanes emptied here.
-- Applied twice, the second call finds nothing more to change.
-- Returns the number of limited tasks.
local limited, prefix = 0, ARGV[1]
-- Puts the jobs of the lane of task `name` in `queue` back to the front of the queue LIST (those
-- with a priority: of their level), in their order.
local function unlane(queue, name)
  local lane = prefix .. ':lane:' .. queue .. ':t:' .. name
  local ids = redis.call('LRANGE', lane, 0, -1)
  local jsons = chard_chunked_list('HMGET', KEYS[3], ids)
  -- LPUSH a b c leaves c first: each destination gets its ids from the last to the first.
  local plain, levels, order = {}, {}, {}
  for j = #ids, 1, -1 do
    local job = jsons[j] and string.find(jsons[j], ',"prio":', 1, true) and chard_read_job(jsons[j])
    if job and job.prio and job.prio ~= 0 then
      if not levels[job.prio] then
        levels[job.prio] = {}
        order[#order + 1] = job.prio
      end
      table.insert(levels[job.prio], ids[j])
    else
      plain[#plain + 1] = ids[j]
    end
  end
  chard_chunked('LPUSH', prefix .. ':queue:' .. queue, plain)
  -- The lane's levels (see fetch_jobs.lua) to the front of the queue's levels, in their order; the
  -- jobs of a priority found in the LIST (moved there by the previous version) were moved before
  -- them, so they go in front of them.
  local plevels = prefix .. ':plevels:' .. queue .. ':t:' .. name
  for _, n in ipairs(redis.call('ZRANGE', plevels, '0', '-1')) do
    local key = prefix .. ':plane:' .. n .. ':' .. queue .. ':t:' .. name
    local level_ids, rev = redis.call('LRANGE', key, 0, -1), {}
    for j = #level_ids, 1, -1 do rev[#rev + 1] = level_ids[j] end
    if #rev > 0 then chard_push_level(prefix, KEYS[1], nil, queue, tonumber(n), rev, true) end
    redis.call('DEL', key)
  end
  if redis.call('DEL', plevels) == 1 then chard_set_flag(KEYS[1], chard_lane_flag(queue, name), false) end
  for _, prio in ipairs(order) do chard_push_level(prefix, KEYS[1], nil, queue, prio, levels[prio], true) end
  redis.call('DEL', lane)
  redis.call('ZREM', prefix .. ':lanes:' .. queue, name)
end
for i = 2, #ARGV, 2 do -- checked first: a script's writes are not rolled back
  if ARGV[i] == '' then return redis.error_reply('CHARD_ARGS set_concurrency_keys: a task name is not empty') end
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
