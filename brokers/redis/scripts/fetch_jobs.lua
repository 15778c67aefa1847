-- fetch_jobs.lua: renews the lease, moves what is due into queues, and takes jobs from one queue.
-- KEYS[1]  queue LIST to fetch from
-- KEYS[2]  future ZSET
-- KEYS[3]  periodic ZSET (task name -> next run ms)
-- KEYS[4]  periodic-tasks HASH
-- KEYS[5]  leases ZSET
-- KEYS[6]  running HASH of this broker
-- KEYS[7]  max-concurrency HASH
-- KEYS[8]  concurrency HASH
-- KEYS[9]  jobs HASH (id -> "p" pending / "r" running / "x" revoked)
-- KEYS[10] results HASH
-- KEYS[11] result-expiry ZSET
-- ARGV[1]  key prefix "{chard:<ns>}". The queues that due future jobs and periodic tasks go to
--          depend on the stored data, so their keys are built here as prefix..":queue:"..queue:
--          they carry the prefix's hash tag, hence live in the same Cluster slot as KEYS.
-- ARGV[2]  events channel (published to when a job was moved)
-- ARGV[3]  broker id
-- ARGV[4]  now (epoch ms, the client's clock)
-- ARGV[5]  lease expiry (now + leaseMs)
-- ARGV[6]  maxJobs
-- ARGV[7]  a fresh random UUID (v4) for periodic jobs: Lua cannot make random ids, so the i-th
--          job fired by this call (i from 0) gets this UUID with i added to its last 48 bits
--          (version and variant untouched): unique within the call, and across calls by the
--          other 74 random bits. At most 1000 periodic tasks fire per call (the rest stay due).
-- ARGV[8]  results channel (the ids of revoked jobs dropped here are published to it)
-- ARGV[9]  how long the record of a revoked job is kept (ms)
-- ARGV[10] the record of a revoked job (lib/results.ts REVOKED_RECORD)
-- Revoked jobs popped from the queue are dropped, never run: their record is kept and they are
-- returned apart, so the worker sends jobRevoked.
-- Returns { accepted job JSONs in queue order, nextDueAtMs (string) or nil,
--           corrupt entries dropped (for the log), revoked job JSONs }
local queue_key, future_key, periodic_key, tasks_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local leases_key, running_key, max_key, cur_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local jobs_key, results_key, expiry_key = KEYS[9], KEYS[10], KEYS[11]
local prefix, channel, broker_id, now_s = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, max_jobs = tonumber(now_s), tonumber(ARGV[6])

redis.call('ZADD', leases_key, ARGV[5], broker_id)

local dropped, moved = {}, 0
local pushes, push_order = {}, {}
local function push(queue, json)
  local key = prefix .. ':queue:' .. queue
  if not pushes[key] then
    pushes[key] = {}
    push_order[#push_order + 1] = key
  end
  table.insert(pushes[key], json)
  moved = moved + 1
end

-- 1. Due future jobs, in due order, stored string untouched.
local due = redis.call('ZRANGEBYSCORE', future_key, '-inf', now_s, 'LIMIT', 0, 1000)
for _, json in ipairs(due) do
  local job = chard_read_job(json)
  if job then push(job.queue, json) else dropped[#dropped + 1] = json end
end
if #due > 0 then redis.call('ZREMRANGEBYRANK', future_key, 0, #due - 1) end

-- 2. Due periodic tasks: one job each, next run one period from now (no catch-up burst).
local base_uuid = ARGV[7]
if not string.match(base_uuid, '^%x+%-%x+%-%x+%-%x+%-%x%x%x%x%x%x%x%x%x%x%x%x$') then
  return redis.error_reply('CHARD_ARGS fetch_jobs: ARGV[7] must be a UUID')
end
local base_node = tonumber(string.sub(base_uuid, 25), 16)
local function periodic_id(i)
  return string.sub(base_uuid, 1, 24) .. string.format('%012x', (base_node + i) % 281474976710656)
end
do
  local names = redis.call('ZRANGEBYSCORE', periodic_key, '-inf', now_s, 'LIMIT', 0, 1000)
  local fired, fired_ids = 0, {}
  for _, name in ipairs(names) do
    local raw = redis.call('HGET', tasks_key, name)
    local ok, task = false, nil
    if raw then ok, task = pcall(cjson.decode, raw) end
    local max_retries = raw and string.match(raw, '^{"maxRetries":([^,]+),')
    if ok and type(task) == 'table' and type(task.queue) == 'string' and type(task.periodMs) == 'number'
        and task.periodMs > 0 and max_retries then
      -- Same bytes as lib/jobs.ts periodicJobJSON(id, name, queue, now, maxRetries).
      fired_ids[#fired_ids + 1] = periodic_id(fired)
      push(task.queue, '{"id":"' .. periodic_id(fired) .. '","retries":0,"task":' .. chard_json_string(name)
        .. ',"queue":' .. chard_json_string(task.queue) .. ',"at":' .. now_s .. ',"maxRetries":' .. max_retries
        .. ',"args":[]}')
      redis.call('ZADD', periodic_key, chard_score(now + task.periodMs), name)
      fired = fired + 1
    else
      redis.call('ZREM', periodic_key, name) -- no (valid) definition: a stale schedule entry
    end
  end
  if #fired_ids > 0 then chard_hset_all(jobs_key, fired_ids, 'p') end
end
for _, key in ipairs(push_order) do chard_chunked('RPUSH', key, pushes[key]) end
if moved > 0 then redis.call('PUBLISH', channel, '') end

-- 3. Take up to maxJobs jobs. Jobs of a task at its concurrency limit are set aside and go back
-- to the front of the queue in their original order.
local accepted, running, accepted_ids, revoked, revoked_ids = {}, {}, {}, {}, {}
local function accept(id, json)
  accepted[#accepted + 1] = json
  accepted_ids[#accepted_ids + 1] = id
  running[#running + 1] = id
  running[#running + 1] = json
end
local function drop_revoked(id, json)
  revoked[#revoked + 1] = json
  revoked_ids[#revoked_ids + 1] = id
end
if max_jobs > 0 then
  local limits = redis.call('HGETALL', max_key)
  if #limits == 0 then
    local popped = redis.call('LPOP', queue_key, max_jobs) or {}
    local ids, jsons = {}, {}
    for _, json in ipairs(popped) do
      local id = chard_job_id(json)
      if id then
        ids[#ids + 1] = id
        jsons[#jsons + 1] = json
      else
        dropped[#dropped + 1] = json
      end
    end
    local states = #ids > 0 and redis.call('HMGET', jobs_key, unpack(ids)) or {}
    for i, id in ipairs(ids) do
      if states[i] == 'x' then drop_revoked(id, jsons[i]) else accept(id, jsons[i]) end
    end
  else
    local limit, current, taken, taken_order, set_aside = {}, {}, {}, {}, {}
    for i = 1, #limits, 2 do limit[limits[i]] = tonumber(limits[i + 1]) end
    while #accepted < max_jobs do
      local json = redis.call('LPOP', queue_key)
      if not json then break end
      local job = chard_read_job(json)
      if not job then
        dropped[#dropped + 1] = json
      elseif redis.call('HGET', jobs_key, job.id) == 'x' then
        drop_revoked(job.id, json)
      elseif limit[job.task] then
        local cur = current[job.task] or tonumber(redis.call('HGET', cur_key, job.task)) or 0
        current[job.task] = cur
        if cur >= limit[job.task] then
          set_aside[#set_aside + 1] = json
        else
          current[job.task] = cur + 1
          if not taken[job.task] then taken_order[#taken_order + 1] = job.task end
          taken[job.task] = (taken[job.task] or 0) + 1
          accept(job.id, json)
        end
      else
        accept(job.id, json)
      end
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
  end
  for i = 1, #running, 2000 do
    redis.call('HSET', running_key, unpack(running, i, math.min(i + 1999, #running)))
  end
  if #accepted_ids > 0 then chard_hset_all(jobs_key, accepted_ids, 'r') end
  if #revoked_ids > 0 then
    chard_jobs_ended(jobs_key, results_key, expiry_key, ARGV[8], revoked_ids, nil, now, ARGV[10], ARGV[9])
  end
end

local next_due = false
local first_future = redis.call('ZRANGE', future_key, 0, 0, 'WITHSCORES')
local first_periodic = redis.call('ZRANGE', periodic_key, 0, 0, 'WITHSCORES')
if first_future[2] then next_due = first_future[2] end
if first_periodic[2] and (not next_due or tonumber(first_periodic[2]) < tonumber(next_due)) then
  next_due = first_periodic[2]
end
return { accepted, next_due, dropped, revoked }
