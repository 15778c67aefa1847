-- fetch_jobs.lua: a worker's turn in one call. Acknowledges the ended executions it is given,
-- exactly as finish_jobs.lua does (so the concurrency slots they free serve this fetch), then
-- renews the lease, moves what is due into queues, and takes jobs from one or several queues.
-- Schedules are not fired here: the engines' schedulers claim their fire times (enqueue_keyed.lua).
-- KEYS[1]  queue LIST (job ids) to fetch from (the first, with several)
-- KEYS[2]  future ZSET (job ids, score = atMs)
-- KEYS[3]  leases ZSET
-- KEYS[4]  running HASH (job id -> fetch token) of this broker
-- KEYS[5]  max-concurrency HASH
-- KEYS[6]  concurrency HASH
-- KEYS[7]  jobs HASH (job id -> job JSON)
-- KEYS[8]  results HASH
-- KEYS[9]  result-expiry ZSET
-- KEYS[10] revoked SET (ids of pending jobs that were revoked)
-- KEYS[11] progress HASH (acks only)
-- KEYS[12..] queue LISTs: first the other queues to fetch from, in their order (ARGV[15] - 1 of
--          them), then those that retried jobs go back to (acks only; a retry to a queue fetched
--          from names its key: KEYS[1] or one of the first)
-- ARGV[1]  key prefix "{chard:<ns>}". The queues that due future jobs go to
--          depend on the stored data, so their keys are built here as prefix..":queue:"..queue:
--          they carry the prefix's hash tag, hence live in the same Cluster slot as KEYS.
-- ARGV[2]  events channel (published to, once, when a job was moved, or the acks re-enqueued a
--          job or freed a concurrency slot)
-- ARGV[3]  broker id
-- ARGV[4]  now (epoch ms, the client's clock)
-- ARGV[5]  lease expiry (now + leaseMs)
-- ARGV[6]  maxJobs
-- ARGV[7]  results channel (the ids of the jobs the acks ended, and of revoked jobs dropped here,
--          are published to it)
-- ARGV[8]  how long the record of a revoked job is kept (ms)
-- ARGV[9]  the record of a revoked job (lib/results.ts REVOKED_RECORD)
-- ARGV[10..13] the acks and slot releases, packed as ARGV[4..7] of finish_jobs.lua (see its
--          header), run first by chard_finish_jobs; "0", "", "", "" for none
-- ARGV[14] this fetch's token: its send time (ms), or this broker's last token + 1 if not later.
--          The jobs taken are stored in the running HASH under it, and so is the highest token
--          that took jobs (field "~seq"): a fetch run twice (the client re-sent it on reconnect)
--          or late, after a later one, takes nothing and says so, and the broker then puts back
--          (reclaim_orphans.lua) what the first run took under that token. Acks are fenced by
--          their own tokens (see finish_jobs.lua), so the call as a whole is safe to apply twice.
-- ARGV[15] the number of queues to fetch from (KEYS[1], then the first of KEYS[12..]): strict
--          priority between them, in their order: each gives what it can before the next is looked at.
-- ARGV[16] the acks' failures and ended records, as ARGV[9] of finish_jobs.lua ("" for none)
-- ARGV[17] the stores' bounds, as ARGV[10] of finish_jobs.lua
-- ARGV[18] the task and queue of each ack, as ARGV[11] of finish_jobs.lua
-- ARGV[19] the sleep mark as the broker believes it is: "m" (marked), "u" (not marked) or "?"
--          (it cannot tell: a reply was lost, or another fetch of its is on the wire). A fetch
--          (maxJobs > 0, not a repeat) that takes fewer entries than maxJobs (jobs, revoked and
--          corrupt ones) leaves the pool asleep until something wakes it: it marks the broker in
--          the HASH prefix..":sleepers" (broker id -> now), unless it was marked ("m"); a full one
--          unmarks it, unless it was not ("u"). The enqueue scripts publish their wake-up only
--          while that HASH has a field. Marking in the script that found the queue empty is what
--          makes this safe: an enqueue after it sees the mark, one before it is seen by the fetch.
--          A wrong "u" costs publishes nobody needs; "m" is sent only when no other fetch of the
--          broker that may unmark is on the wire.
-- Every move is counted per state, task and queue (<p>:counts, built from the prefix: chard_tally):
-- due jobs from waiting or retrying to queued, jobs taken from queued to running, revoked jobs
-- dropped out of queued, and the acks' moves; one HINCRBY per field changed, at the end.
-- Within a queue q, jobs with a priority n other than 0 wait in its levels, the LISTs
-- prefix..":prio:"..n..":"..q (FIFO), listed in the ZSET prefix..":prios:"..q while they hold
-- jobs (member n, score -n), and flagged in the field "" of KEYS[5] ("prio:"..q, read with the
-- limits, so a queue without priorities costs no command more): see chard_push_level. A fetch
-- takes the levels n > 0 (highest first), then priority 0 (the queue LIST), then the levels n < 0;
-- with concurrency limits, the lanes below are served among them by priority (take_gated).
-- Jobs of a task with a concurrency limit wait in the task's lane, a LIST
-- prefix..":lane:"..queue..":t:"..task, and the lanes of a queue that hold jobs are listed in the
-- ZSET prefix..":lanes:"..queue (task -> when the lane last gave a job), and the queues that have
-- had lanes in the SET prefix..":lane-queues"; a lane's jobs of priority n other than 0 wait in its
-- levels prefix..":plane:"..n..":"..queue..":t:"..task (see chard_push_lane): see take_gated. Their keys are built here from
-- the prefix and the queue's name (KEYS[1] is prefix..":queue:"..queue), as are the levels'.
-- A paused queue (flag "paused:"..q in the field "" of KEYS[5], see pause_queue.lua) gives
-- nothing: the other queues are served, and everything else of the turn happens.
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
local queue_key, future_key, leases_key, running_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local max_key, cur_key, jobs_key, results_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local expiry_key, revoked_key = KEYS[9], KEYS[10]
local prefix, channel, broker_id, now_s = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, max_jobs = tonumber(now_s), tonumber(ARGV[6])
local queue_keys = { queue_key }
for i = 2, tonumber(ARGV[15]) do queue_keys[i] = KEYS[10 + i] end

-- 0. The acks, first. One HGETALL of the limits and flags serves them and the fetch (without a
-- fetch, the acks read it only if they need it).
local limits, flags = nil, nil
if max_jobs > 0 then limits, flags = chard_limits(max_key) end
flags = flags or {}
local notify, taken_over, tally = false, {}, {}
if ARGV[11] ~= '' or ARGV[13] ~= '' then
  local keys = { running = running_key, max_concurrency = max_key, concurrency = cur_key, future = future_key,
    jobs = jobs_key, results = results_key, result_expiry = expiry_key, progress = KEYS[11], by_index = KEYS,
    prefix = prefix, flags = flags, broker = broker_id }
  notify, taken_over = chard_finish_jobs(keys, ARGV[7], limits, now, tonumber(ARGV[10]), ARGV[11], ARGV[12], ARGV[13],
    ARGV[16], chard_read_bounds(ARGV[17]), tally, ARGV[18])
end
local token, repeated = ARGV[14], false
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
-- A lane key (its LIST, priority 0): see take_gated below.
local function lane_of(queue, task) return prefix .. ':lane:' .. queue .. ':t:' .. task end
local lanes_touched, level_of, lane_level_of = {}, {}, {}
-- Queues job `id` (of `task`, priority `prio`) at the tail of `queue`: of its task's lane when
-- the task is limited (by its priority, see chard_push_lane), else of its level when it has a
-- priority (see chard_push_level).
local group_pushes, group_order = {}, {}
local function push(queue, id, task, prio, group)
  local key = prefix .. ':queue:' .. queue
  if group then -- to its group's lane (chard_push_group), by its priority
    local lane = chard_group_lane(task, group)
    local g = queue .. '\1' .. lane .. '\1' .. string.format('%d', prio or 0)
    if not group_pushes[g] then
      group_pushes[g] = { queue, lane, prio or 0, {} }
      group_order[#group_order + 1] = g
    end
    table.insert(group_pushes[g][4], id)
    moved = moved + 1
    return
  end
  if limits and limits[task] then
    key = lane_of(queue, task)
    if prio and prio ~= 0 then
      key = prefix .. ':plane:' .. string.format('%d', prio) .. ':' .. queue .. ':t:' .. task
      if not pushes[key] then lane_level_of[key] = { queue, task, prio } end
    end
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
-- { id, JSON, task, priority or nil } in their order.
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
      out[#out + 1] = { id, json, job.task, job.prio, job.group }
    end
  end
  drop(lost)
  return out
end

-- With concurrency limits, jobs of a limited task wait in their task's lane, never in the queue
-- LIST or its levels: a job of priority 0 in the lane's LIST <p>:lane:<q>:t:<task>, one of
-- priority n in the lane's level <p>:plane:<n>:<q>:t:<task> (listed in <p>:plevels:<q>:t:<task>
-- and flagged, see chard_push_lane); the lanes of queue q that hold jobs are listed in the ZSET
-- <p>:lanes:<q> (task -> when it last gave a job: round-robin order). A lane's gate is read here,
-- from the limits and the concurrency HASH, and its levels only when it has a free slot and its
-- flag is set: a saturated task's backlog is never touched, so a fetch costs O(jobs taken + lanes
-- with jobs + levels of the open lanes), whatever the backlog. First the queue's sources (its
-- levels n > 0, its LIST, its levels n < 0: `levels`, nil without the queue's flag) give up to
-- `count` candidates, jobs of limited tasks met there moving to the tail of their lane, by
-- priority (at most MOVE_MAX per fetch; each job is moved once; a chunk that held jobs to move
-- doubles the next). Then the sources that can give a job now (the candidates, each open lane's
-- levels and LIST) are served by priority, highest first; those of one priority give one job each
-- in turn (lanes in <p>:lanes:<q> order, the queue's candidates last) until `count` are taken.
-- Candidates not taken go back to the front of their source. Returns the ids and JSONs taken.
-- The gates of a lane besides its concurrency limit (see set_concurrency_keys.lua, gate_task.lua),
-- read from the flags: a paused task ("tpaused:<task>") gives nothing; a blocked one ("until:<id>"
-- of the task, "t:<task>", or of one of its limiters) gives nothing until then; a rate-limited one
-- ("rl:<task>": its limiters' ids, each defined by "lim:<id>" = {max, window ms}) gives at most
-- what each of its limiters' windows has room for. A window is a sliding log: the ZSET
-- prefix..":rate:"..id holds one member per fetch that took jobs under it,
-- "<broker id>:<fetch token>:<n>" scored by the fetch's time, the field id of the HASH
-- prefix..":rates" their sum and the field id.."@" the latest time counted (a fetch never counts
-- before it: the window's time does not go back when clocks differ by a millisecond); at most
-- `max` jobs start in any `window` ms (by the namespace's clock, which the fetch's `now` follows).
-- A window is read at most once per fetch, and only for a lane with a free slot (HMGET of its
-- sum and time, ZRANGEBYSCORE of its members older than the window, and ZREMRANGEBYSCORE when
-- there are some). A fetch's starts are written once per limiter at the end (ZADD, one HSET of
-- the sum and time; a window only trimmed gets its sum written). `gate_next` is when the first gate that stopped
-- a lane opens: the end of a block, or when the oldest member of an exhausted window leaves it.
local rates_key = prefix .. ':rates'
local windows, gate_next = {}, nil
local function gate_opens(at)
  if at and (not gate_next or at < gate_next) then gate_next = at end
end
-- The window of limiter `id` (false when it has no definition: `def`, else the flag "lim:<id>"),
-- trimmed to now. A group's window (a task's group rate limit, the flag "grl:<task>") has the id
-- "g:" followed by its group lane (chard_group_lane).
local function window(id, def)
  local w = windows[id]
  if w ~= nil then return w end
  def = def or flags['lim:' .. id]
  w = false
  if type(def) == 'table' and tonumber(def[1]) and tonumber(def[2]) then
    local key, ms = prefix .. ':rate:' .. id, tonumber(def[2])
    -- The window's time never goes back: a fetch whose `now` is before the latest start counted
    -- (another process's clock a millisecond ahead, its fetch applied first) counts at that time.
    local got = redis.call('HMGET', rates_key, id, id .. '@')
    local total, mark = tonumber(got[1]) or 0, tonumber(got[2])
    local at = (mark and mark > now) and mark or now
    local cutoff = chard_score(at - ms)
    local old = redis.call('ZRANGEBYSCORE', key, '-inf', cutoff)
    local gone = 0
    if #old > 0 then
      for _, m in ipairs(old) do gone = gone + (tonumber(string.match(m, ':(%d+)$')) or 0) end
      redis.call('ZREMRANGEBYSCORE', key, '-inf', cutoff)
    end
    w = { id = id, key = key, max = tonumber(def[1]), ms = ms, total = math.max(0, total - gone), used = 0, at = at,
      trimmed = #old > 0 }
  end
  windows[id] = w
  return w
end
-- The windows of gated task `task`, or false while a pause or a block stops it (a block's end
-- noted in gate_next).
local function gates_of(task)
  if flags['tpaused:' .. task] then return false end
  local block = tonumber(flags['until:t:' .. task])
  if block and block > now then
    gate_opens(block)
    return false
  end
  local ids, out = flags['rl:' .. task], {}
  if type(ids) ~= 'table' then return out end
  for _, id in ipairs(ids) do
    block = tonumber(flags['until:' .. id])
    if block and block > now then
      gate_opens(block)
      return false
    end
    local w = window(id)
    if w then out[#out + 1] = w end
  end
  return out
end
-- How many more jobs the windows `ws` let start in this fetch.
local function room(ws)
  local left = math.huge
  for _, w in ipairs(ws) do left = math.min(left, w.max - w.total - w.used) end
  return left
end
-- `n` more (or fewer, when negative) jobs start under the windows `ws`.
local function use(ws, n)
  for _, w in ipairs(ws) do w.used = w.used + n end
end
-- Writes this fetch's starts into their windows and notes when the exhausted ones open.
local function commit_windows()
  for id, w in pairs(windows) do
    if w and w.used > 0 then
      local at = chard_score(w.at)
      redis.call('ZADD', w.key, at, broker_id .. ':' .. token .. ':' .. w.used)
      redis.call('HSET', rates_key, id, w.total + w.used, id .. '@', at)
    elseif w and w.trimmed then
      redis.call('HSET', rates_key, id, w.total)
    end
    if w and w.total + w.used >= w.max then
      local head = redis.call('ZRANGE', w.key, '0', '0', 'WITHSCORES')[2]
      if head then gate_opens(tonumber(head) + w.ms) end
    end
  end
end

local MOVE_MAX = 1000
local function take_gated(queue_name, queue_key, limit, count, levels)
  local lanes_key = prefix .. ':lanes:' .. queue_name
  local prios_key = prefix .. ':prios:' .. queue_name
  local moves, move_order, moved_n, plain_n = {}, {}, 0, 0
  -- 1. The queue's sources, in priority order, and their candidates.
  local sources = {}
  for _, n in ipairs(levels or {}) do
    if tonumber(n) > 0 then sources[#sources + 1] = { prio = tonumber(n), n = n } end
  end
  sources[#sources + 1] = { prio = 0, key = queue_key }
  for _, n in ipairs(levels or {}) do
    if tonumber(n) < 0 then sources[#sources + 1] = { prio = tonumber(n), n = n } end
  end
  for _, src in ipairs(sources) do
    src.key = src.key or (prefix .. ':prio:' .. src.n .. ':' .. queue_name)
    src.ids, src.jsons, src.used = {}, {}, 0
    local chunk = count - plain_n
    -- The queue LIST is popped until it gives nothing (as before levels); a level until it runs short.
    while plain_n < count and moved_n < MOVE_MAX and not src.emptied do
      local want = math.min(chunk, count - plain_n + MOVE_MAX - moved_n)
      local popped = redis.call('LPOP', src.key, want)
      src.touched = true
      if not popped then
        src.emptied = true
        break
      end
      if src.n and #popped < want then src.emptied = true end
      local any_moved = false
      for _, entry in ipairs(read(popped)) do
        local task = entry[3]
        if limit[task] or entry[5] then -- a job of a group (stored so by the previous version): to its lane
          local lane = entry[5] and chard_group_lane(task, entry[5]) or task
          local m = moves[lane]
          if not m then
            m = { order = {}, by = {}, group = entry[5] ~= nil }
            moves[lane] = m
            move_order[#move_order + 1] = lane
          end
          local p = entry[4] or 0
          if not m.by[p] then
            m.by[p] = {}
            m.order[#m.order + 1] = p
          end
          table.insert(m.by[p], entry[1])
          moved_n, any_moved = moved_n + 1, true
        else -- more than `count` when a chunk grown by moves popped past them: back to the front below
          src.ids[#src.ids + 1], src.jsons[#src.jsons + 1] = entry[1], entry[2]
          plain_n = plain_n + 1
        end
      end
      if any_moved then chunk = chunk * 2 end
    end
  end
  for _, lane in ipairs(move_order) do
    local m = moves[lane]
    for _, p in ipairs(m.order) do
      if m.group then
        chard_push_group(prefix, max_key, flags, queue_name, lane, p, m.by[p], false)
      else
        chard_push_lane(prefix, max_key, flags, queue_name, lane, p, m.by[p], false)
      end
    end
    if not m.group then redis.call('ZADD', lanes_key, 'NX', now_s, lane) end
  end
  if moved_n > 0 then redis.call('SADD', prefix .. ':lane-queues', queue_name) end
  -- 2. The lanes with jobs, their free slots (a task no longer limited: ungated), and the levels of
  -- the open ones. A lane with levels that an older worker took out of <p>:lanes:<q> (it saw its
  -- LIST empty) is listed again, from its flag.
  -- The lanes are read in rotation order, the first PAGE of them (with every lane that has
  -- levels, listed by its flag, so that priority holds whatever its place); only when fewer of
  -- those can give than the fetch wants (saturated, paused or blocked lanes) are all of them read
  -- (see serve). So a fetch costs O(count) lanes when the lanes ahead can give, not O(active groups).
  local PAGE = math.max(2 * count, 64)
  local lanes, top, more = {}, now, false
  do
    local flat = redis.call('ZRANGE', lanes_key, '0', tostring(PAGE - 1), 'WITHSCORES')
    for k = 1, #flat, 2 do
      lanes[#lanes + 1] = flat[k]
      local score = tonumber(flat[k + 1])
      if score > top then top = score end
    end
    if #flat == 2 * PAGE then
      more = true
      local last = tonumber(redis.call('ZRANGE', lanes_key, '-1', '-1', 'WITHSCORES')[2])
      if last and last > top then top = last end
    end
  end
  if next(flags) ~= nil then
    local head = 'lvl:' .. #queue_name .. ':' .. queue_name .. ':'
    local listed, missing = {}, {}
    for _, task in ipairs(lanes) do listed[task] = true end
    for f in pairs(flags) do
      if string.sub(f, 1, #head) == head and not listed[string.sub(f, #head + 1)] then
        missing[#missing + 1] = string.sub(f, #head + 1)
      end
    end
    table.sort(missing)
    for _, task in ipairs(missing) do
      lanes[#lanes + 1] = task
      redis.call('ZADD', lanes_key, 'NX', now_s, task)
    end
  end
  local ids, jsons, taken, taken_order = {}, {}, {}, {}
  local left = count
  -- A task's concurrency limit is a budget its lanes share (a task has a lane per group), like a
  -- rate window (see room): one per task, read from its counter, shared by both passes.
  local budgets = {}
  -- Serves `lanes` and the queue's candidates, by priority, round-robin. With `partial` (the
  -- first page, more lanes beyond it), gives up before taking anything when fewer of its lanes
  -- can give than the fetch wants: then every lane is served in one pass, so the lanes beyond the
  -- page take their turn as if all had been read. Returns false when it gave up.
  local function serve(lanes, partial)
    local free, lane_srcs, prios_seen, prio_list = {}, {}, {}, {}
    local function see(p)
      if not prios_seen[p] then
        prios_seen[p] = true
        prio_list[#prio_list + 1] = p
      end
    end
    for _, src in ipairs(sources) do
      if #src.ids > 0 then see(src.prio) end
    end
    local lane_gates, counted = {}, {}
    if #lanes > 0 then
      -- The counters read: each lane's (a task's, or a group lane's: see chard_group_lane), and the
      -- task's of a group lane of a limited task.
      local fields, at = {}, {}
      local function field(f)
        if not at[f] then
          fields[#fields + 1] = f
          at[f] = #fields
        end
      end
      for _, lane in ipairs(lanes) do
        field(lane)
        local task, group = chard_lane_parts(lane)
        if group then field(task) end
      end
      local cur = redis.call('HMGET', cur_key, unpack(fields))
      for i, lane in ipairs(lanes) do
        local task, group = chard_lane_parts(lane)
        local cap = limit[task]
        free[i] = count
        local ws = nil
        if cap then
          ws = {}
          counted[i] = { task }
          if cap > 0 then
            budgets[task] = budgets[task] or { max = cap, total = tonumber(cur[at[task]]) or 0, used = 0, conc = true }
            ws[1] = budgets[task]
          end
          local gcap = group and type(flags['gcap:' .. task]) == 'table' and tonumber(flags['gcap:' .. task][1])
          if gcap then
            free[i] = math.max(0, gcap - (tonumber(cur[at[lane]]) or 0))
            counted[i][2] = lane
          end
          -- A group blocked by a RateLimitError of one of its jobs ("until:g:<group lane>").
          local gblock = group and tonumber(flags['until:g:' .. lane])
          if gblock and gblock > now then
            gate_opens(gblock)
            ws = false
          elseif free[i] > 0 and room(ws) > 0 then
            local gs = gates_of(task)
            if not gs then
              ws = false
            else
              for _, w in ipairs(gs) do ws[#ws + 1] = w end
              local grl = group and flags['grl:' .. task]
              local w = grl and window('g:' .. lane, grl)
              if w then ws[#ws + 1] = w end
            end
          end
          if not ws or room(ws) <= 0 then free[i] = 0 end
        else
          counted[i] = {}
        end
        lane_gates[i] = ws or nil
        local srcs = { { prio = 0, key = lane_of(queue_name, lane) } }
        if free[i] > 0 and flags[chard_lane_flag(queue_name, lane)] then
          local lvls = redis.call('ZRANGE', prefix .. ':plevels:' .. queue_name .. ':t:' .. lane, '0', '-1')
          for _, n in ipairs(lvls) do
            local key = prefix .. ':plane:' .. n .. ':' .. queue_name .. ':t:' .. lane
            srcs[#srcs + 1] = { prio = tonumber(n), n = n, key = key }
          end
          srcs.levels, srcs.flagged = #lvls, true
        end
        lane_srcs[i] = srcs
        if free[i] > 0 then
          for _, src in ipairs(srcs) do see(src.prio) end
        end
      end
    end
    if partial then
      local open = 0
      for i = 1, #lanes do
        if free[i] > 0 and (not lane_gates[i] or room(lane_gates[i]) > 0) then open = open + 1 end
      end
      if open < left then return false end
    end
    table.sort(prio_list, function(a, b) return a > b end)
    -- 3. By priority; round-robin within one: each open lane's source of that priority, then the
    -- queue's candidates of it, one job each per turn. What a lane could not give (it ran out) the
    -- other sources of the priority may, in another round.
    local gave = {}
    for _, p in ipairs(prio_list) do
      if left <= 0 then break end
      local cand
      for _, src in ipairs(sources) do
        if src.prio == p then cand = src end
      end
      local at = {}
      for i = 1, #lanes do
        if free[i] > 0 and (not lane_gates[i] or room(lane_gates[i]) > 0) then
          for _, src in ipairs(lane_srcs[i]) do
            if src.prio == p then at[i] = src end
          end
          -- A lane listed for its levels may have an empty LIST: asked only when its turn comes,
          -- so that it takes no turn from the others.
          local src = at[i]
          if p == 0 and src and lane_srcs[i].flagged and redis.call('LLEN', src.key) == 0 then src.emptied = true end
        end
      end
      local again = true
      while again and left > 0 do
        again = false
        local share, cand_n, progress, total = {}, 0, true, 0
        while left - total > 0 and progress do
          progress = false
          for i = 1, #lanes do
            local src = at[i]
            local ws = lane_gates[i]
            if src and not src.emptied and left - total > 0 and (share[i] or 0) < free[i] and (not ws or room(ws) > 0) then
              share[i], total, progress = (share[i] or 0) + 1, total + 1, true
              if ws then use(ws, 1) end
            end
          end
          if cand and left - total > 0 and cand.used + cand_n < #cand.ids then
            cand_n, total, progress = cand_n + 1, total + 1, true
          end
        end
        -- What each source gives in this pass, merged below one job per source per round (the order
        -- the workers start them in).
        local given, rounds = {}, cand_n
        -- The lanes' LPOPs first, then one read (HMGET) of all the ids they gave; revoked and
        -- corrupt entries take no slot: their lanes pop again for them (each is popped once).
        local need = {}
        for i = 1, #lanes do
          if share[i] and share[i] > 0 then
            need[#need + 1] = i
            given[i] = {}
          end
        end
        while #need > 0 do
          local popped, owner = {}, {}
          for _, i in ipairs(need) do
            local src, want = at[i], share[i] - #given[i]
            local got = redis.call('LPOP', src.key, want) or {}
            if #got < want then src.emptied = true end
            src.popped = true
            for _, id in ipairs(got) do
              popped[#popped + 1] = id
              owner[id] = i
            end
          end
          for _, entry in ipairs(#popped > 0 and read(popped) or {}) do
            local mine = given[owner[entry[1]]]
            mine[#mine + 1] = entry
          end
          local again_need = {}
          for _, i in ipairs(need) do
            if #given[i] < share[i] and not at[i].emptied then again_need[#again_need + 1] = i end
          end
          need = again_need
        end
        for i = 1, #lanes do
          local want = share[i]
          if want and want > 0 then
            local n = #given[i]
            if n > rounds then rounds = n end
            if lane_gates[i] and n < want then use(lane_gates[i], n - want) end
            if n > 0 then
              for _, f in ipairs(counted[i]) do
                if not taken[f] then taken_order[#taken_order + 1] = f end
                taken[f] = (taken[f] or 0) + n
              end
              free[i] = free[i] - n
            end
            gave[i] = (gave[i] or 0) + n
            left = left - n
            if n < want then again = true end
          end
        end
        for r = 1, rounds do
          for i = 1, #lanes do
            local entry = given[i] and given[i][r]
            if entry then ids[#ids + 1], jsons[#jsons + 1] = entry[1], entry[2] end
          end
          if cand and r <= cand_n then
            ids[#ids + 1], jsons[#jsons + 1] = cand.ids[cand.used + r], cand.jsons[cand.used + r]
          end
        end
        if cand then
          cand.used = cand.used + cand_n
          left = left - cand_n
        end
      end
    end
    -- A lane that gave goes to the back of the round-robin; an emptied one leaves the ZSET; an
    -- emptied level leaves the lane's levels (and the flag goes with the last).
    local unlisted, requeued = false, {}
    for i, task in ipairs(lanes) do
      if gave[i] then
        local srcs, empty = lane_srcs[i], true
        if srcs.flagged then
          local plevels_key, left_levels = prefix .. ':plevels:' .. queue_name .. ':t:' .. task, srcs.levels
          for _, src in ipairs(srcs) do
            if src.n then
              if src.popped and (src.emptied or redis.call('LLEN', src.key) == 0) then
                redis.call('ZREM', plevels_key, src.n)
                left_levels = left_levels - 1
              end
            end
          end
          if left_levels > 0 then
            empty = false
          else
            local flag = chard_lane_flag(queue_name, task)
            chard_set_flag(max_key, flag, false)
            flags[flag] = nil
          end
        end
        if empty then
          local list
          for _, src in ipairs(srcs) do
            if not src.n then list = src end
          end
          empty = list.emptied or redis.call('LLEN', list.key) == 0
        end
        if empty then
          redis.call('ZREM', lanes_key, task)
          unlisted = true
        elseif gave[i] > 0 then
          requeued[#requeued + 1] = i
        end
      end
    end
    -- The lanes that gave go to the back, in the order of their last job of this fetch (the
    -- round-robin goes on from there in the next one, whoever makes it): by the jobs they gave, then
    -- in their order. Their scores follow the highest one (or now): a rank, not a time.
    if #requeued > 0 then
      table.sort(requeued, function(x, y)
        if gave[x] ~= gave[y] then return gave[x] < gave[y] end
        return x < y
      end)
      local base, pairs_ = math.max(now, top + 1), {}
      for k, i in ipairs(requeued) do
        pairs_[2 * k - 1], pairs_[2 * k] = chard_score(base + k - 1), lanes[i]
      end
      for k = 1, #pairs_, 2000 do redis.call('ZADD', lanes_key, 'XX', unpack(pairs_, k, math.min(k + 1999, #pairs_))) end
      top = base + #requeued - 1
    end
    -- The flag of a queue with group lanes goes once it has no lane left.
    local grp = 'grp:' .. queue_name
    if unlisted and flags[grp] and redis.call('ZCARD', lanes_key) == 0 then
      chard_set_flag(max_key, grp, false)
      flags[grp] = nil
    end
    return true
  end
  if not serve(lanes, more) then serve(redis.call('ZRANGE', lanes_key, '0', '-1'), false) end
  -- Candidates not taken go back to the front of their source, in their order; emptied levels
  -- leave the queue's levels (and its flag goes with the last).
  local removed = false
  for _, src in ipairs(sources) do
    local back = {}
    for k = #src.ids, src.used + 1, -1 do back[#back + 1] = src.ids[k] end
    chard_chunked('LPUSH', src.key, back)
    if src.n and src.touched and #back == 0 and (src.emptied or redis.call('LLEN', src.key) == 0) then
      redis.call('ZREM', prios_key, src.n)
      removed = true
    end
  end
  if removed and redis.call('ZCARD', prios_key) == 0 then
    chard_set_flag(max_key, 'prio:' .. queue_name, false)
    flags['prio:' .. queue_name] = nil
  end
  for _, f in ipairs(taken_order) do redis.call('HINCRBY', cur_key, f, taken[f]) end
  if moved_n >= MOVE_MAX then redis.call('PUBLISH', channel, '') end -- more to move: fetch again
  return ids, jsons
end

-- Takes up to `count` jobs of level `n` (its text) of `queue`, in order (a namespace without
-- concurrency limits: take_gated handles the others). Returns the ids and JSONs taken, and true
-- when the level is now empty (the caller removes it from <p>:prios:<q>).
local function take_level(queue, n, count)
  local key = prefix .. ':prio:' .. n .. ':' .. queue
  local ids, jsons, emptied = {}, {}, false
  while #ids < count and not emptied do
    local want = count - #ids
    local popped = redis.call('LPOP', key, want)
    if not popped then
      emptied = true
      break
    end
    if #popped < want then emptied = true end
    for _, entry in ipairs(read(popped)) do ids[#ids + 1], jsons[#jsons + 1] = entry[1], entry[2] end
  end
  if not emptied and redis.call('LLEN', key) == 0 then emptied = true end
  return ids, jsons, emptied
end

-- Whether some lane of `queue` has levels (its flag is set): then its lanes are read even when no
-- task is limited any more (a task set back to unlimited by a worker of the previous version,
-- which leaves the lane's levels where they are).
local function has_lane_levels(queue)
  if next(flags) == nil then return false end
  local head = 'lvl:' .. #queue .. ':' .. queue .. ':'
  for f in pairs(flags) do
    if string.sub(f, 1, #head) == head then return true end
  end
  return false
end

-- Takes up to `count` jobs of the queue whose LIST is `key` (`count_text`: `count` as text):
-- none while the queue is paused (its flag "paused:<queue>", set by pause_queue.lua). With
-- concurrency limits (or lanes with levels), see take_gated. Without: its levels n > 0, highest
-- first, then the queue LIST, then its levels n < 0. The levels are looked at only when the
-- queue's flag is set. Returns the ids and JSONs taken, in that order.
local function take_queue(key, count, count_text)
  local queue = string.sub(key, #prefix + 8)
  if flags['paused:' .. queue] then return {}, {} end
  local flag = 'prio:' .. queue
  local prios_key = prefix .. ':prios:' .. queue
  local gated = limits or ((flags['grp:' .. queue] or has_lane_levels(queue)) and {})
  if not flags[flag] then
    if gated then return take_gated(queue, key, gated, count, nil) end
    return take(key, count_text)
  end
  local levels = redis.call('ZRANGE', prios_key, '0', '-1')
  if gated then return take_gated(queue, key, gated, count, levels) end
  local ids, jsons, removed = {}, {}, false
  local function add(more_ids, more_jsons)
    for k = 1, #more_ids do ids[#ids + 1], jsons[#jsons + 1] = more_ids[k], more_jsons[k] end
  end
  local function from_levels(positive)
    for _, n in ipairs(levels) do
      if #ids >= count then return end
      if (tonumber(n) > 0) == positive then
        local more_ids, more_jsons, emptied = take_level(queue, n, count - #ids)
        add(more_ids, more_jsons)
        if emptied then
          redis.call('ZREM', prios_key, n)
          removed = true
        end
      end
    end
  end
  from_levels(true)
  if #ids < count then add(take(key, tostring(count - #ids))) end
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
      push(job.queue, id, job.task, job.prio, job.group)
      chard_tally(tally, chard_wait_letter(job), job, -1)
      chard_tally(tally, 'q', job, 1)
    else
      chard_corrupt(dropped, id, jsons[i], unreadable)
      lost[#lost + 1] = id
    end
  end
  drop(lost)
  redis.call('ZREMRANGEBYRANK', future_key, 0, #due - 1)
  future_next = first_score(future_key)
end

for _, key in ipairs(push_order) do
  local level, lane_level = level_of[key], lane_level_of[key]
  if level then
    chard_push_level(prefix, max_key, flags, level[1], level[2], pushes[key], false)
  elseif lane_level then
    chard_push_lane(prefix, max_key, flags, lane_level[1], lane_level[2], lane_level[3], pushes[key], false)
  else
    chard_chunked('RPUSH', key, pushes[key])
  end
end
for _, g in ipairs(group_order) do
  local q, lane, prio, ids = unpack(group_pushes[g])
  chard_push_group(prefix, max_key, flags, q, lane, prio, ids, false)
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
    if #ids > 0 then
      mark_running(ids)
      -- Counted from queued to running, by task and queue: the jobs of a fetch are mostly of one
      -- task, so a job whose task and queue are the previous job's (its JSON has the same text
      -- at its ',"task":') is counted with it, unread.
      local run, needle, n = nil, nil, 0
      for _, json in ipairs(accepted) do
        local at = needle and string.find(json, ',"task":', 1, true)
        if at and string.find(json, needle, at, true) == at then
          n = n + 1
        else
          if run then
            chard_tally(tally, 'q', run, -n)
            chard_tally(tally, 'a', run, n)
          end
          run, n = chard_job_names(json), 1
          needle = run and (',"task":' .. chard_json_string(run.task) .. ',"queue":' .. chard_json_string(run.queue) .. ',')
        end
      end
      if run then
        chard_tally(tally, 'q', run, -n)
        chard_tally(tally, 'a', run, n)
      end
    end
    commit_windows()
  end
  if #revoked_ids > 0 then
    for _, json in ipairs(revoked) do
      local job = chard_read_job(json)
      if job then chard_tally(tally, 'q', job, -1) end
    end
    chard_chunked('SREM', revoked_key, revoked_ids)
    chard_keys_ended(prefix, revoked, now) -- released at revoke already, unless an older version revoked it
    chard_jobs_ended(jobs_key, results_key, expiry_key, ARGV[7], revoked_ids, nil, now, ARGV[9], ARGV[8])
  end
end

chard_end_unreadable(jobs_key, results_key, expiry_key, ARGV[7], unreadable, now, ARGV[8])
chard_write_tally(prefix, tally)

-- 4. The sleep mark (ARGV[19]).
if max_jobs > 0 and not repeated then
  local belief = ARGV[19] or '?'
  if #accepted + #revoked + #dropped / 2 < max_jobs then
    if belief ~= 'm' then redis.call('HSET', prefix .. ':sleepers', broker_id, now_s) end
  elseif belief ~= 'u' then
    redis.call('HDEL', prefix .. ':sleepers', broker_id)
  end
end

-- Taking jobs changes neither ZSET: their first scores from above are still the next due times.
local next_due = future_next or false
if gate_next and (not next_due or gate_next < tonumber(next_due)) then next_due = chard_score(gate_next) end
if repeated then return { accepted, next_due, dropped, revoked, taken_over, 1 } end
if #dropped == 0 and #revoked == 0 and #taken_over == 0 then return { accepted, next_due } end
return { accepted, next_due, dropped, revoked, taken_over }
