-- fetch_jobs.lua: a worker's turn in one call. Acknowledges the ended executions it is given,
-- exactly as finish_jobs.lua does (so the concurrency slots they free serve this fetch), then
-- renews the lease, moves what is due into queues, and takes jobs from one or several queues.
-- KEYS[1]  queue LIST (job ids) to fetch from (the first, with several)
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
-- KEYS[14..] queue LISTs: first the other queues to fetch from, in their order (ARGV[16] - 1 of
--          them), then those that retried jobs go back to (acks only; a retry to a queue fetched
--          from names its key: KEYS[1] or one of the first)
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
-- ARGV[16] the number of queues to fetch from (KEYS[1], then the first of KEYS[14..]): strict
--          priority between them, in their order: each gives what it can before the next is looked at.
-- Within a queue q, jobs with a priority n other than 0 wait in its levels, the LISTs
-- prefix..":prio:"..n..":"..q (FIFO), listed in the ZSET prefix..":prios:"..q while they hold
-- jobs (member n, score -n), and flagged in the field "" of KEYS[7] ("prio:"..q, read with the
-- limits, so a queue without priorities costs no command more): see chard_push_level. A fetch
-- takes the levels n > 0 (highest first), then priority 0 (the queue LIST and the lanes below),
-- then the levels n < 0. Jobs of a limited task found in a level are moved to its task's lane
-- (the lanes count as priority 0), and a wake-up is published so that a fetch serves them.
-- Jobs of a task with a concurrency limit wait in the task's lane, a LIST
-- prefix..":lane:"..queue..":t:"..task, and the lanes of a queue that hold jobs are listed in the
-- ZSET prefix..":lanes:"..queue (task -> when the lane last gave a job), and the queues that have
-- had lanes in the SET prefix..":lane-queues": see take_limited. Their keys are built here from
-- the prefix and the queue's name (KEYS[1] is prefix..":queue:"..queue), as are the levels'.
-- Revoked jobs popped from the queue are dropped, never run: their record is kept, their key (if
-- any, and still theirs) released or given its ttl, and they are returned apart, so the worker
-- sends jobRevoked. An id whose JSON is missing is dropped (never
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
local queue_keys = { queue_key }
for i = 2, tonumber(ARGV[16]) do queue_keys[i] = KEYS[12 + i] end

-- 0. The acks, first. One HGETALL of the limits and flags serves them and the fetch (without a
-- fetch, the acks read it only if they need it).
local limits, flags = nil, nil
if max_jobs > 0 then limits, flags = chard_limits(max_key) end
flags = flags or {}
local notify, taken_over = false, {}
if ARGV[12] ~= '' or ARGV[14] ~= '' then
  local keys = { running = running_key, max_concurrency = max_key, concurrency = cur_key, future = future_key,
    jobs = jobs_key, results = results_key, result_expiry = expiry_key, progress = KEYS[13], by_index = KEYS,
    prefix = prefix, flags = flags }
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
-- A lane key: see take_limited below.
local function lane_of(queue, task) return prefix .. ':lane:' .. queue .. ':t:' .. task end
local lanes_touched, level_of = {}, {}
-- Queues job `id` (of `task`, priority `prio`) at the tail of `queue`: of its task's lane when
-- the task is limited, else of its level when it has a priority (see chard_push_level).
local function push(queue, id, task, prio)
  local key = prefix .. ':queue:' .. queue
  if limits and limits[task] then
    key = lane_of(queue, task)
    if not pushes[key] then lanes_touched[#lanes_touched + 1] = { queue, task } end
  elseif prio and prio ~= 0 then
    key = prefix .. ':prio:' .. string.format('%d', prio) .. ':' .. queue
    if not pushes[key] then level_of[key] = { queue, prio } end
  end
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
-- Whether the revoked SET has members: asked once per fetch, when first needed.
local any_revoked = nil
local function revoked_any()
  if any_revoked == nil then any_revoked = redis.call('SCARD', revoked_key) > 0 end
  return any_revoked
end
-- Takes up to `count` jobs of the queue LIST `key`; returns their ids and JSONs.
local function take(key, count)
  local ids = redis.call('LPOP', key, count)
  if not ids then return {}, {} end
  if revoked_any() then
    local marks, kept, gone = chard_chunked_list('SMISMEMBER', revoked_key, ids), {}, {}
    for i, id in ipairs(ids) do
      if marks[i] == 1 then gone[#gone + 1] = id else kept[#kept + 1] = id end
    end
    if #gone > 0 then
      local jsons = chard_chunked_list('HMGET', jobs_key, gone)
      for i, id in ipairs(gone) do
        revoked_ids[#revoked_ids + 1] = id
        if jsons[i] then revoked[#revoked + 1] = jsons[i] else chard_corrupt(dropped, id, false) end
      end
    end
    ids = kept
    if #ids == 0 then return {}, {} end
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
  return ids, jsons
end

-- Reads popped ids: corrupt ones dropped, revoked ones set apart; returns the jobs left, as
-- { id, JSON, task } in their order.
local function read(popped)
  local stored, lost, out = chard_chunked_list('HMGET', jobs_key, popped), {}, {}
  local marks = revoked_any() and chard_chunked_list('SMISMEMBER', revoked_key, popped)
  for i, id in ipairs(popped) do
    local json = stored[i]
    local job = json and chard_read_job(json)
    if not job or job.id ~= id then
      chard_corrupt(dropped, id, json, unreadable)
      lost[#lost + 1] = id
    elseif marks and marks[i] == 1 then
      revoked[#revoked + 1], revoked_ids[#revoked_ids + 1] = json, id
    else
      out[#out + 1] = { id, json, job.task }
    end
  end
  drop(lost)
  return out
end

-- With concurrency limits, jobs of a limited task wait in their task's lane, a LIST
-- <p>:lane:<q>:t:<task>, never in the queue LIST; the lanes of queue q that hold jobs are listed in
-- the ZSET <p>:lanes:<q> (task -> when it last gave a job: round-robin order). A lane's gate is
-- read here, from the limits and the concurrency HASH: a saturated task's backlog is never
-- touched, so a fetch costs O(jobs taken + lanes with jobs), whatever the backlog. Jobs of a
-- limited task found in the queue LIST (enqueued, retried or recovered into it, or stored by the
-- previous version) are moved to the tail of their lane first (at most 1000 per fetch; each job
-- is moved once). Then the lanes with a free slot and the queue LIST give one job each in turn
-- (lanes in <p>:lanes:<q> order, the queue LIST last), until `count` are taken. Returns the ids
-- and JSONs taken.
local MOVE_MAX = 1000
local function take_limited(queue_name, queue_key, limit, count)
  local lanes_key = prefix .. ':lanes:' .. queue_name
  local function lane_key(task) return lane_of(queue_name, task) end
  local plain_ids, plain_jsons, moves, move_order, moved_n = {}, {}, {}, {}, 0
  local ids, jsons, taken, taken_order = {}, {}, {}, {}
  -- 1. Plain candidates from the queue LIST, moving limited tasks' jobs to their lanes. A chunk
  -- with jobs moved doubles the next one, so a long run of them costs few commands per job.
  local chunk = count
  while #plain_ids < count and moved_n < MOVE_MAX do
    local popped = redis.call('LPOP', queue_key, math.min(chunk, count - #plain_ids + MOVE_MAX - moved_n))
    if not popped then break end
    local any_moved = false
    for _, entry in ipairs(read(popped)) do
      local task = entry[3]
      if limit[task] then
        if not moves[task] then
          moves[task] = {}
          move_order[#move_order + 1] = task
        end
        table.insert(moves[task], entry[1])
        moved_n, any_moved = moved_n + 1, true
      else -- more than `count` when a chunk grown by moves popped past them: back to the front below
        plain_ids[#plain_ids + 1], plain_jsons[#plain_jsons + 1] = entry[1], entry[2]
      end
    end
    if any_moved then chunk = chunk * 2 end
  end
  for _, task in ipairs(move_order) do
    chard_chunked('RPUSH', lane_key(task), moves[task])
    redis.call('ZADD', lanes_key, 'NX', now_s, task)
  end
  if moved_n > 0 then redis.call('SADD', prefix .. ':lane-queues', queue_name) end
  -- 2. The lanes with jobs, and their free slots (a task no longer limited: ungated).
  local lanes = redis.call('ZRANGE', lanes_key, '0', '-1')
  local free, share = {}, {}
  if #lanes > 0 then
    local cur = redis.call('HMGET', cur_key, unpack(lanes))
    for i, task in ipairs(lanes) do
      free[i] = limit[task] and math.max(0, limit[task] - (tonumber(cur[i]) or 0)) or count
      share[i] = 0
    end
  end
  -- 3. Round-robin: each lane with a free slot, then the queue LIST, one job each per turn.
  local left, plain_n, progress = count, 0, true
  while left > 0 and progress do
    progress = false
    for i = 1, #lanes do
      if left > 0 and share[i] < free[i] then
        share[i], left, progress = share[i] + 1, left - 1, true
      end
    end
    if left > 0 and plain_n < math.min(#plain_ids, count) then
      plain_n, left, progress = plain_n + 1, left - 1, true
    end
  end
  for i, task in ipairs(lanes) do
    if share[i] > 0 then
      local key = lane_key(task)
      -- Revoked and corrupt entries take no slot: pop again for them (each is popped once).
      local n, emptied = 0, false
      while n < share[i] and not emptied do
        local got = redis.call('LPOP', key, share[i] - n) or {}
        emptied = #got < share[i] - n
        for _, entry in ipairs(read(got)) do
          ids[#ids + 1], jsons[#jsons + 1] = entry[1], entry[2]
          n = n + 1
        end
      end
      if limit[task] and n > 0 then
        taken_order[#taken_order + 1] = task
        taken[task] = n
      end
      -- A lane that gave goes to the back of the round-robin; an emptied one leaves the ZSET.
      if emptied or redis.call('LLEN', key) == 0 then
        redis.call('ZREM', lanes_key, task)
      else
        redis.call('ZADD', lanes_key, 'XX', now_s, task)
      end
      -- What a lane could not give (it ran out) the queue LIST may.
      plain_n = math.min(#plain_ids, plain_n + share[i] - n)
    end
  end
  for i = 1, plain_n do ids[#ids + 1], jsons[#jsons + 1] = plain_ids[i], plain_jsons[i] end
  -- Candidates not taken go back to the front of the queue LIST, in their order.
  local back = {}
  for i = #plain_ids, plain_n + 1, -1 do back[#back + 1] = plain_ids[i] end
  chard_chunked('LPUSH', queue_key, back)
  for _, task in ipairs(taken_order) do redis.call('HINCRBY', cur_key, task, taken[task]) end
  if moved_n >= MOVE_MAX then redis.call('PUBLISH', channel, '') end -- more to move: fetch again
  return ids, jsons
end

-- Takes up to `count` jobs of level `n` (its text) of `queue`, in order; jobs of limited tasks
-- (`limit`, false when none) met there move to the tail of their task's lane (at most MOVE_MAX
-- per level per fetch; `wake` is set so that a wake-up is published). Returns the ids and JSONs
-- taken, and true when the level is now empty (the caller removes it from <p>:prios:<q>).
local wake = false
local function take_level(queue, n, count, limit)
  local key = prefix .. ':prio:' .. n .. ':' .. queue
  local ids, jsons, moves, move_order, moved_n, emptied = {}, {}, {}, {}, 0, false
  while #ids < count and not emptied and moved_n < MOVE_MAX do
    local want = count - #ids
    local popped = redis.call('LPOP', key, want)
    if not popped then
      emptied = true
      break
    end
    if #popped < want then emptied = true end
    for _, entry in ipairs(read(popped)) do
      local task = entry[3]
      if limit and limit[task] then
        if not moves[task] then
          moves[task] = {}
          move_order[#move_order + 1] = task
        end
        table.insert(moves[task], entry[1])
        moved_n = moved_n + 1
      else
        ids[#ids + 1], jsons[#jsons + 1] = entry[1], entry[2]
      end
    end
  end
  for _, task in ipairs(move_order) do
    chard_chunked('RPUSH', lane_of(queue, task), moves[task])
    redis.call('ZADD', prefix .. ':lanes:' .. queue, 'NX', now_s, task)
  end
  if moved_n > 0 then
    redis.call('SADD', prefix .. ':lane-queues', queue)
    wake = true
  end
  if not emptied and redis.call('LLEN', key) == 0 then emptied = true end
  return ids, jsons, emptied
end

-- Takes up to `count` jobs of the queue whose LIST is `key` (`count_text`: `count` as text):
-- its levels n > 0, highest first, then priority 0 (the queue LIST, and the lanes with limits),
-- then its levels n < 0. The levels are looked at only when the queue's flag is set. Returns
-- the ids and JSONs taken, in that order.
local function take_queue(key, count, count_text)
  local queue = string.sub(key, #prefix + 8)
  local flag = 'prio:' .. queue
  if not flags[flag] then
    if limits then return take_limited(queue, key, limits, count) end
    return take(key, count_text)
  end
  local prios_key = prefix .. ':prios:' .. queue
  local levels = redis.call('ZRANGE', prios_key, '0', '-1')
  local ids, jsons, removed = {}, {}, false
  local function add(more_ids, more_jsons)
    for k = 1, #more_ids do ids[#ids + 1], jsons[#jsons + 1] = more_ids[k], more_jsons[k] end
  end
  local function from_levels(positive)
    for _, n in ipairs(levels) do
      if #ids >= count then return end
      if (tonumber(n) > 0) == positive then
        local more_ids, more_jsons, emptied = take_level(queue, n, count - #ids, limits)
        add(more_ids, more_jsons)
        if emptied then
          redis.call('ZREM', prios_key, n)
          removed = true
        end
      end
    end
  end
  from_levels(true)
  if #ids < count then
    if limits then add(take_limited(queue, key, limits, count - #ids)) else add(take(key, tostring(count - #ids))) end
  end
  from_levels(false)
  if removed and redis.call('ZCARD', prios_key) == 0 then
    chard_set_flag(max_key, flag, false)
    flags[flag] = nil
  end
  return ids, jsons
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
      push(job.queue, id, job.task, job.prio)
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
      push(task.queue, id, name)
      redis.call('ZADD', periodic_key, chard_score(now + task.periodMs), name)
    else
      redis.call('ZREM', periodic_key, name) -- no (valid) definition: a stale schedule entry
    end
  end
  chard_hset_pairs(jobs_key, fired)
  periodic_next = first_score(periodic_key)
end
for _, key in ipairs(push_order) do
  local level = level_of[key]
  if level then
    chard_push_level(prefix, max_key, flags, level[1], level[2], pushes[key], false)
  else
    chard_chunked('RPUSH', key, pushes[key])
  end
end
for _, lane in ipairs(lanes_touched) do
  redis.call('ZADD', prefix .. ':lanes:' .. lane[1], 'NX', now_s, lane[2])
  redis.call('SADD', prefix .. ':lane-queues', lane[1])
end
if moved > 0 or notify then redis.call('PUBLISH', channel, '') end

-- 3. Take up to maxJobs jobs, from each queue in turn. A repeat must be told even when the queues
-- are empty now: the first run took jobs under this token.
local accepted = {}
if max_jobs > 0 then
  if not is_repeat() then
    local ids
    ids, accepted = take_queue(queue_keys[1], max_jobs, ARGV[6])
    for i = 2, #queue_keys do
      local left = max_jobs - #accepted
      if left <= 0 then break end
      local more_ids, more_jsons = take_queue(queue_keys[i], left, tostring(left))
      for k = 1, #more_ids do ids[#ids + 1], accepted[#accepted + 1] = more_ids[k], more_jsons[k] end
    end
    if #ids > 0 then mark_running(ids) end
  end
  if wake then redis.call('PUBLISH', channel, '') end -- jobs moved from levels to lanes: fetch them
  if #revoked_ids > 0 then
    chard_chunked('SREM', revoked_key, revoked_ids)
    chard_keys_ended(prefix, revoked, now) -- released at revoke already, unless an older version revoked it
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
