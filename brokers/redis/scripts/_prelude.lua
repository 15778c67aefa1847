-- _prelude.lua: helpers that scripts.ts prepends to every script; not an operation of its own.
-- KEYS, ARGV: none. Returns: nothing (defines local functions only).
--
-- A job is stored as the exact string lib/jobs.ts `toJSON` writes:
--   {"id":<str>,"retries":<int>,"task":<str>,"queue":<str>,"at":<num>,"maxRetries":<int>,"args":<json>}
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

-- The header fields of a job (id, retries, task, queue, at, maxRetries), or nil when `json` is
-- not a job. Reads toJSON's fixed layout without decoding the arguments; anything else (another
-- key order) gets a full decode and the same checks as lib/jobs.ts `fromJSON`.
local function chard_read_job(json)
  local job, pos = {}, 1
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
  if job.maxRetries and literal(',"args":') then return job end
  local ok, full = pcall(cjson.decode, json)
  if ok and type(full) == 'table' and type(full.id) == 'string' and type(full.task) == 'string'
      and type(full.queue) == 'string' and type(full.at) == 'number' and type(full.retries) == 'number'
      and type(full.maxRetries) == 'number' and type(full.args) == 'table' then
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

-- Frees one concurrency slot of `task` if the task is limited; never goes below 0.
-- Returns true when a slot was released (other brokers may now fetch a job of `task`).
local function chard_release(max_key, cur_key, task)
  if redis.call('HEXISTS', max_key, task) == 1 then
    local cur = tonumber(redis.call('HGET', cur_key, task))
    if cur and cur > 0 then
      redis.call('HINCRBY', cur_key, task, -1)
      return true
    end
  end
  return false
end

-- Splits `packed` into lines ("\n"-separated: JSON text never holds a raw newline) and each line
-- into at most `n` fields at its first spaces; the last field keeps the rest of the line, spaces
-- included (JSON). Batches travel packed in one argument: far cheaper for the client to write than
-- one argument per field.
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

-- Runs `command key item...` over `items` (in order), in chunks small enough for unpack():
-- RPUSH pushes them to the tail of a LIST, HDEL deletes them as fields of a HASH.
local function chard_chunked(command, key, items)
  for i = 1, #items, 1000 do
    redis.call(command, key, unpack(items, i, math.min(i + 999, #items)))
  end
end

-- Takes back a running job of a broker whose lease expired: frees its concurrency slot; a retryable job (retries < maxRetries) gets retries + 1, rewritten in
-- place (lib/jobs.ts writes "retries" right after "id", so the first match is the top-level one),
-- and goes to the tail of its queue (key built from `prefix`, same hash tag) with no backoff;
-- any other is reported failed. Appends to out.requeued / out.failed / out.dropped.
local function chard_take_back(json, prefix, max_key, cur_key, out)
  local job = chard_read_job(json)
  if not job then
    out.dropped[#out.dropped + 1] = json
    return
  end
  chard_release(max_key, cur_key, job.task)
  if job.retries < job.maxRetries then
    local new = string.gsub(json, '"retries":%-?%d+', '"retries":' .. string.format('%d', job.retries + 1), 1)
    redis.call('RPUSH', prefix .. ':queue:' .. job.queue, new)
    out.requeued[#out.requeued + 1] = new
    out.requeued_ids[#out.requeued_ids + 1] = job.id
  else
    out.failed[#out.failed + 1] = json
    out.failed_ids[#out.failed_ids + 1] = job.id
  end
end

-- The id of a stored job: read from toJSON's fixed start, else by a full header read; nil if none.
local function chard_job_id(json)
  local id = string.match(json, '^{"id":"([^"\\]*)"')
  if id then return id end
  local job = chard_read_job(json)
  return job and job.id
end

-- Sets every field of `fields` (a list of field names) of HASH `key` to `value`, in chunks.
local function chard_hset_all(key, fields, value)
  local args = {}
  for i = 1, #fields do
    args[#args + 1] = fields[i]
    args[#args + 1] = value
    if #args >= 2000 or i == #fields then
      redis.call('HSET', key, unpack(args))
      args = {}
    end
  end
end

-- Stores result records: `records` is a list of { id, record, ttl ms }; the expiry ZSET scores
-- each id by when its record goes. Expired records (up to 100 per call) are removed here, so
-- the results HASH never grows past what the TTLs allow.
local function chard_keep_results(results_key, expiry_key, records, now)
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
  local expired = redis.call('ZRANGEBYSCORE', expiry_key, '-inf', '(' .. chard_score(now), 'LIMIT', 0, 100)
  if #expired > 0 then
    redis.call('HDEL', results_key, unpack(expired))
    redis.call('ZREM', expiry_key, unpack(expired))
  end
end


-- Jobs that ended (`ids`): forgets their state, keeps their result records (see
-- chard_keep_results; `record` and `ttl` given instead mean the same record for every id) and
-- announces the ids on the results channel, for `getResult` waiting in any process.
local function chard_jobs_ended(jobs_key, results_key, expiry_key, channel, ids, records, now, record, ttl)
  if record then
    records = {}
    for i, id in ipairs(ids) do records[i] = { id, record, ttl } end
  end
  chard_chunked('HDEL', jobs_key, ids)
  chard_keep_results(results_key, expiry_key, records, now)
  redis.call('PUBLISH', channel, table.concat(ids, ' '))
end
