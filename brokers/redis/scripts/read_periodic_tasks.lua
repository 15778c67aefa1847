-- read_periodic_tasks.lua: every scheduled periodic task of the namespace, in one atomic read.
-- KEYS[1]   periodic ZSET (task name -> next run ms)
-- KEYS[2]   periodic-tasks HASH (task name -> definition JSON, see keys.ts periodicTaskJSON)
-- Read-only. The tasks come in next-run order (ties by name bytes), each with its definition, or
-- false when it has none (a stale entry, removed by the fetch that finds it due).
-- Returns { name, next run ms (exact text), definition JSON or false, ... } flattened.
local entries = redis.call('ZRANGE', KEYS[1], '0', '-1', 'WITHSCORES')
local names = {}
for i = 1, #entries, 2 do names[#names + 1] = entries[i] end
local defs = chard_chunked_list('HMGET', KEYS[2], names)
local out = {}
for i, name in ipairs(names) do
  out[#out + 1] = name
  out[#out + 1] = entries[2 * i]
  out[#out + 1] = defs[i]
end
return out
