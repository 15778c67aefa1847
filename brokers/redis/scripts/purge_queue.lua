-- purge_queue.lua: removes up to a bound of the queued jobs of a queue (Broker.purgeQueue).
-- KEYS[1]   jobs HASH (job id -> job JSON)
-- KEYS[2]   revoked SET
-- KEYS[3]   results HASH
-- KEYS[4]   result-expiry ZSET
-- KEYS[5]   progress HASH
-- KEYS[6]   max-concurrency HASH (the flags of the queue's levels and lanes' levels, cleared here
--           when the purge empties them)
-- ARGV[1]   key prefix "{chard:<ns>}": the queue's lists (its LIST, levels, lanes and their
--           levels, as list_jobs.lua orders them) are built here from it and the queue's name
-- ARGV[2]   results channel (the ids of the jobs removed are published to it)
-- ARGV[3]   now (epoch ms)
-- ARGV[4]   the record of a revoked job (lib/results.ts REVOKED_RECORD)
-- ARGV[5]   how long that record is kept (ms)
-- ARGV[6]   the most jobs removed by this call
-- ARGV[7]   the queue
-- The jobs are popped from the head of each list in turn (LPOP); a level emptied here leaves its
-- index (<p>:prios:<q>, a lane's <p>:plevels:...) and the flag goes with the last, and a lane
-- emptied leaves <p>:lanes:<q>, as the fetch would do. Each job popped is forgotten and ended
-- as revoked (its record kept, its key released or given its ttl, its id announced), counted out
-- of queued. Ids without a JSON (deleted) are dropped. Running and waiting jobs are not touched.
-- Returns { the JSONs of the jobs removed, 1 when the queue may hold more else 0 }.
local prefix, now, limit, queue = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[6]), ARGV[7]
-- Each list: { key, its levels' index and its member (nil for a plain list), the lane (nil for the queue's) }.
local lists = {}
local function levels(zkey, plain, level_key, lane)
  local pos, neg = {}, {}
  for _, n in ipairs(redis.call('ZRANGE', zkey, 0, -1)) do
    if tonumber(n) > 0 then pos[#pos + 1] = n elseif tonumber(n) < 0 then neg[#neg + 1] = n end
  end
  for _, n in ipairs(pos) do lists[#lists + 1] = { level_key(n), zkey, n, lane } end
  lists[#lists + 1] = { plain, nil, nil, lane }
  for _, n in ipairs(neg) do lists[#lists + 1] = { level_key(n), zkey, n, lane } end
end
levels(prefix .. ':prios:' .. queue, prefix .. ':queue:' .. queue,
  function(n) return prefix .. ':prio:' .. n .. ':' .. queue end, nil)
local lanes = redis.call('ZRANGE', prefix .. ':lanes:' .. queue, 0, -1)
table.sort(lanes)
for _, lane in ipairs(lanes) do
  levels(prefix .. ':plevels:' .. queue .. ':t:' .. lane, prefix .. ':lane:' .. queue .. ':t:' .. lane,
    function(n) return prefix .. ':plane:' .. n .. ':' .. queue .. ':t:' .. lane end, lane)
end
local removed, ids, ended, tally, more = {}, {}, {}, {}, 0
local emptied = {}
for _, list in ipairs(lists) do
  local key = list[1]
  local left = limit - #ids
  if left <= 0 then
    if redis.call('LLEN', key) > 0 then
      more = 1
      break
    end
  else
    local popped = redis.call('LPOP', key, left) or {}
    local jsons = chard_chunked_list('HMGET', KEYS[1], popped)
    for i, id in ipairs(popped) do
      ids[#ids + 1] = id
      local job = jsons[i] and chard_read_job(jsons[i])
      if job then
        chard_tally(tally, 'q', job, -1)
        if job.key then chard_key_ended(prefix, job.key, id, now) end
        removed[#removed + 1] = jsons[i]
        ended[#ended + 1] = id
      end
    end
    if #popped == left and redis.call('LLEN', key) > 0 then
      more = 1
      break
    end
    if #popped > 0 then emptied[#emptied + 1] = list end
  end
end
-- The indexes of what was emptied, as the fetch keeps them.
local lanes_left = {}
for _, list in ipairs(emptied) do
  if list[2] then
    redis.call('ZREM', list[2], list[3])
    if redis.call('ZCARD', list[2]) == 0 then
      local flag = list[4] and chard_lane_flag(queue, list[4]) or ('prio:' .. queue)
      chard_set_flag(KEYS[6], flag, false)
    end
  end
  if list[4] then lanes_left[list[4]] = true end
end
for lane in pairs(lanes_left) do
  if redis.call('EXISTS', prefix .. ':lane:' .. queue .. ':t:' .. lane,
      prefix .. ':plevels:' .. queue .. ':t:' .. lane) == 0 then
    redis.call('ZREM', prefix .. ':lanes:' .. queue, lane)
  end
end
if #ids > 0 then
  chard_chunked('SREM', KEYS[2], ids)
  chard_chunked('HDEL', KEYS[1], ids)
  chard_chunked('HDEL', KEYS[5], ids)
end
if #ended > 0 then chard_jobs_ended(KEYS[1], KEYS[3], KEYS[4], ARGV[2], ended, nil, now, ARGV[4], ARGV[5]) end
chard_write_tally(prefix, tally)
return { removed, more }
