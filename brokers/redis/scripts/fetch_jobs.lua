-- fetch_jobs.lua: a worker's turn in one call. Acknowledges the ended executions it is given,
-- exactly as finish_jobs.lua does (so the concurrency slots they free serve this fetch), then
-- renews the lease, moves what is due into queues, and takes jobs from one queue.
-- KEYS[1]  queue LIST (job ids) to fetch from
-- KEYS[2]  future ZSET (job ids, score = atMs)
-- KEYS[3]  periodic ZSET (task name -> next run ms)
-- KEYS[4]  periodic-tasks HASH
-- KEYS[5]  leases ZSET
-- KEYS[6]  running HASH (job id -> fetch token) of this broker
-- KEYS[7]  max-concurrency HASH
-- KEYS[8]  concurrency HASH
-- KEYS[9]  jobs HASH (job id -> job JSON)
-- KEYS[10] results HASH
-- KEYS[11] result-expiry ZSET
-- KEYS[12] revoked SET (ids of pending jobs that were revoked)
-- KEYS[13] progress HASH (acks only)
-- KEYS[14..] queue LISTs that retried jobs go back to (acks only; a retry to the queue fetched
--          from names KEYS[1])
-- ARGV[1]  key prefix "{chard:<ns>}". The queues that due future jobs and periodic tasks go to
--          depend on the stored data, so their keys are built here as prefix..":queue:"..queue:
--          they carry the prefix's hash tag, hence live in the same Cluster slot as KEYS.
-- ARGV[2]  events channel (published to, once, when a job was moved, or the acks re-enqueued a
--          job or freed a concurrency slot)
-- ARGV[3]  broker id
-- ARGV[4]  now (epoch ms, the client's clock)
-- ARGV[5]  lease expiry (now + leaseMs)
-- ARGV[6]  maxJobs
-- ARGV[7]  a fresh random UUID (v4) for periodic jobs: Lua cannot make random ids, so the i-th
--          job fired by this call (i from 0) gets this UUID with i added to its last 48 bits
--          (version and variant untouched): unique within the call, and across calls by the
--          other 74 random bits. At most 1000 periodic tasks fire per call (the rest stay due).
--          Checked only when a periodic task is due.
-- ARGV[8]  results channel (the ids of the jobs the acks ended, and of revoked jobs dropped here,
--          are published to it)
-- ARGV[9]  how long the record of a revoked job is kept (ms)
-- ARGV[10] the record of a revoked job (lib/results.ts REVOKED_RECORD)
-- ARGV[11..14] the acks and slot releases, packed as ARGV[4..7] of finish_jobs.lua (see its
--          header), run first by chard_finish_jobs; "0", "", "", "" for none
-- ARGV[15] this fetch's token: a number this broker never used before (it counts its fetches).
--          The jobs taken are stored in the running HASH under it, and so is the highest token
--          that took jobs (field "~seq"): a fetch run twice (the client re-sent it on reconnect)
--          or late, after a later one, takes nothing and says so, and the broker then puts back
--          (reclaim_orphans.lua) what the first run took under that token. Acks are fenced by
--          their own tokens (see finish_jobs.lua), so the call as a whole is safe to apply twice.
-- Revoked jobs popped from the queue are dropped, never run: their record is kept and they are
-- returned apart, so the worker sends jobRevoked. An id whose JSON is missing is dropped (never
-- left running); one whose JSON is not a job (read here for due future jobs and with concurrency
-- limits) is ended with the record of an unreadable job (chard_end_unreadable), and reported with
-- the dropped entries so the worker sends jobFailed. Without concurrency limits the JSONs are not
-- read here, so an entry that is not a job reaches the client, which cannot read it:
-- reclaim_orphans.lua then ends it the same way.
-- Returns { accepted job JSONs in queue order, nextDueAtMs (string) or nil,
--           corrupt entries dropped (flat pairs: id, JSON or false when none was stored), revoked job JSONs,
--           positions (1-based) of the acks taken over, as finish_jobs.lua returns them,
--           1 when this fetch was refused as a repeat (only then: a sixth entry) },
-- cut to its first two entries when the last ones are empty (the common reply: each table in a
-- reply costs Redis about 0.4 us to convert).
local queue_key, future_key, periodic_key, tasks_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local leases_key, running_key, max_key, cur_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local jobs_key, results_key, expiry_key, revoked_key = KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local prefix, channel, broker_id, now_s = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, max_jobs = tonumber(now_s), tonumber(ARGV[6])

-- 0. The acks, first. One HGETALL of the limits serves them and the fetch (without a fetch, the
-- acks read it only if they need it).
local limits = nil
if max_jobs > 0 then limits = chard_limits(max_key) end
local notify, taken_over = false, {}
if ARGV[12] ~= '' or ARGV[14] ~= '' then
  local keys = { running = running_key, max_concurrency = max_key, concurrency = cur_key, future = future_key,
    jobs = jobs_key, results = results_key, result_expiry = expiry_key, progress = KEYS[13], by_index = KEYS }
  notify, taken_over = chard_finish_jobs(keys, ARGV[8], limits, now, tonumber(ARGV[11]), ARGV[12], ARGV[13], ARGV[14])
end
local token, repeated = ARGV[15], false
-- True (and nothing may be taken) when a fetch with this token or a later one already took jobs.
local function is_repeat()
  local seq = redis.call('HGET', running_key, '~seq')
  repeated = seq ~= false and tonumber(seq) >= tonumber(token)
  return repeated
end
-- Stores the jobs taken in the running HASH under this fetch's token (one HSET, "~seq" with them).
local function mark_running(ids)
  local pairs_ = { '~seq', token }
  for i = 1, #ids do
    pairs_[2 * i + 1] = ids[i]
    pairs_[2 * i + 2] = token
  end
  chard_hset_pairs(running_key, pairs_)
end

redis.call('ZADD', leases_key, ARGV[5], broker_id)

local dropped, unreadable, moved = {}, {}, 0
local pushes, push_order = {}, {}
local function push(queue, id)
  local key = prefix .. ':queue:' .. queue
  if not pushes[key] then
    pushes[key] = {}
    push_order[#push_order + 1] = key
  end
  table.insert(pushes[key], id)
  moved = moved + 1
end
-- Entries that are not jobs: reported, forgotten, never run.
local function drop(ids)
  if #ids == 0 then return end
  chard_chunked('HDEL', jobs_key, ids)
  chard_chunked('SREM', revoked_key, ids)
end

-- Without concurrency limits: one LPOP, one HMGET, one SADD for the whole batch; the revoked SET
-- is looked at only when it is not empty. `count` is ARGV[6] as sent: Redis converts a Lua number
-- argument of redis.call at every call, a string costs it less (first_score passes '0' so too).
local revoked, revoked_ids = {}, {}
local function take(count)
  -- A repeat must be told even when the queue is empty now: the first run took jobs under this token.
  if is_repeat() then return {} end
  local ids = redis.call('LPOP', queue_key, count)
  if not ids then return {} end
  if redis.call('SCARD', revoked_key) > 0 then
    local flags, kept = chard_chunked_list('SMISMEMBER', revoked_key, ids), {}
    for i, id in ipairs(ids) do
      if flags[i] == 1 then revoked_ids[#revoked_ids + 1] = id else kept[#kept + 1] = id end
    end
    if #revoked_ids > 0 then
      local jsons = chard_chunked_list('HMGET', jobs_key, revoked_ids)
      for i, id in ipairs(revoked_ids) do
        if jsons[i] then revoked[#revoked + 1] = jsons[i] else chard_corrupt(dropped, id, false) end
      end
    end
    ids = kept
    if #ids == 0 then return {} end
  end
  local jsons = chard_chunked_list('HMGET', jobs_key, ids)
  for i = 1, #ids do
    if not jsons[i] then -- some ids have no JSON: keep the others, in order
      local keep_ids, keep_jsons, lost = {}, {}, {}
      for j = 1, #ids do
        if jsons[j] then
          keep_ids[#keep_ids + 1], keep_jsons[#keep_jsons + 1] = ids[j], jsons[j]
        else
          lost[#lost + 1] = ids[j]
          chard_corrupt(dropped, ids[j], false)
        end
      end
      drop(lost)
      ids, jsons = keep_ids, keep_jsons
      break
    end
  end
  if #ids > 0 then mark_running(ids) end
  return jsons
end

-- With concurrency limits: the jobs still wanted are popped and read in one LPOP and one HMGET
-- (more rounds only when some were set aside or dropped), then looked at in queue order, each
-- job's task read from its JSON. Jobs of a task at its limit are set aside and go back to the
-- front of the queue in their original order.
local function take_limited(limit, count)
  if is_repeat() then return {} end
  local current, taken, taken_order, set_aside, ids, jsons = {}, {}, {}, {}, {}, {}
  local any_revoked = redis.call('SCARD', revoked_key) > 0
  while #ids < count do
    local popped = redis.call('LPOP', queue_key, count - #ids)
    if not popped then break end
    local stored, lost = chard_chunked_list('HMGET', jobs_key, popped), {}
    local flags = any_revoked and chard_chunked_list('SMISMEMBER', revoked_key, popped)
    for i, id in ipairs(popped) do
      local json = stored[i]
      local job = json and chard_read_job(json)
      local accept = false
      if not job or job.id ~= id then
        chard_corrupt(dropped, id, json, unreadable)
        lost[#lost + 1] = id
      elseif flags and flags[i] == 1 then
        revoked[#revoked + 1], revoked_ids[#revoked_ids + 1] = json, id
      elseif limit[job.task] then
        local cur = current[job.task] or tonumber(redis.call('HGET', cur_key, job.task)) or 0
        current[job.task] = cur
        if cur >= limit[job.task] then
          set_aside[#set_aside + 1] = id
        else
          current[job.task] = cur + 1
          if not taken[job.task] then taken_order[#taken_order + 1] = job.task end
          taken[job.task] = (taken[job.task] or 0) + 1
          accept = true
        end
      else
        accept = true
      end
      if accept then ids[#ids + 1], jsons[#jsons + 1] = id, json end
    end
    drop(lost)
  end
  for _, task in ipairs(taken_order) do redis.call('HINCRBY', cur_key, task, taken[task]) end
  -- LPUSH a b c leaves c first: push from the last set-aside job to the first, in chunks.
  local chunk = {}
  for i = #set_aside, 1, -1 do
    chunk[#chunk + 1] = set_aside[i]
    if #chunk == 1000 or i == 1 then
      redis.call('LPUSH', queue_key, unpack(chunk))
      chunk = {}
    end
  end
  if #ids > 0 then mark_running(ids) end
  return jsons
end

-- The score of the first member of a ZSET (its earliest due time), or nil. Looked at first, so
-- the common fetch (nothing due) costs one command per ZSET.
local function first_score(key)
  return redis.call('ZRANGE', key, '0', '0', 'WITHSCORES')[2]
end

-- 1. Due future jobs, in due order, to the queue their JSON names.
local future_next = first_score(future_key)
if future_next and tonumber(future_next) <= now then
  local due = redis.call('ZRANGEBYSCORE', future_key, '-inf', now_s, 'LIMIT', 0, 1000)
  local jsons, lost = chard_chunked_list('HMGET', jobs_key, due), {}
  for i, id in ipairs(due) do
    local job = jsons[i] and chard_read_job(jsons[i])
    if job and job.id == id then
      push(job.queue, id)
    else
      chard_corrupt(dropped, id, jsons[i], unreadable)
      lost[#lost + 1] = id
    end
  end
  drop(lost)
  redis.call('ZREMRANGEBYRANK', future_key, 0, #due - 1)
  future_next = first_score(future_key)
end

-- 2. Due periodic tasks: one job each, next run one period from now (no catch-up burst).
local periodic_next = first_score(periodic_key)
if periodic_next and tonumber(periodic_next) <= now then
  local base_uuid = ARGV[7]
  if not string.match(base_uuid, '^%x+%-%x+%-%x+%-%x+%-%x%x%x%x%x%x%x%x%x%x%x%x$') then
    return redis.error_reply('CHARD_ARGS fetch_jobs: ARGV[7] must be a UUID')
  end
  local base_node = tonumber(string.sub(base_uuid, 25), 16)
  local function periodic_id(i)
    return string.sub(base_uuid, 1, 24) .. string.format('%012x', (base_node + i) % 281474976710656)
  end
  local names = redis.call('ZRANGEBYSCORE', periodic_key, '-inf', now_s, 'LIMIT', 0, 1000)
  local fired = {}
  for _, name in ipairs(names) do
    local raw = redis.call('HGET', tasks_key, name)
    local ok, task = false, nil
    if raw then ok, task = pcall(cjson.decode, raw) end
    local max_retries = raw and string.match(raw, '^{"maxRetries":([^,]+),')
    if ok and type(task) == 'table' and type(task.queue) == 'string' and type(task.periodMs) == 'number'
        and task.periodMs > 0 and max_retries then
      -- Same bytes as lib/jobs.ts periodicJobJSON(id, name, queue, now, maxRetries).
      local id = periodic_id(#fired / 2)
      fired[#fired + 1] = id
      fired[#fired + 1] = '{"id":"' .. id .. '","retries":0,"task":' .. chard_json_string(name)
        .. ',"queue":' .. chard_json_string(task.queue) .. ',"at":' .. now_s .. ',"maxRetries":' .. max_retries
        .. ',"args":[]}'
      push(task.queue, id)
      redis.call('ZADD', periodic_key, chard_score(now + task.periodMs), name)
    else
      redis.call('ZREM', periodic_key, name) -- no (valid) definition: a stale schedule entry
    end
  end
  chard_hset_pairs(jobs_key, fired)
  periodic_next = first_score(periodic_key)
end
for _, key in ipairs(push_order) do chard_chunked('RPUSH', key, pushes[key]) end
if moved > 0 or notify then redis.call('PUBLISH', channel, '') end

-- 3. Take up to maxJobs jobs.
local accepted = {}
if max_jobs > 0 then
  if limits then accepted = take_limited(limits, max_jobs) else accepted = take(ARGV[6]) end
  if #revoked_ids > 0 then
    chard_chunked('SREM', revoked_key, revoked_ids)
    chard_jobs_ended(jobs_key, results_key, expiry_key, ARGV[8], revoked_ids, nil, now, ARGV[10], ARGV[9])
  end
end

chard_end_unreadable(jobs_key, results_key, expiry_key, ARGV[8], unreadable, now, ARGV[9])

-- Taking jobs changes neither ZSET: their first scores from above are still the next due times.
local next_due = future_next or false
if periodic_next and (not next_due or tonumber(periodic_next) < tonumber(next_due)) then next_due = periodic_next end
if repeated then return { accepted, next_due, dropped, revoked, taken_over, 1 } end
if #dropped == 0 and #revoked == 0 and #taken_over == 0 then return { accepted, next_due } end
return { accepted, next_due, dropped, revoked, taken_over }
