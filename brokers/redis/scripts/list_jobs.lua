-- list_jobs.lua: one page of the jobs of a state (Broker.listJobs), in a stable order, from a cursor.
-- KEYS[1]   jobs HASH (job id -> job JSON)
-- KEYS[2]   future ZSET (job ids, score = atMs)
-- KEYS[3]   leases ZSET (the running HASHes of the brokers listed there hold the running jobs)
-- KEYS[4]   ended HASH (job id -> ended record)
-- KEYS[5]   failed ZSET (the failed store, score = when the job ended)
-- KEYS[6]   succeeded ZSET (the succeeded store)
-- KEYS[7]   counts HASH (its "q" fields name the queues holding queued jobs)
-- KEYS[8]   progress HASH
-- KEYS[9]   results HASH
-- KEYS[10]  revoked SET
-- ARGV[1]   key prefix "{chard:<ns>}": the lists of a queue (its LIST, levels, lanes and their
--           levels) and the running HASHes are built here from it (same hash tag, same Cluster slot)
-- ARGV[2]   state: waiting, retrying, queued, running, failed or succeeded
-- ARGV[3]   order: "oldest" or "newest"
-- ARGV[4]   the most jobs in the page
-- ARGV[5]   the most entries looked at (filters make pages shorter, never longer calls)
-- ARGV[6]   only the jobs of this queue ("" for every queue)
-- ARGV[7]   only the jobs of this task ("" for every task)
-- ARGV[8]   the cursor of the previous page ("" for the first): JSON made here, see below
-- Order and cursors. Waiting and retrying jobs: the future set by (due time, id); failed and
-- succeeded ones: their store by (end, id); the cursor is [score, id], the next page starts after
-- that entry (by rank when it is still there with that score, else after every entry before it).
-- Running jobs: by (fetch token = start ms, id), cursor [token, id]. Queued jobs: list by list,
-- queues by name (the given one, or those whose "q" count field exists), in each its levels from
-- the highest priority to the lowest with the queue LIST at 0, then its lanes by name, each by
-- level; FIFO within a list. The cursor is [queue, section, lane, level, index, id]: the next page
-- finds the id again near its index (LPOS; a list only loses its head, or gains items at its
-- front when jobs are put back) and goes on after it; an id gone was taken with everything before
-- it, so the list goes on from its head ("oldest") or is done ("newest", which walks each list
-- from its tail to its head and the lists in reverse). No job is listed twice in a pass unless it
-- left the state and came back; one that moved may be missed.
-- Returns { next cursor or false (no more), then per job 8 entries: id, state ("revoked" for a
--           queued job revoked), JSON or false, ended record or false, result record or false,
--           progress or false, broker or false, fetch token or false }.
local prefix, state, newest = ARGV[1], ARGV[2], ARGV[3] == 'newest'
local want, budget, want_queue, want_task = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], ARGV[7]
local cursor = false
if ARGV[8] ~= '' then
  local ok, c = pcall(cjson.decode, ARGV[8])
  if not ok or type(c) ~= 'table' then return redis.error_reply('CHARD_ARGS list_jobs: bad cursor') end
  cursor = c
end
local out, looked = { false }, 0
-- Whether the job of `json` passes the filters (and, for the future set, is of `state`).
local function passes(json)
  local job = json and chard_read_job(json)
  if not job then return false end
  if want_queue ~= '' and job.queue ~= want_queue then return false end
  if want_task ~= '' and job.task ~= want_task then return false end
  if state == 'waiting' and job.retries > 0 then return false end
  if state == 'retrying' and job.retries == 0 then return false end
  return true
end
local function add(id, st, json, ended, result, progress, broker, token)
  local n = #out
  out[n + 1], out[n + 2], out[n + 3], out[n + 4] = id, st, json or false, ended or false
  out[n + 5], out[n + 6], out[n + 7], out[n + 8] = result or false, progress or false, broker or false, token or false
end
local function full() return (#out - 1) / 8 >= want or looked >= budget end

-- A ZSET's page (the future set, a store), by rank from after the cursor's entry.
local function zset_page(key, ended)
  local start = 0
  if cursor then
    local cs, cid = tonumber(cursor[1]), cursor[2]
    if not cs or type(cid) ~= 'string' then return redis.error_reply('CHARD_ARGS list_jobs: bad cursor') end
    local s = redis.call('ZSCORE', key, cid)
    if s and tonumber(s) == cs then
      start = redis.call(newest and 'ZREVRANK' or 'ZRANK', key, cid) + 1
    else
      local text = chard_score(cs)
      if newest then start = redis.call('ZCOUNT', key, '(' .. text, '+inf')
      else start = redis.call('ZCOUNT', key, '-inf', '(' .. text) end
      local same = newest and redis.call('ZREVRANGEBYSCORE', key, text, text, 'LIMIT', 0, 10000)
        or redis.call('ZRANGEBYSCORE', key, text, text, 'LIMIT', 0, 10000)
      for _, m in ipairs(same) do
        if (newest and m > cid) or (not newest and m < cid) then start = start + 1 end
      end
    end
  end
  local last = nil
  while not full() do
    local n = math.min(100, budget - looked)
    local chunk = redis.call(newest and 'ZREVRANGE' or 'ZRANGE', key, start, start + n - 1, 'WITHSCORES')
    if #chunk == 0 then return nil end
    local ids = {}
    for i = 1, #chunk, 2 do ids[#ids + 1] = chunk[i] end
    local texts = chard_chunked_list('HMGET', ended and KEYS[4] or KEYS[1], ids)
    local results = ended and chard_chunked_list('HMGET', KEYS[9], ids)
    local more = false
    for i, id in ipairs(ids) do
      looked = looked + 1
      last = { chunk[2 * i], id }
      local json = texts[i] and (ended and chard_ended_job(texts[i]) or texts[i])
      if passes(json) then
        if ended then add(id, state, false, texts[i], results[i]) else add(id, state, texts[i]) end
      end
      if full() then
        more = i < #ids or #ids == n
        break
      end
    end
    if full() then return more and last or nil end
    if #ids < n then return nil end
    start = start + #ids
  end
  return last
end

-- The running jobs, by (token, id).
local function running_page()
  local entries = {}
  for _, broker in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
    local flat = redis.call('HGETALL', prefix .. ':running:' .. broker)
    for k = 1, #flat, 2 do
      local id, head = flat[k], string.sub(flat[k], 1, 2)
      if id ~= '~seq' and head ~= 'x:' and head ~= 'k:' and head ~= 's:' then
        local token = string.byte(flat[k + 1], 1) == 99 and string.sub(flat[k + 1], 2) or flat[k + 1]
        entries[#entries + 1] = { tonumber(token) or 0, id, broker, token }
      end
    end
  end
  local function before(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end
  table.sort(entries, newest and function(a, b) return before(b, a) end or before)
  local from = 1
  if cursor then
    local c = { tonumber(cursor[1]) or 0, cursor[2] }
    while from <= #entries and not (newest and before(entries[from], c) or (not newest and before(c, entries[from]))) do
      from = from + 1
    end
  end
  local ids = {}
  for i = from, #entries do ids[#ids + 1] = entries[i][2] end
  local jsons = chard_chunked_list('HMGET', KEYS[1], ids)
  local progress = chard_chunked_list('HMGET', KEYS[8], ids)
  local last = nil
  for i, id in ipairs(ids) do
    if full() then return last end
    local e = entries[from + i - 1]
    looked = looked + 1
    last = { e[4], id }
    if passes(jsons[i]) then add(id, 'running', jsons[i], false, false, progress[i], e[3], e[4]) end
  end
  return nil
end

-- The lists of queued jobs of `queue`, in order: { queue, section, lane, level, key }.
local function lists_of(queue)
  local lists = {}
  local function levels(zkey, section, lane, plain, level_key)
    local pos, neg = {}, {}
    for _, n in ipairs(redis.call('ZRANGE', zkey, 0, -1)) do -- scored -n: highest first
      if tonumber(n) > 0 then pos[#pos + 1] = n elseif tonumber(n) < 0 then neg[#neg + 1] = n end
    end
    for _, n in ipairs(pos) do lists[#lists + 1] = { queue, section, lane, tonumber(n), level_key(n) } end
    lists[#lists + 1] = { queue, section, lane, 0, plain }
    for _, n in ipairs(neg) do lists[#lists + 1] = { queue, section, lane, tonumber(n), level_key(n) } end
  end
  levels(prefix .. ':prios:' .. queue, 0, '', prefix .. ':queue:' .. queue,
    function(n) return prefix .. ':prio:' .. n .. ':' .. queue end)
  local lanes = redis.call('ZRANGE', prefix .. ':lanes:' .. queue, 0, -1)
  table.sort(lanes)
  for _, lane in ipairs(lanes) do
    levels(prefix .. ':plevels:' .. queue .. ':t:' .. lane, 1, lane, prefix .. ':lane:' .. queue .. ':t:' .. lane,
      function(n) return prefix .. ':plane:' .. n .. ':' .. queue .. ':t:' .. lane end)
  end
  return lists
end
-- Compares two lists' places (-1, 0, 1).
local function cmp(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] and -1 or 1 end
  if a[2] ~= b[2] then return a[2] < b[2] and -1 or 1 end
  if a[3] ~= b[3] then return a[3] < b[3] and -1 or 1 end
  if a[4] ~= b[4] then return a[4] > b[4] and -1 or 1 end
  return 0
end

local function queued_page()
  local queues = {}
  if want_queue ~= '' then
    queues[1] = want_queue
  else
    local seen = {}
    for _, field in ipairs(redis.call('HKEYS', KEYS[7])) do
      if string.byte(field, 1) == 113 then -- "q"
        local sep = string.find(field, '\1', 2, true)
        local q = sep and string.sub(field, sep + 1)
        if q and not seen[q] then
          seen[q] = true
          queues[#queues + 1] = q
        end
      end
    end
    table.sort(queues)
  end
  local lists = {}
  for _, q in ipairs(queues) do
    for _, l in ipairs(lists_of(q)) do lists[#lists + 1] = l end
  end
  local first, step, last_list = 1, 1, #lists
  if newest then first, step, last_list = #lists, -1, 1 end
  local li, index = first, nil -- index: where to read next in lists[li] (nil: its start)
  if cursor then
    local c = { cursor[1], tonumber(cursor[2]), cursor[3], tonumber(cursor[4]) }
    if type(c[1]) ~= 'string' or not c[2] or type(c[3]) ~= 'string' or not c[4] or type(cursor[6]) ~= 'string' then
      return redis.error_reply('CHARD_ARGS list_jobs: bad cursor')
    end
    while li ~= last_list + step and cmp(lists[li], c) * step < 0 do li = li + step end
    if li ~= last_list + step and cmp(lists[li], c) == 0 then
      local at = redis.call('LPOS', lists[li][5], cursor[6], 'MAXLEN', (tonumber(cursor[5]) or 0) + 101)
      if newest then
        if at then index = at - 1 else index = -1 end -- gone: taken with everything before it
      else
        index = at and at + 1 or 0
      end
    end
  end
  local revoked_any = redis.call('SCARD', KEYS[10]) > 0
  local last = nil
  while li ~= last_list + step do
    local l = lists[li]
    local key = l[5]
    if index == nil then index = newest and (redis.call('LLEN', key) - 1) or 0 end
    while not full() and index >= 0 do
      local n = math.min(100, budget - looked)
      local ids
      if newest then
        local from = math.max(0, index - n + 1)
        local got = redis.call('LRANGE', key, from, index)
        ids = {}
        for i = #got, 1, -1 do ids[#ids + 1] = got[i] end
      else
        ids = redis.call('LRANGE', key, index, index + n - 1)
      end
      if #ids == 0 then break end
      local jsons = chard_chunked_list('HMGET', KEYS[1], ids)
      local marks = revoked_any and chard_chunked_list('SMISMEMBER', KEYS[10], ids)
      for i, id in ipairs(ids) do
        looked = looked + 1
        last = { l[1], l[2], l[3], l[4], index, id }
        if passes(jsons[i]) then add(id, (marks and marks[i] == 1) and 'revoked' or 'queued', jsons[i]) end
        index = index + step
        if full() then break end
      end
      if #ids < n and not newest then break end
    end
    if full() then
      if li == last_list and (index < 0 or (not newest and redis.call('LLEN', key) <= index)) then return nil end
      return last
    end
    li, index = li + step, nil
  end
  return nil
end

local next_cursor
if state == 'waiting' or state == 'retrying' then
  next_cursor = zset_page(KEYS[2], false)
elseif state == 'failed' then
  next_cursor = zset_page(KEYS[5], true)
elseif state == 'succeeded' then
  next_cursor = zset_page(KEYS[6], true)
elseif state == 'running' then
  next_cursor = running_page()
elseif state == 'queued' then
  next_cursor = queued_page()
else
  return redis.error_reply('CHARD_ARGS list_jobs: unknown state ' .. tostring(state))
end
if type(next_cursor) == 'table' and next_cursor.err then return next_cursor end
if next_cursor then out[1] = cjson.encode(next_cursor) end
return out
