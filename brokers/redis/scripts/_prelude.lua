-- _prelude.lua: helpers for the scripts; not an operation of its own. scripts.ts prepends to each
-- script the helpers it names and those they name, in this file's order: a helper is the comment
-- lines right above a `local function chard_...`, and must come after the helpers it calls.
-- KEYS, ARGV: none. Returns: nothing (defines local functions only). A helper never reads the
-- global KEYS or ARGV of the script it is prepended to: it is given every key and value it uses.
--
-- A job is stored as the exact string lib/jobs.ts `toJSON` writes:
--   {"id":<str>,"retries":<int>,"task":<str>,"queue":<str>,"at":<num>,"maxRetries":<int>,"args":<json>}
-- with optional fields between "maxRetries" and "args" when set (see chard_job_options).
-- Scripts read fields from it but never re-encode it: cjson would turn [] into {}, escape "/" and
-- round numbers to 14 digits. The only rewrite is the `retries` counter, in place.

-- Position of the closing quote of the JSON string that opens at `pos`, or nil.
local function chard_string_end(s, pos)
  local i = pos + 1
  while true do
    local j = string.find(s, '["\\]', i)
    if not j then return nil end
    if string.byte(s, j) == 34 then return j end
    i = j + 2
  end
end

-- The optional fields of a job's JSON that scripts read (lib/jobs.ts writes them after
-- `maxRetries`, in this order, only when set; see docs/queue-model.md "The wire format"): reads
-- them into `job` from `pos` (right after the maxRetries value) and returns true when the text
-- goes on to a JSON field list that holds `"args":`. `prio` (an integer), `key` and `group`
-- (strings) are read; fields scripts do not need (headers, per-job timeouts, and those of later
-- versions) are skipped by finding `,"args":`, which no JSON string can hold (its quotes are
-- escaped).
local function chard_job_options(json, pos, job)
  if string.sub(json, pos, pos + 7) == ',"args":' then return true end
  local prio = string.match(json, '^,"prio":(%-?%d+)', pos)
  if prio then
    job.prio = tonumber(prio)
    pos = pos + 8 + #prio
  end
  for f = 1, 2 do -- key, then group: each a string field, when present
    local name, head = 'key', ',"key":'
    if f == 2 then name, head = 'group', ',"group":' end
    local at = pos + #head
    if string.sub(json, pos, at - 1) == head then
      local close = string.byte(json, at) == 34 and chard_string_end(json, at)
      if not close then return false end
      local ok, value = pcall(cjson.decode, string.sub(json, at, close))
      if not ok or type(value) ~= 'string' then return false end
      job[name] = value
      pos = close + 1
    end
  end
  return string.find(json, ',"args":', pos, true) ~= nil
end

-- The header fields of a job (id, retries, task, queue, at, maxRetries, and the optional `prio`,
-- `key` and `group`: see chard_job_options), or nil when `json` is not a job. Reads toJSON's fixed layout
-- without decoding the arguments: in one match when no string of the header holds an escape and
-- the numbers are integers (about 1.5 us, a third of the field-by-field read below, which gives
-- the same fields for such a header); anything else (another key order) gets a full decode and
-- the same checks as lib/jobs.ts `fromJSON`.
local function chard_read_job(json)
  local id, retries, task, queue, at, max_retries, pos = string.match(json,
    '^{"id":"([^"\\]*)","retries":(%-?%d+),"task":"([^"\\]*)","queue":"([^"\\]*)","at":(%-?%d+),"maxRetries":(%-?%d+)()')
  if id then
    local job = { id = id, retries = tonumber(retries), task = task, queue = queue, at = tonumber(at), maxRetries = tonumber(max_retries) }
    if chard_job_options(json, pos, job) then return job end
  end
  local job
  job, pos = {}, 1
  local function literal(text)
    if string.sub(json, pos, pos + #text - 1) ~= text then return false end
    pos = pos + #text
    return true
  end
  local function str()
    if string.byte(json, pos) ~= 34 then return nil end
    local close = chard_string_end(json, pos)
    if not close then return nil end
    local ok, value = pcall(cjson.decode, string.sub(json, pos, close))
    pos = close + 1
    if ok and type(value) == 'string' then return value end
    return nil
  end
  local function num()
    local text = string.match(json, '^%-?[%d.eE+%-]+', pos)
    if not text then return nil end
    pos = pos + #text
    return tonumber(text)
  end
  if literal('{"id":') then job.id = str() end
  if job.id and literal(',"retries":') then job.retries = num() end
  if job.retries and literal(',"task":') then job.task = str() end
  if job.task and literal(',"queue":') then job.queue = str() end
  if job.queue and literal(',"at":') then job.at = num() end
  if job.at and literal(',"maxRetries":') then job.maxRetries = num() end
  if job.maxRetries and chard_job_options(json, pos, job) then return job end
  local ok, full = pcall(cjson.decode, json)
  if ok and type(full) == 'table' and type(full.id) == 'string' and type(full.task) == 'string'
      and type(full.queue) == 'string' and type(full.at) == 'number' and type(full.retries) == 'number'
      and type(full.maxRetries) == 'number' and type(full.args) == 'table'
      and (full.prio == nil or type(full.prio) == 'number') and (full.key == nil or type(full.key) == 'string')
      and (full.group == nil or type(full.group) == 'string') then
    return full
  end
  return nil
end

-- JSON.stringify(s) byte for byte: cjson.encode differs only on "/" (escaped) and DEL (\u007f).
local function chard_json_string(s)
  if not string.find(s, '[/\127]') then return cjson.encode(s) end
  local out, pos = {}, 1
  while true do
    local i = string.find(s, '[/\127]', pos)
    local enc = cjson.encode(string.sub(s, pos, (i or 0) - 1))
    out[#out + 1] = string.sub(enc, 2, -2)
    if not i then break end
    out[#out + 1] = string.sub(s, i, i)
    pos = i + 1
  end
  return '"' .. table.concat(out) .. '"'
end

-- A score as exact text (Lua's tostring keeps only 14 digits).
local function chard_score(x)
  return string.format('%.17g', x)
end

-- The JSON `json` (as toJSON writes it, so its id is a UUID and its retries an integer) with its
-- id, retries and at replaced by `id`, `retries` and `at` (a number): what a job replaced by a
-- duplicate of its key stores (enqueue_jobs.lua). The task and queue strings are skipped by their
-- closing quotes, so escapes in them are kept as they are. Returns nil when `json` is not laid
-- out so.
local function chard_rewrite_head(json, id, retries, at)
  local task_at = string.find(json, ',"task":', 1, true)
  if not task_at then return nil end
  local task_end = chard_string_end(json, task_at + 8)
  if not task_end or string.sub(json, task_end + 1, task_end + 9) ~= ',"queue":' then return nil end
  local queue_end = chard_string_end(json, task_end + 10)
  if not queue_end or string.sub(json, queue_end + 1, queue_end + 6) ~= ',"at":' then return nil end
  local num = string.match(json, '^%-?[%d.eE+%-]+', queue_end + 7)
  if not num then return nil end
  return '{"id":' .. chard_json_string(id) .. ',"retries":' .. string.format('%d', retries)
    .. string.sub(json, task_at, queue_end) .. ',"at":' .. chard_score(at) .. string.sub(json, queue_end + 7 + #num)
end

-- Splits `packed` into lines ("\n"-separated: JSON text never holds a raw newline) and each line
-- into at most `n` fields at its first spaces; the last field keeps the rest of the line, spaces
-- included (JSON). Batches travel packed in one argument: far cheaper for the client to write than
-- one argument per field. About 1 µs per line: only for the uncommon lines of a batch.
local function chard_lines(packed, n)
  local out, pos, len = {}, 1, #packed
  while pos <= len do
    local eol = string.find(packed, '\n', pos, true) or (len + 1)
    local fields, start = {}, pos
    for f = 1, n - 1 do
      local sp = string.find(packed, ' ', start, true)
      if not sp or sp > eol then break end
      fields[f] = string.sub(packed, start, sp - 1)
      start = sp + 1
    end
    fields[#fields + 1] = string.sub(packed, start, eol - 1)
    out[#out + 1] = fields
    pos = eol + 1
  end
  return out
end

-- Splits `packed`, ids separated by single spaces, into a list. With `width` > 0 every id is
-- `width` bytes, read at fixed positions (the cheapest split); with 0 the ids are found by a
-- plain search for the spaces. "" gives an empty list.
local function chard_split_ids(packed, width)
  local ids, n, len, sub = {}, 0, #packed, string.sub
  if width > 0 then
    for pos = 1, len, width + 1 do
      n = n + 1
      ids[n] = sub(packed, pos, pos + width - 1)
    end
    return ids
  end
  local pos, find = 1, string.find
  while pos <= len do
    local sp = find(packed, ' ', pos, true) or (len + 1)
    n = n + 1
    ids[n] = sub(packed, pos, sp - 1)
    pos = sp + 1
  end
  return ids
end

-- Runs `command key item...` over `items` (in order), in chunks small enough for unpack():
-- RPUSH/LPUSH push them to a LIST, HDEL deletes them as fields of a HASH, SADD/SREM add them to
-- or remove them from a SET. Returns the sum of the integer replies (items added or removed).
local function chard_chunked(command, key, items)
  local total = 0
  for i = 1, #items, 1000 do
    total = total + redis.call(command, key, unpack(items, i, math.min(i + 999, #items)))
  end
  return total
end

-- Runs `command key item...` over `items` in chunks as chard_chunked does, and returns the
-- replies of the chunks as one list (HMGET: one value or false per item; SMISMEMBER: 1 or 0).
local function chard_chunked_list(command, key, items)
  if #items == 0 then return {} end
  if #items <= 1000 then return redis.call(command, key, unpack(items)) end
  local out = {}
  for i = 1, #items, 1000 do
    local part = redis.call(command, key, unpack(items, i, math.min(i + 999, #items)))
    for j = 1, #part do out[i + j - 1] = part[j] end
  end
  return out
end

-- HSET `key` with `args` (field, value, field, value, ...), in chunks.
local function chard_hset_pairs(key, args)
  for i = 1, #args, 2000 do
    redis.call('HSET', key, unpack(args, i, math.min(i + 1999, #args)))
  end
end

-- The turn of an enqueue call in its producer lane (enqueue_jobs.lua, enqueue_keyed.lua): `key` is
-- the lane's STRING <p>:producer:<broker id>:<n>, `arg` "<seq> <ttl ms>". A lane carries one call
-- at a time, every attempt of a call with the same sequence number and each new call with a higher
-- one, so the STRING holds the lane's high-water mark: "<seq>", or "<seq> <reply>" once a keyed
-- call stored its reply. Returns nil (the mark is now `seq`, kept `ttl` ms) when `seq` is above the
-- mark: the call is new. Else the mark stays as it was and the stored value is returned: the call
-- is a repeat of one already applied (the same seq) or a late attempt of an earlier one, and
-- writes nothing. Either way `seq` and `ttl` (strings) come second and third, for a call that
-- stores its reply with the mark. One command for a new call (SET ... GET), two for a repeat.
-- Returns false and a message when `arg` is not "<seq> <ttl>".
local function chard_producer_turn(key, arg)
  local seq, ttl = string.match(arg or '', '^(%d+) (%d+)$')
  if not seq then return false, 'bad producer turn: ' .. tostring(arg) end
  local old = redis.call('SET', key, seq, 'PX', ttl, 'GET')
  if old then
    local mark = tonumber(string.match(old, '^%d+'))
    if mark and mark >= tonumber(seq) then
      redis.call('SET', key, old, 'PX', ttl)
      return old, seq, ttl
    end
  end
  return nil, seq, ttl
end

-- The wake-up of an enqueue (enqueue_jobs.lua, enqueue_keyed.lua): published on `channel` only
-- while some worker pool of the namespace sleeps (the HASH prefix..":sleepers" has a field, see
-- fetch_jobs.lua ARGV[19]), as "w <broker id>", the producer's broker, read from its lane's key
-- `lane_key` (<p>:producer:<broker id>:<n>): that broker woke its own pool already.
local function chard_wake_sleepers(prefix, channel, lane_key)
  if redis.call('EXISTS', prefix .. ':sleepers') == 1 then
    redis.call('PUBLISH', channel, 'w ' .. (string.match(lane_key, ':producer:(.*):%d+$') or ''))
  end
end

-- The flags of a namespace, kept in the field "" of the max-concurrency HASH (no task has an empty
-- name, so no limit can be there): a JSON object flag -> true, such as {"prio:default":true} while
-- queue "default" has jobs waiting at a priority other than 0 (in its levels). Decodes
-- `raw`, the field's value (false or nil when there is none); an unreadable value has no flag.
local function chard_decode_flags(raw)
  if not raw then return {} end
  local ok, flags = pcall(cjson.decode, raw)
  if ok and type(flags) == 'table' then return flags end
  return {}
end

-- Stores `flags` (a table as chard_decode_flags gives) as the flags field "" of the
-- max-concurrency HASH `max_key`: HSET of its JSON, or HDEL of the field when it is empty. Besides
-- the flags set to true, it holds the gates of tasks (see set_concurrency_keys.lua and
-- gate_task.lua): "rl:<task>" (the ids of its rate limiters), "lim:<id>" ({max, window ms}),
-- "tpaused:<task>" (true) and "until:<id>" (blocked until, epoch ms).
local function chard_write_flags(max_key, flags)
  if next(flags) == nil then
    redis.call('HDEL', max_key, '')
  else
    redis.call('HSET', max_key, '', cjson.encode(flags))
  end
end

-- Sets (`on` true) or clears flag `flag` in the flags field "" of the max-concurrency HASH
-- `max_key` (decoded by chard_decode_flags): one HGET, then one HSET (or HDEL of the field when
-- no flag is left) only when it changes.
local function chard_set_flag(max_key, flag, on)
  local flags = chard_decode_flags(redis.call('HGET', max_key, ''))
  if (flags[flag] == true) == on then return end
  if on then flags[flag] = true else flags[flag] = nil end
  chard_write_flags(max_key, flags)
end

-- Queues the ready jobs `ids` of queue `queue` whose priority is `prio` (an integer other than 0)
-- in their level, the LIST prefix..":prio:"..prio..":"..queue (FIFO; the priority comes first in
-- the key so that no queue name can make it another queue's key): at its tail, or with `front`
-- at its front (LPUSH: the last of `ids` ends first). The level is listed in the ZSET
-- prefix..":prios:"..queue (member: the priority as decimal text, score: minus it, so the
-- highest comes first); when it is new there, the flag "prio:<queue>" is set (chard_set_flag),
-- which the fetch reads with the limits: the flag is set exactly while that ZSET is not empty.
-- `flags`, when given, is the caller's copy of the flags, updated too.
local function chard_push_level(prefix, max_key, flags, queue, prio, ids, front)
  local n = string.format('%d', prio)
  chard_chunked(front and 'LPUSH' or 'RPUSH', prefix .. ':prio:' .. n .. ':' .. queue, ids)
  if redis.call('ZADD', prefix .. ':prios:' .. queue, 'NX', string.format('%d', -prio), n) == 1 then
    chard_set_flag(max_key, 'prio:' .. queue, true)
  end
  if flags then flags['prio:' .. queue] = true end
end

-- The flag (in the field "" of the max-concurrency HASH, see chard_set_flag) set while the lane
-- of task `task` in queue `queue` has levels: "lvl:<length of queue>:<queue>:<task>" (the length
-- makes it unambiguous whatever the names hold). The fetch reads a lane's levels only when it is set.
local function chard_lane_flag(queue, task)
  return 'lvl:' .. #queue .. ':' .. queue .. ':' .. task
end

-- Queues the ids `ids` of jobs of limited task `task` in its lane of queue `queue`, by their
-- priority `prio`: 0 (or nil) to the lane's LIST prefix..":lane:"..queue..":t:"..task (the lane
-- of before, which workers of the previous version serve), else to the lane's level, the LIST
-- prefix..":plane:"..prio..":"..queue..":t:"..task (FIFO), listed in the ZSET
-- prefix..":plevels:"..queue..":t:"..task (member the priority as text, score minus it) and
-- flagged (chard_lane_flag) while that ZSET is not empty. At the tail, or at the front with
-- `front` (LPUSH: the last of `ids` ends first). The caller lists the lane in
-- prefix..":lanes:"..queue and the queue in prefix..":lane-queues". `flags`, when given, is the
-- caller's copy of the flags, updated too.
local function chard_push_lane(prefix, max_key, flags, queue, task, prio, ids, front)
  local command = front and 'LPUSH' or 'RPUSH'
  if not prio or prio == 0 then
    chard_chunked(command, prefix .. ':lane:' .. queue .. ':t:' .. task, ids)
    return
  end
  local n = string.format('%d', prio)
  chard_chunked(command, prefix .. ':plane:' .. n .. ':' .. queue .. ':t:' .. task, ids)
  local flag = chard_lane_flag(queue, task)
  if redis.call('ZADD', prefix .. ':plevels:' .. queue .. ':t:' .. task, 'NX', string.format('%d', -prio), n) == 1 then
    chard_set_flag(max_key, flag, true)
  end
  if flags then flags[flag] = true end
end

-- The lane of group `group` of task `task` in a queue (the jobs of a task with a `group` option):
-- "\1"..task.."\1"..group, its member in the ZSET prefix..":lanes:"..queue, and the name its LISTs,
-- levels, flag (chard_lane_flag) and concurrency counter are built with, where a task's lane has
-- the task's name. No task name or group holds a control character, so it is no task's name and
-- reads back unambiguously (chard_lane_parts).
local function chard_group_lane(task, group)
  return '\1' .. task .. '\1' .. group
end

-- The task and group of lane member `lane` (chard_group_lane), or `lane` and nil for a task's lane.
local function chard_lane_parts(lane)
  local task, group = string.match(lane, '^\1([^\1]*)\1(.*)$')
  if task then return task, group end
  return lane, nil
end

-- Frees one concurrency slot of `task` if the task is limited (gated); never goes below 0. Of a
-- job of a group (`group`), the slot of its group lane's counter too (chard_group_lane: kept only
-- for a task with a group limit). `task` may be given as a group lane (as the held slots record
-- it). Returns true when a slot was released (other brokers may now fetch a job of `task`).
local function chard_release(max_key, cur_key, task, group)
  if not group then task, group = chard_lane_parts(task) end
  local freed = false
  if redis.call('HEXISTS', max_key, task) == 1 then
    local fields = { task }
    if group then fields[2] = chard_group_lane(task, group) end
    for _, field in ipairs(fields) do
      local cur = tonumber(redis.call('HGET', cur_key, field))
      if cur and cur > 0 then
        redis.call('HINCRBY', cur_key, field, -1)
        freed = true
      end
    end
  end
  return freed
end

-- Queues the ready jobs `ids` of group lane `lane` (chard_group_lane) of queue `queue`, of priority
-- `prio`, at the tail (at the front with `front`: see chard_push_lane), and lists the lane in
-- prefix..":lanes:"..queue when it is not there, with score 0: a group that becomes active is
-- served first by the next fetch (the round-robin then moves it to the back with the others);
-- also lists the queue in prefix..":lane-queues" and sets the flag "grp:<queue>", which makes the
-- fetch read the queue's lanes (cleared by the fetch once the queue has no lane left). Every path
-- that makes a job of a group ready comes here, so no job of a group waits in the queue LIST
-- behind another group's backlog. `flags`, when given, is the caller's copy of the flags.
local function chard_push_group(prefix, max_key, flags, queue, lane, prio, ids, front)
  chard_push_lane(prefix, max_key, flags, queue, lane, prio, ids, front)
  if redis.call('ZADD', prefix .. ':lanes:' .. queue, 'NX', '0', lane) == 1 then
    redis.call('SADD', prefix .. ':lane-queues', queue)
    local flag = 'grp:' .. queue
    if not (flags and flags[flag]) then chard_set_flag(max_key, flag, true) end
    if flags then flags[flag] = true end
  end
end

-- Queues the ready job `id` of queue `queue` by its priority `prio` (nil or 0: the queue LIST
-- prefix..":queue:"..queue; else its level, see chard_push_level), at the tail, or at the front
-- with `front`. Jobs of limited tasks too: the fetch moves them to their task's lane, by priority.
-- A job of a group goes to its group's lane instead (`lane`, from chard_group_lane: see
-- chard_push_group).
local function chard_push_ready(prefix, max_key, flags, queue, prio, id, front, lane)
  if lane then
    chard_push_group(prefix, max_key, flags, queue, lane, prio, { id }, front)
  elseif prio and prio ~= 0 then
    chard_push_level(prefix, max_key, flags, queue, prio, { id }, front)
  else
    redis.call(front and 'LPUSH' or 'RPUSH', prefix .. ':queue:' .. queue, id)
  end
end

-- Puts the jobs of the lane of task `name` in queue `queue` (it is no longer gated) back to the
-- front of the queue LIST, in their order, those with a priority (in the lane's levels) to the
-- front of their level (chard_push_level), and clears the lane's flag:
-- O(jobs in the lane), for rare calls (a task set back to unlimited, a task resumed). `max_key` is
-- the max-concurrency HASH, `jobs_key` the jobs HASH (read for the priorities of the LIST's jobs);
-- keys built from `prefix` (same hash tag).
local function chard_unlane(prefix, max_key, jobs_key, queue, name)
  local lane = prefix .. ':lane:' .. queue .. ':t:' .. name
  local ids = redis.call('LRANGE', lane, 0, -1)
  local jsons = chard_chunked_list('HMGET', jobs_key, ids)
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
  -- The lane's levels to the front of the queue's levels, in their order; the jobs of a priority
  -- found in the LIST (moved there by the previous version) were moved before them, so they go in
  -- front of them.
  local plevels = prefix .. ':plevels:' .. queue .. ':t:' .. name
  for _, n in ipairs(redis.call('ZRANGE', plevels, '0', '-1')) do
    local key = prefix .. ':plane:' .. n .. ':' .. queue .. ':t:' .. name
    local level_ids, rev = redis.call('LRANGE', key, 0, -1), {}
    for j = #level_ids, 1, -1 do rev[#rev + 1] = level_ids[j] end
    if #rev > 0 then chard_push_level(prefix, max_key, nil, queue, tonumber(n), rev, true) end
    redis.call('DEL', key)
  end
  if redis.call('DEL', plevels) == 1 then chard_set_flag(max_key, chard_lane_flag(queue, name), false) end
  for _, prio in ipairs(order) do chard_push_level(prefix, max_key, nil, queue, prio, levels[prio], true) end
  redis.call('DEL', lane)
  redis.call('ZREM', prefix .. ':lanes:' .. queue, name)
end

-- Takes queued job `id` (its header `job`, from chard_read_job) out of the list it waits in: its
-- level, its queue LIST, its lane's level or its lane (a limited task's, or its group's), found in
-- that order by LREM (O(list) each: for rare operations, never on the path of every job); an
-- emptied lane level leaves its lane's levels (and the lane's flag goes with the last). Keys built
-- from `prefix`; `max_key` is the max-concurrency HASH (the flags). Returns 1 when it was found.
local function chard_unqueue(prefix, max_key, id, job)
  local removed = 0
  local lane = job.group and chard_group_lane(job.task, job.group) or job.task
  if job.prio and job.prio ~= 0 then
    removed = redis.call('LREM', prefix .. ':prio:' .. string.format('%d', job.prio) .. ':' .. job.queue, 1, id)
  end
  if removed == 0 then removed = redis.call('LREM', prefix .. ':queue:' .. job.queue, 1, id) end
  if removed == 0 and job.prio and job.prio ~= 0 then -- its lane's level (see fetch_jobs.lua)
    local n = string.format('%d', job.prio)
    local level = prefix .. ':plane:' .. n .. ':' .. job.queue .. ':t:' .. lane
    removed = redis.call('LREM', level, 1, id)
    if removed == 1 and redis.call('LLEN', level) == 0 then
      local listed = prefix .. ':plevels:' .. job.queue .. ':t:' .. lane
      redis.call('ZREM', listed, n)
      if redis.call('ZCARD', listed) == 0 then chard_set_flag(max_key, chard_lane_flag(job.queue, lane), false) end
    end
  end
  if removed == 0 then removed = redis.call('LREM', prefix .. ':lane:' .. job.queue .. ':t:' .. lane, 1, id) end
  return removed
end

-- What a fetch, a recovery or a reclaim reports for a job id whose JSON is missing or not a job:
-- appends the pair (id, JSON or false) to `list`; with a JSON, also appends `id` to `unreadable`
-- (when given), the jobs to end with chard_end_unreadable.
local function chard_corrupt(list, id, json, unreadable)
  list[#list + 1] = id
  list[#list + 1] = json or false
  if json and unreadable then unreadable[#unreadable + 1] = id end
end

-- The result record of a job whose stored JSON is not a job (lib/results.ts UNREADABLE_RECORD,
-- byte for byte).
local function chard_unreadable_record()
  return '{"ok":false,"error":{"name":"CorruptDataError","message":"the stored data of the job could not be read"}}'
end

-- The record of a job cancelled while it ran whose execution then failed with retries left: it is
-- not retried (lib/results.ts CANCELLED_RETRY_RECORD, byte for byte).
local function chard_cancelled_retry_record()
  return '{"ok":false,"error":{"name":"JobCancelledError","message":"the job was cancelled while it ran; its retry was dropped"}}'
end

-- Takes back job `id` (its stored JSON `json`, or false) of a broker whose lease expired: frees
-- its concurrency slot; a job cancelled while it ran (`cancelled`) is reported cancelled (it
-- fails, never runs again); a retryable job (retries < maxRetries) gets retries + 1, rewritten in
-- place in the jobs HASH (lib/jobs.ts writes "retries" right after "id", so the first match is the
-- top-level one), and goes to the tail of its queue, by its priority (chard_push_ready; keys built
-- from `prefix`, same hash tag) with no backoff; any other is reported failed. A missing or corrupt entry is forgotten and reported
-- (chard_corrupt). Appends to out.requeued / out.failed / out.cancelled (JSONs), out.dropped
-- (pairs) and out.failed_ids / out.cancelled_ids / out.lost_ids / out.unreadable_ids.
local function chard_take_back(id, json, prefix, jobs_key, max_key, cur_key, out, cancelled)
  local job = json and chard_read_job(json)
  if not job or job.id ~= id then
    chard_corrupt(out.dropped, id, json, out.unreadable_ids)
    out.lost_ids[#out.lost_ids + 1] = id
    return
  end
  chard_release(max_key, cur_key, job.task, job.group)
  if cancelled then
    out.cancelled[#out.cancelled + 1] = json
    out.cancelled_ids[#out.cancelled_ids + 1] = id
  elseif job.retries < job.maxRetries then
    local new = string.gsub(json, '"retries":%-?%d+', '"retries":' .. string.format('%d', job.retries + 1), 1)
    redis.call('HSET', jobs_key, id, new)
    chard_push_ready(prefix, max_key, nil, job.queue, job.prio, id, false, job.group and chard_group_lane(job.task, job.group))
    out.requeued[#out.requeued + 1] = new
  else
    out.failed[#out.failed + 1] = json
    out.failed_ids[#out.failed_ids + 1] = id
  end
end

-- The id of a stored job: read from toJSON's fixed start, else by a full header read; nil if none.
local function chard_job_id(json)
  local id = string.match(json, '^{"id":"([^"\\]*)"')
  if id then return id end
  local job = chard_read_job(json)
  return job and job.id
end

-- The batch of an enqueue script (enqueue_jobs.lua, enqueue_keyed.lua: see their headers, ARGV[3]
-- to ARGV[6]), read and checked before anything is written (a script's writes are not rolled
-- back): `groups`, the jobs' JSONs `packed`, the id `width`, the atMs of the future jobs
-- `future`; `nkeys` is the number of the script's KEYS (queues are KEYS[5..]). Returns a table
-- { targets, prios (false for a plain group), counts, ids, hash_args (id, JSON, id, JSON... for
-- HSET), n (the number of jobs), future_at }, or nil and what is wrong.
local function chard_read_batch(groups, packed, width, future, nkeys)
  local targets, prios, counts, grouped, total = {}, {}, {}, {}, 0
  do
    local fields = chard_split_ids(groups, 0)
    for i = 1, #fields, 2 do
      local target, count, prio = tonumber(fields[i]), tonumber(fields[i + 1]), nil
      if not target then
        local t, p, g = string.match(fields[i], '^(%d+):(%-?%d+)(:?g?)$')
        target, prio = tonumber(t), tonumber(p)
        if g == ':g' then
          grouped[#targets + 1] = true
        elseif g ~= '' or prio == 0 then
          target = nil
        end
        if target == 0 then target = nil end
      end
      if not target or not count or count < 1 or (target ~= 0 and (target < 5 or target > nkeys)) then
        return nil, ('bad groups: ' .. string.sub(groups, 1, 100))
      end
      targets[#targets + 1], prios[#targets + 1], counts[#counts + 1] = target, prio or false, count
      total = total + count
    end
  end
  if not width then return nil, 'bad id width' end

  -- hash_args: id, JSON, id, JSON... for HSET; ids in the same order for the queues and the future set.
  local hash_args, ids, n, pos, len = {}, {}, 0, 1, #packed
  local find, sub, byte = string.find, string.sub, string.byte
  while pos <= len do
    local eol = find(packed, '\n', pos, true) or (len + 1)
    local json = sub(packed, pos, eol - 1)
    local id
    if width > 0 then
      -- toJSON starts with {"id":"<id>". A '"' right after `width` bytes of id that no '\' escapes
      -- closes the id's string; the id has `width` characters and escapes or multi-byte characters
      -- only lengthen its text, so the id is exactly those bytes. Otherwise: the slow path.
      local before, after = byte(packed, pos + 6 + width, pos + 7 + width)
      if after == 34 and before ~= 92 and find(packed, '{"id":"', pos, true) == pos then
        id = sub(packed, pos + 7, pos + 6 + width)
      end
    end
    id = id or chard_job_id(json)
    if not id then return nil, ('not a job entry: ' .. sub(json, 1, 100)) end
    n = n + 1
    ids[n] = id
    hash_args[2 * n - 1] = id
    hash_args[2 * n] = json
    pos = eol + 1
  end
  if n ~= total then return nil, (n .. ' jobs for groups of ' .. total) end
  local future_at = {}
  if future ~= '' then future_at = chard_split_ids(future, 0) end
  for g, target in ipairs(targets) do
    if target == 0 and #future_at ~= counts[g] then return nil, ('one atMs per future job') end
  end
  for _, at in ipairs(future_at) do
    if not tonumber(at) then return nil, ('bad atMs ' .. string.sub(at, 1, 30)) end
  end
  for g in pairs(grouped) do
    local first = 1
    for k = 1, g - 1 do first = first + counts[k] end
    for i = first, first + counts[g] - 1 do
      local job = chard_read_job(hash_args[2 * i])
      if not job or not job.group then return nil, ('a job of a group without one: ' .. string.sub(hash_args[2 * i], 1, 100)) end
    end
  end
  return { targets = targets, prios = prios, counts = counts, grouped = grouped, ids = ids, hash_args = hash_args,
    n = n, future_at = future_at }
end

-- The state of job `id`, stored in the jobs HASH (not ended): "revoked" when in the revoked SET,
-- "running" when the running HASH of a broker that holds a lease has it (the HASHes' keys are
-- built from `prefix`, same hash tag), else "pending" (queued or
-- waiting). For "running", also returns that HASH's key and the entry (its fetch token, "c" first
-- when cancelled). Iterates the leases: for the rare operations (revoke, cancel, results), never
-- on the path of every job.
local function chard_live_state(revoked_key, leases_key, prefix, id)
  if redis.call('SISMEMBER', revoked_key, id) == 1 then return 'revoked' end
  for _, broker in ipairs(redis.call('ZRANGE', leases_key, 0, -1)) do
    local key = prefix .. ':running:' .. broker
    local entry = redis.call('HGET', key, id)
    if entry then return 'running', key, entry end
  end
  return 'pending'
end

-- Removes up to `limit` result records whose expiry has passed (scored before `now`:
-- read_result.lua reads a record through its expiry ms), first to expire first: one
-- ZRANGEBYSCORE, and only when some expired one HDEL (in chunks) and one ZREMRANGEBYRANK (the
-- expired ones are the lowest ranks). Returns how many it removed.
local function chard_trim_results(results_key, expiry_key, now, limit)
  local expired = redis.call('ZRANGEBYSCORE', expiry_key, '-inf', '(' .. chard_score(now), 'LIMIT', '0', limit)
  if #expired == 0 then return 0 end
  chard_chunked('HDEL', results_key, expired)
  redis.call('ZREMRANGEBYRANK', expiry_key, '0', #expired - 1)
  return #expired
end

-- Stores result records: `records` is a list of { id, record, ttl ms }; the expiry ZSET scores
-- each id by when its record goes. Each call that stores k records also removes up to k + 100
-- expired ones (chard_trim_results): more than it adds, so however large the batches the expired
-- records never pile up, and the results HASH holds what the TTLs allow plus at most a short
-- backlog that the next calls clear. A call that stores none (keepResult: false) costs nothing
-- here: the lease renewal (keep_alive.lua) removes what expires once no call stores records.
local function chard_keep_results(results_key, expiry_key, records, now)
  if #records == 0 then return end
  local fields, scores = {}, {}
  for _, r in ipairs(records) do
    fields[#fields + 1] = r[1]
    fields[#fields + 1] = r[2]
    scores[#scores + 1] = chard_score(now + tonumber(r[3]))
    scores[#scores + 1] = r[1]
    if #fields >= 2000 then
      redis.call('HSET', results_key, unpack(fields))
      redis.call('ZADD', expiry_key, unpack(scores))
      fields, scores = {}, {}
    end
  end
  if #fields > 0 then
    redis.call('HSET', results_key, unpack(fields))
    redis.call('ZADD', expiry_key, unpack(scores))
  end
  chard_trim_results(results_key, expiry_key, now, tostring(#records + 100))
end

-- Jobs that ended (`ids`): forgets them (the jobs HASH), keeps their result records (see
-- chard_keep_results; `record` and `ttl` given instead mean the same record for every id) and
-- announces the ids on the results channel, for `getResult` waiting in any process. `message`,
-- when given, is the ids already joined by spaces (the caller had them packed so).
local function chard_jobs_ended(jobs_key, results_key, expiry_key, channel, ids, records, now, record, ttl, message)
  if record then
    records = {}
    for i, id in ipairs(ids) do records[i] = { id, record, ttl } end
  end
  chard_chunked('HDEL', jobs_key, ids)
  chard_keep_results(results_key, expiry_key, records, now)
  redis.call('PUBLISH', channel, message or table.concat(ids, ' '))
end

-- Ends the jobs whose stored JSON is not a job (`ids`, from chard_corrupt): forgotten, with the
-- record of an unreadable job kept for `ttl` ms and their ids announced, so `getResult` rejects
-- instead of waiting and the worker that met them sends `jobFailed`.
local function chard_end_unreadable(jobs_key, results_key, expiry_key, channel, ids, now, ttl)
  if #ids == 0 then return end
  chard_jobs_ended(jobs_key, results_key, expiry_key, channel, ids, nil, now, chard_unreadable_record(), ttl)
end

-- The max-concurrency HASH as a table (task -> limit), or false when no task is limited, and the
-- namespace's flags (chard_decode_flags: its field "", left out of the limits, so a namespace with
-- flags and no limit takes the cheap path of the fetch), or nil when it has none: read once per
-- call, by the acknowledgements and the fetch of a turn alike.
local function chard_limits(max_key)
  local flat = redis.call('HGETALL', max_key)
  if #flat == 0 then return false, nil end
  local limits, any, flags = {}, false, nil
  for i = 1, #flat, 2 do
    if flat[i] == '' then
      flags = chard_decode_flags(flat[i + 1])
    else
      limits[flat[i]] = tonumber(flat[i + 1])
      any = true
    end
  end
  return any and limits, flags
end

-- Job `id` of key `key` ended (or was revoked): the key record <p>:key:<key> (`prefix`, same hash
-- tag), if it still names this job as its live holder ("<id> <policy> <scheduledMs> <ttlMs>", see
-- enqueue_jobs.lua), becomes "<id> <untilMs>" until now + ttl (a throttle key: until scheduled +
-- ttl), with a PX of that long so Redis drops it then; or goes at once when that time is past (a
-- ttl of 0). A record naming another job (the key was taken since), or already ended, is left
-- alone: safe to apply twice. One GET, then one SET or DEL when it names this job.
local function chard_key_ended(prefix, key, id, now)
  local rk = prefix .. ':key:' .. key
  local v = redis.call('GET', rk)
  if not v then return end
  local holder, policy, scheduled, ttl = string.match(v, '^(%S+) (%a) (%-?%d+) (%d+)$')
  if holder ~= id then return end
  local until_ms = (policy == 't' and tonumber(scheduled) or now) + tonumber(ttl)
  if until_ms <= now then
    redis.call('DEL', rk)
  else
    redis.call('SET', rk, id .. ' ' .. string.format('%d', until_ms), 'PX', string.format('%d', until_ms - now))
  end
end

-- The jobs of `jsons` (stored JSONs; false entries skipped) ended: the key of each one that has a
-- key goes through chard_key_ended. Reads each JSON's header (chard_read_job): only for the jobs
-- whose key the caller must release (keyed acks, revoked and recovered jobs).
local function chard_keys_ended(prefix, jsons, now)
  for _, json in ipairs(jsons) do
    local job = json and chard_read_job(json)
    if job and job.key then chard_key_ended(prefix, job.key, job.id, now) end
  end
end

-- Counters of jobs per state, task and queue (lib/operations.ts): the HASH prefix..":counts"
-- (same hash tag), field <letter><task>"\1"<queue> (no task name holds a control character, so
-- the first "\1" ends the task), letters as COUNT_LETTERS: w waiting, r retrying, q queued,
-- a running, f failed kept, s succeeded kept, S succeeded total, F failed total. A script adds its
-- moves to a tally (task -> queue -> letter -> delta: no string is built per job) with
-- chard_tally, then writes it once, at its end, with one HINCRBY per field that changed
-- (chard_write_tally): a batch of one task and queue costs one command per state it touches.
-- `job` is a header read by chard_read_job (or any table with its task and queue).
local function chard_tally(tally, letter, job, n)
  local queues = tally[job.task]
  if not queues then
    queues = {}
    tally[job.task] = queues
  end
  local counts = queues[job.queue]
  if not counts then
    counts = {}
    queues[job.queue] = counts
  end
  counts[letter] = (counts[letter] or 0) + (n or 1)
end

-- The task, queue and retries of a job's JSON, for counting it: one short match of toJSON's fixed
-- start (cheaper than chard_read_job, which also reads the due time and the options); anything
-- else goes through chard_read_job. Nil when `json` is not a job.
local function chard_job_names(json)
  local retries, task, queue = string.match(json,
    '^{"id":"[^"\\]*","retries":(%-?%d+),"task":"([^"\\]*)","queue":"([^"\\]*)"')
  if task then return { task = task, queue = queue, retries = tonumber(retries) } end
  return chard_read_job(json)
end

-- The letter a job in the future set is counted under: "r" (retrying) after a failed attempt, else "w".
local function chard_wait_letter(job)
  if job.retries > 0 then return 'r' end
  return 'w'
end

-- Writes a tally (a table field -> delta, see above) to the counters HASH of `prefix`.
local function chard_write_tally(prefix, tally)
  local key = prefix .. ':counts'
  for task, queues in pairs(tally) do
    for queue, counts in pairs(queues) do
      local suffix = task .. '\1' .. queue
      for letter, n in pairs(counts) do
        if n ~= 0 then redis.call('HINCRBY', key, letter .. suffix, n) end
      end
    end
  end
end

-- The stores of ended jobs (lib/operations.ts): the ZSETs prefix..":failed" and
-- prefix..":succeeded" (job id, score = when it ended, ms), the records of both in the HASH
-- prefix..":ended" (id -> EndedRecord text, the job's JSON last, after ',"job":'). Bounds come
-- as text "<failed count> <failed age ms> <succeeded count> <succeeded age ms>"; returns
-- { f = { count, age }, s = { count, age } }, or nil when the text is not that.
local function chard_read_bounds(text)
  local fc, fa, sc, sa = string.match(text or '', '^(%d+) (%d+) (%d+) (%d+)$')
  if not fc then return nil end
  return { f = { tonumber(fc), tonumber(fa) }, s = { tonumber(sc), tonumber(sa) } }
end

-- The job JSON of an ended record (its last field), or nil.
local function chard_ended_job(record)
  local at = string.find(record, ',"job":', 1, true)
  if not at then return nil end
  return string.sub(record, at + 7, -2)
end

-- The ZSET key of store `letter` ("f" or "s").
local function chard_store_key(prefix, letter)
  if letter == 'f' then return prefix .. ':failed' end
  return prefix .. ':succeeded'
end

-- Trims store `letter` to `bound` ({ count, age ms }): removes its oldest records beyond `count`
-- and those ended before now - age, at most `most` of them (both are the lowest ranks: one ZCARD,
-- one ZCOUNT, and when some go one ZRANGE, one HMGET, one ZREMRANGEBYRANK, one HDEL), each
-- counted out of the tally. Returns how many went.
local function chard_trim_store(prefix, letter, bound, now, most, tally)
  local zkey = chard_store_key(prefix, letter)
  local n = redis.call('ZCARD', zkey)
  if n == 0 then return 0 end
  local k = math.max(n - bound[1], redis.call('ZCOUNT', zkey, '-inf', '(' .. chard_score(now - bound[2])))
  k = math.min(k, most)
  if k <= 0 then return 0 end
  local gone = redis.call('ZRANGE', zkey, '0', tostring(k - 1))
  local hkey = prefix .. ':ended'
  local records = chard_chunked_list('HMGET', hkey, gone)
  for i = 1, #gone do
    local json = records[i] and chard_ended_job(records[i])
    local job = json and chard_read_job(json)
    if job then chard_tally(tally, letter, job, -1) end
  end
  redis.call('ZREMRANGEBYRANK', zkey, '0', tostring(k - 1))
  chard_chunked('HDEL', hkey, gone)
  return #gone
end

-- Stores ended records `added` ({ id, record } pairs) in store `letter`, each scored by its end
-- (the record's "endedAt", else `now`; a store whose bound count is 0 stores none), counted in the tally (an id the store holds already is
-- rewritten, not counted twice), then trims the store (chard_trim_store, at most #added + 100).
local function chard_store_ended(prefix, letter, added, now, bounds, tally)
  local bound = bounds[letter]
  if bound[1] == 0 then
    if #added > 0 then chard_trim_store(prefix, letter, bound, now, #added + 100, tally) end
    return
  end
  if #added == 0 then return end
  local zkey, ids, fields, scores = chard_store_key(prefix, letter), {}, {}, {}
  for i, r in ipairs(added) do
    ids[i] = r[1]
    fields[2 * i - 1], fields[2 * i] = r[1], r[2]
    scores[2 * i - 1], scores[2 * i] = string.match(r[2], '^{"state":"%a+","endedAt":(%d+)') or chard_score(now), r[1]
  end
  local held = chard_chunked_list('ZMSCORE', zkey, ids)
  for i, r in ipairs(added) do
    local json = not held[i] and chard_ended_job(r[2])
    local job = json and chard_read_job(json)
    if job then chard_tally(tally, letter, job, 1) end
  end
  chard_hset_pairs(prefix .. ':ended', fields)
  for i = 1, #scores, 2000 do redis.call('ZADD', zkey, unpack(scores, i, math.min(i + 1999, #scores))) end
  chard_trim_store(prefix, letter, bound, now, #added + 100, tally)
end

-- The ended record a script writes itself (a recovery, a retry applied as a cancellation), byte
-- for byte as lib/operations.ts writeEndedRecord: failed at `now`, its last attempt started at
-- `started` (a fetch token: the fetch's time, ms) on broker `worker`, with the error of result
-- record `record` (its "error" object), and the job's JSON.
local function chard_failed_record(now, started, worker, record, json)
  local err = string.match(record, '"error":(%b{})') or '{"name":"Error","message":"failed"}'
  local head = '{"state":"failed","endedAt":' .. string.format('%d', now)
  if tonumber(started) then head = head .. ',"startedAt":' .. string.format('%d', tonumber(started)) end
  return head .. ',"worker":' .. chard_json_string(worker) .. ',"error":' .. err .. ',"job":' .. json .. '}'
end

-- The task and queue of each ack of a batch, as its client sent them (finish_jobs.lua ARGV[11]):
-- "<n> <bytes> <task>\1<queue>" runs in batch order, so the acks are counted without reading their
-- jobs. Returns a list, by batch position, of { task, queue } tables (one per run, shared), or nil
-- when `packed` is "" or does not cover `count` positions (then the jobs are read instead).
local function chard_ack_groups(packed, count)
  if packed == nil or packed == '' then return nil end
  local out, pos, len = {}, 1, #packed
  while pos <= len do
    local n, size, start = string.match(packed, '^(%d+) (%d+) ()', pos)
    if not n then return nil end
    local name = string.sub(packed, start, start + tonumber(size) - 1)
    local sep = string.find(name, '\1', 1, true)
    if not sep then return nil end
    local group = { task = string.sub(name, 1, sep - 1), queue = string.sub(name, sep + 1) }
    for _ = 1, tonumber(n) do out[#out + 1] = group end
    pos = start + tonumber(size)
  end
  if #out ~= count then return nil end
  return out
end

-- The helpers below are the parts of chard_finish_jobs, the acknowledgement of a batch (see
-- finish_jobs.lua's header for how a batch is packed). `ids` lists every job of the batch: the
-- `np` plain ids first, then the id of each line; `applied[i] == 1` when the job ids[i] is acted
-- on. `keys` is the table of keys a script builds for chard_finish_jobs.

-- Every id of a batch: `plain` (the packed ids), then the id of each of `lines`; `plain` itself
-- when there are no lines (the common batch: no copy).
local function chard_ack_ids(plain, lines)
  if #lines == 0 then return plain end
  local ids, np = {}, #plain
  for i = 1, np do ids[i] = plain[i] end
  for j, line in ipairs(lines) do ids[np + j] = line[3] end
  return ids
end

-- The fetch token of each of `ids`: those of the `np` plain ids from `runs` ("<token> <count>"
-- pairs, space-separated, in batch order), then those of `lines` (their fourth field).
local function chard_ack_tokens(np, runs, lines)
  local tokens, n, pos, len = {}, 0, 1, #runs
  while pos <= len do
    local sp = string.find(runs, ' ', pos, true)
    local sp2 = string.find(runs, ' ', sp + 1, true) or (len + 1)
    local token, count = string.sub(runs, pos, sp - 1), tonumber(string.sub(runs, sp + 1, sp2 - 1))
    for _ = 1, count do
      n = n + 1
      tokens[n] = token
    end
    pos = sp2 + 1
  end
  for j, line in ipairs(lines) do tokens[np + j] = line[4] end
  return tokens
end

-- Which of `ids` are still this broker's, under the fetch token the ack carries (`tokens`), and
-- removes those from the running HASH `running_key`: one HMGET, then one HDEL for all of them.
-- An entry is ours when it is that token (or "c" and that token: cancelled while it ran). A
-- tombstone "x:<token>:<id>" means another broker took the job over from that execution after
-- this broker's lease expired (the job may even run here again since, under a later token, and
-- be taken over again): the ack is refused and the tombstone removed. Otherwise (no entry, or another token, and no such
-- tombstone) the ack was applied already (a re-sent ack; or the job ran again here after that
-- ack): it is skipped, and is no conflict; but a tombstone "k:<token>:<id>" says that ack was a
-- retry applied as a cancellation (chard_apply_lines), which the re-sent ack must report again.
-- Returns the flags (1: ours, 2: taken over, 3: applied before as a cancellation, 0: applied
-- before), true when all were ours, the number of entries removed, true when some id is listed
-- twice (the HDEL removed fewer than it was given), true when some ack was taken over or applied
-- before as a cancellation, and the indexes of the ours whose job was cancelled while it ran
-- (index -> true; nil when none).
local function chard_take_ours(running_key, ids, tokens)
  local entries = chard_chunked_list('HMGET', running_key, ids)
  local flags, all, ours, tombs, marked = {}, true, ids, nil, nil
  for i = 1, #ids do
    local entry, token = entries[i], tokens[i]
    if entry == token then
      flags[i] = 1
    elseif entry and string.byte(entry, 1) == 99 and string.sub(entry, 2) == token then -- "c": cancelled
      flags[i] = 1
      marked = marked or {}
      marked[i] = true
    else
      flags[i] = 0
      local tomb = 'x:' .. token .. ':' .. ids[i] -- rare: an ack not applied now
      if redis.call('HEXISTS', running_key, tomb) == 1 then
        flags[i] = 2
      else
        tomb = 'k:' .. token .. ':' .. ids[i]
        if redis.call('HEXISTS', running_key, tomb) == 1 then flags[i] = 3 else tomb = nil end
      end
      if tomb then
        tombs = tombs or {}
        tombs[#tombs + 1] = tomb
      end
      all = false
    end
  end
  if not all then
    ours = {}
    for i = 1, #ids do
      if flags[i] == 1 then ours[#ours + 1] = ids[i] end
    end
  end
  local removed = 0
  if #ours > 0 then removed = chard_chunked('HDEL', running_key, ours) end
  if tombs then chard_chunked('HDEL', running_key, tombs) end
  return flags, all, removed, removed ~= #ours, tombs ~= nil, marked
end

-- The 1-based batch position of each of `ids`: a line carries its own (its second field); the
-- `np` plain ids fill, in order, the positions the lines leave free. Computed only when needed
-- (a job listed twice, or some not applied).
local function chard_ack_positions(lines, np)
  local pos, used = {}, {}
  for j, line in ipairs(lines) do
    local p = tonumber(line[2])
    used[p] = true
    pos[np + j] = p
  end
  local p = 1
  for i = 1, np do
    while used[p] do p = p + 1 end
    pos[i] = p
    p = p + 1
  end
  return pos
end

-- The acks applied when some id is listed twice: of the ids still ours (flags[i] == 1), only the
-- first occurrence in batch order (`pos`, from chard_ack_positions). Returns `applied` (a later
-- occurrence gets 0: applied before, as a re-sent ack).
local function chard_first_occurrences(ids, flags, pos)
  local order, seen, applied = {}, {}, {}
  for i = 1, #ids do order[i] = i end
  table.sort(order, function(a, b) return pos[a] < pos[b] end)
  for _, i in ipairs(order) do
    if flags[i] == 1 and not seen[ids[i]] then
      seen[ids[i]] = true
      applied[i] = 1
    else
      applied[i] = (flags[i] == 2 or flags[i] == 3) and flags[i] or 0
    end
  end
  return applied
end

-- Frees the concurrency slots of the applied jobs of limited tasks (`limits`, from chard_limits):
-- `taken` are the ids applied, `jsons` their stored JSONs (read once by chard_finish_jobs, before
-- they are rewritten or deleted), `positions` their indexes in the batch's ids; then one HGET and
-- one HINCRBY per task, never below 0. A job whose ack holds its slot
-- (`held[i]`, from chard_split_lines: its task function runs on) keeps it instead, recorded in the
-- running HASH as "s:<token>:<id>" -> task (its group lane for a job of a group: see
-- chard_group_lane; one HSET for all; `tokens` are the acks' tokens) until chard_release_held or a
-- recovery frees it. A job of a group frees its group lane's counter too (kept only for tasks with
-- a group limit). Returns true when a slot of a task with a concurrency limit (not 0), or of a
-- group, was freed.
local function chard_release_acked(keys, limits, taken, jsons, positions, held, tokens)
  local kept = {}
  if held then
    for k = 1, #taken do kept[k] = held[positions[k]] and tokens[positions[k]] end
  end
  local freed, order, holds = {}, {}, {}
  for k = 1, #taken do
    local job = jsons[k] and chard_read_job(jsons[k])
    if job and limits[job.task] then
      local lane = job.group and chard_group_lane(job.task, job.group)
      if kept[k] then
        holds[#holds + 1] = 's:' .. kept[k] .. ':' .. taken[k]
        holds[#holds + 1] = lane or job.task
      else
        for _, field in ipairs({ job.task, lane }) do
          if not freed[field] then order[#order + 1] = field end
          freed[field] = (freed[field] or 0) + 1
        end
      end
    end
  end
  chard_hset_pairs(keys.running, holds)
  local notify = false
  for _, field in ipairs(order) do
    local cur = tonumber(redis.call('HGET', keys.concurrency, field))
    if cur and cur > 0 then
      redis.call('HINCRBY', keys.concurrency, field, -math.min(cur, freed[field]))
      -- A freed slot opens a lane only of a task with a concurrency limit (0: gated otherwise), or
      -- of a group (only a task with a group limit counts its groups' jobs).
      if not limits[field] or limits[field] > 0 then notify = true end
    end
  end
  return notify
end

-- Applies the applied ones of `lines` (kind, position, id, token, and a number and text per kind;
-- see finish_jobs.lua ARGV[7]): a retry stores its new JSON (one HSET for all) and goes to the
-- future ZSET at atMs (`f`) or to the queue LIST keys.by_index[keyIndex] (`q`: keyIndex is an
-- index of the script's KEYS), or, when its JSON has a priority other than 0, to that level of
-- its queue (chard_push_level); an ended job is appended to `ended` and, with its record kept
-- (`r`), to `records`; an upper-case kind also forgets the job's progress (one HDEL for all).
-- A retry of a job cancelled while it ran (`marked`, from chard_take_ours) is not retried: it
-- ends with the cancelled-retry record (kept 1 hour, as recovery keeps CANCELLED_RECORD), its
-- applied flag becomes 4 (reported to the client, which announces a cancellation instead of a
-- retry), and a tombstone "k:<token>:<id>" in the running HASH lets a re-sent ack report it again;
-- its ended record (chard_failed_record) goes to `cancelled` (id -> record). A retry's new place
-- (queued or waiting) is counted in `tally`.
-- Returns true when a retry was queued or scheduled, and the number of retries cancelled.
local function chard_apply_lines(keys, lines, np, applied, ended, records, marked, now, tally, cancelled)
  local progress, stored, retried, cancels, tombs = {}, {}, false, 0, {}
  for j, line in ipairs(lines) do
    if applied[np + j] == 1 then
      local kind, id = line[1], line[3]
      local lower = string.lower(kind)
      if kind ~= lower then progress[#progress + 1] = id end
      if (lower == 'f' or lower == 'q') and marked and marked[np + j] then
        ended[#ended + 1] = id
        records[#records + 1] = { id, chard_cancelled_retry_record(), 3600000 }
        applied[np + j] = 4
        cancels = cancels + 1
        tombs[#tombs + 1] = 'k:' .. line[4] .. ':' .. id
        tombs[#tombs + 1] = '1'
        chard_keys_ended(keys.prefix, { line[6] }, now) -- the job ended: so does its hold on its key
        cancelled[id] = chard_failed_record(now, line[4], keys.broker, chard_cancelled_retry_record(), line[6])
      elseif lower == 'f' or lower == 'q' then
        stored[#stored + 1] = id
        stored[#stored + 1] = line[6]
        local again = chard_read_job(line[6])
        if again then chard_tally(tally, lower == 'q' and 'q' or chard_wait_letter(again), again, 1) end
        if lower == 'f' then
          redis.call('ZADD', keys.future, line[5], id)
        else
          -- A job with a priority goes to its level, one of a group to its lane (the plain finds keep
          -- plain jobs cheap).
          local job = (string.find(line[6], ',"prio":', 1, true) or string.find(line[6], ',"group":', 1, true))
            and chard_read_job(line[6])
          if job and job.group then
            chard_push_group(keys.prefix, keys.max_concurrency, keys.flags, job.queue,
              chard_group_lane(job.task, job.group), job.prio, { id }, false)
          elseif job and job.prio and job.prio ~= 0 then
            chard_push_level(keys.prefix, keys.max_concurrency, keys.flags, job.queue, job.prio, { id }, false)
          else
            redis.call('RPUSH', keys.by_index[tonumber(line[5])], id)
          end
        end
        retried = true
      else
        ended[#ended + 1] = id
        if lower == 'r' then records[#records + 1] = { id, line[6], line[5] } end
      end
    end
  end
  chard_hset_pairs(keys.jobs, stored)
  chard_hset_pairs(keys.running, tombs)
  if #progress > 0 then chard_chunked('HDEL', keys.progress, progress) end
  return retried, cancels
end

-- The lines of a batch (from chard_lines), sorted: the slot releases ("s <id> <token>") apart, and
-- the acks, whose hold mark (a kind led by "h") and key mark (then "k": the job has a key, to
-- release as it ends) are taken off. `np` plain ids come before the acks' lines in the batch's
-- ids. Returns the ack lines, the release lines (nil when none), the ids' indexes whose ack holds
-- its slot (nil when none) and those whose job has a key (nil when none). Only for batches with
-- lines (uncommon).
local function chard_split_lines(lines, np)
  local acks, releases, held, keyed = {}, nil, nil, nil
  for _, line in ipairs(lines) do
    local kind = line[1]
    if kind == 's' then
      releases = releases or {}
      releases[#releases + 1] = line
    else
      acks[#acks + 1] = line
      if string.byte(kind, 1) == 104 then -- "h"
        kind = string.sub(kind, 2)
        line[1] = kind
        held = held or {}
        held[np + #acks] = true
      end
      if string.byte(kind, 1) == 107 then -- "k"
        line[1] = string.sub(kind, 2)
        keyed = keyed or {}
        keyed[np + #acks] = true
      end
    end
  end
  return acks, releases, held, keyed
end

-- Frees the concurrency slots that acks kept while their task function ran on: each of `releases`
-- ("s", id, token) names the field "s:<token>:<id>" of this broker's running HASH (-> task). One
-- whose field is gone (released before, or by the recovery of this broker after its lease
-- expired) changes nothing, so a release applied late or twice frees one slot at most. Returns
-- true when a slot was freed.
local function chard_release_held(keys, releases)
  local freed = false
  for _, line in ipairs(releases) do
    local field = 's:' .. line[3] .. ':' .. line[2]
    local task = redis.call('HGET', keys.running, field)
    if task then
      redis.call('HDEL', keys.running, field)
      if chard_release(keys.max_concurrency, keys.concurrency, task) then freed = true end
    end
  end
  return freed
end

-- The positions (from chard_ack_positions) of the first `n` acks that were taken over (2), and,
-- negated, those of the retries applied as cancellations, now (4) or before (3).
local function chard_taken_over(n, applied, pos)
  local taken = {}
  for i = 1, n do
    local a = applied[i]
    if a == 2 then
      taken[#taken + 1] = pos[i]
    elseif a == 3 or a == 4 then
      taken[#taken + 1] = -pos[i]
    end
  end
  return taken
end

-- Acknowledges ended executions of this broker: the body of finish_jobs.lua, which fetch_jobs.lua
-- also runs before it fetches. `keys` holds the keys it touches, built by the script:
--   { running = running HASH of this broker, max_concurrency = max-concurrency HASH,
--     concurrency = concurrency HASH, future = future ZSET, jobs = jobs HASH,
--     results = results HASH, result_expiry = result-expiry ZSET, progress = progress HASH,
--     by_index = the script's KEYS (a retry due now goes to the queue at its line's keyIndex),
--     prefix = the key prefix (a retry with a priority goes to its level: chard_push_level; the
--       key records of keyed acks are built from it),
--     flags = the caller's copy of the flags (as read with the limits), or nil,
--     broker = this broker's id (the worker of the ended records written here) }
-- `width`, `packed`, `runs`, `packed_lines`, `ended_packed` and `ack_groups` are finish_jobs.lua's
-- ARGV[4] to ARGV[7], ARGV[9] and ARGV[11] (see its header); `bounds` the stores' bounds
-- (chard_read_bounds of its ARGV[10]). `limits` is what chard_limits(keys.max_concurrency) returns, or nil to have it read
-- here when needed. Every job applied is counted (chard_tally: out of "a", into its new state,
-- and into "S" or "F" when it ended), its ended record stored (chard_store_ended); the counts go
-- into `caller_tally` when given (the caller writes it), else are written here.
-- Fenced: a job is applied only while this broker's running HASH holds it under the fetch token
-- the ack carries (see chard_take_ours): an ack re-sent after a lost reply, or one of an execution
-- that ran again here since, is skipped; one of a job another broker took over after this
-- broker's lease expired is refused. A job listed twice is applied once, at its first position.
-- A job of a limited task releases its slot, unless its ack holds it (its task function runs on);
-- then the release lines free held slots (chard_release_held). An ended job whose ack is marked
-- keyed ("k") has its key released or given its ttl (chard_keys_ended). Ended jobs go through
-- chard_jobs_ended (their ids published on `results_channel`).
-- Returns notify (true when a retry was queued or a slot freed: the caller publishes on the
-- events channel) and the positions (1-based, in the batch) of the acks taken over, {} when none.
local function chard_finish_jobs(keys, results_channel, limits, now, width, packed, runs, packed_lines, ended_packed,
    bounds, caller_tally, ack_groups)
  local plain = chard_split_ids(packed, width)
  local np = #plain
  local lines, releases, held, keyed = {}, nil, nil, nil
  if packed_lines ~= '' then lines, releases, held, keyed = chard_split_lines(chard_lines(packed_lines, 6), np) end
  local ids = chard_ack_ids(plain, lines)
  if #ids == 0 then return releases ~= nil and chard_release_held(keys, releases), {} end

  local tokens = chard_ack_tokens(np, runs, lines)
  local flags, all, removed, twice, taken, marked = chard_take_ours(keys.running, ids, tokens)
  local applied, pos = flags, nil
  if twice then
    pos = chard_ack_positions(lines, np)
    applied = chard_first_occurrences(ids, flags, pos)
    all = false
  end

  -- Each job applied is counted out of "running", by the task and queue its client sent
  -- (`ack_groups`), else by its stored JSON (one HMGET, before it is rewritten or deleted); its
  -- task's slot is freed (the JSONs are read for that when some task is limited).
  local notify, tally, job_of = false, caller_tally or {}, {}
  if removed > 0 then
    local groups = chard_ack_groups(ack_groups, #ids)
    if groups and #lines > 0 and not pos then pos = chard_ack_positions(lines, np) end
    local mine, positions, jsons = {}, {}, nil
    for i = 1, #ids do
      if applied[i] == 1 then
        mine[#mine + 1] = ids[i]
        positions[#mine] = i
      end
    end
    if not groups then jsons = chard_chunked_list('HMGET', keys.jobs, mine) end
    for k = 1, #mine do
      local job
      if groups then job = groups[pos and pos[positions[k]] or positions[k]]
      else job = jsons[k] and chard_job_names(jsons[k]) end
      if job then
        job_of[mine[k]] = job
        chard_tally(tally, 'a', job, -1)
      end
    end
    if limits == nil then limits = chard_limits(keys.max_concurrency) end
    if limits then -- none limited: skip
      jsons = jsons or chard_chunked_list('HMGET', keys.jobs, mine)
      notify = chard_release_acked(keys, limits, mine, jsons, positions, held, tokens)
    end
  end

  local ended, message, records = plain, packed, {}
  if not all or #lines > 0 then
    ended, message = {}, nil
    for i = 1, np do
      if applied[i] == 1 then ended[#ended + 1] = plain[i] end
    end
  end
  if keyed then
    local ids_keyed = {}
    for i in pairs(keyed) do
      if applied[i] == 1 then ids_keyed[#ids_keyed + 1] = ids[i] end
    end
    if #ids_keyed > 0 then chard_keys_ended(keys.prefix, chard_chunked_list('HMGET', keys.jobs, ids_keyed), now) end
  end
  local cancelled = {}
  if #lines > 0 then
    local retried, cancels = chard_apply_lines(keys, lines, np, applied, ended, records, marked, now, tally, cancelled)
    if retried then notify = true end
    if cancels > 0 then taken = true end
  end
  if #ended > 0 then
    -- Each job that ended is counted (a failure listed in `ended_packed`, or cancelled here; else a
    -- success), and its ended record, if any, goes to its store.
    local outcomes = nil
    if ended_packed ~= '' then
      outcomes = {}
      for _, o in ipairs(chard_lines(ended_packed, 3)) do outcomes[o[1]] = o end
    end
    local failed, succeeded = {}, {}
    for _, id in ipairs(ended) do
      local job, o, c = job_of[id], outcomes and outcomes[id], cancelled[id]
      if job then
        if c or (o and o[2] == 'f') then
          chard_tally(tally, 'F', job, 1)
          if c or o[3] then failed[#failed + 1] = { id, c or o[3] } end
        else
          chard_tally(tally, 'S', job, 1)
          if o and o[3] then succeeded[#succeeded + 1] = { id, o[3] } end
        end
      end
    end
    chard_jobs_ended(keys.jobs, keys.results, keys.result_expiry, results_channel, ended, records, now, nil, nil, message)
    bounds = bounds or chard_read_bounds('10000 604800000 0 86400000')
    chard_store_ended(keys.prefix, 'f', failed, now, bounds, tally)
    chard_store_ended(keys.prefix, 's', succeeded, now, bounds, tally)
  end
  if not caller_tally then chard_write_tally(keys.prefix, tally) end
  if releases and chard_release_held(keys, releases) then notify = true end

  if not taken then return notify, {} end
  return notify, chard_taken_over(#ids, applied, pos or chard_ack_positions(lines, np))
end
