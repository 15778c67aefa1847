-- finish_jobs.lua: acknowledges ended executions of this broker atomically.
-- KEYS[1]   running SET (job ids) of this broker
-- KEYS[2]   max-concurrency HASH
-- KEYS[3]   concurrency HASH
-- KEYS[4]   future ZSET (job ids, score = atMs)
-- KEYS[5]   jobs HASH (job id -> job JSON)
-- KEYS[6]   results HASH
-- KEYS[7]   result-expiry ZSET
-- KEYS[8]   progress HASH
-- KEYS[9..] queue LISTs that retried jobs go back to
-- ARGV[1]   events channel (published to when a job was re-enqueued or a concurrency slot freed)
-- ARGV[2]   results channel (the ids of the jobs that ended are published to it, space-separated)
-- ARGV[3]   now (epoch ms)
-- ARGV[4]   id width of ARGV[5]: every id there is that many bytes, or 0 (ids of any width)
-- ARGV[5]   the common case, packed: ids of the jobs that ended (succeeded or failed) with no
--           result record kept and no progress stored, in batch order, separated by one space
-- ARGV[6]   the other jobs, one line each ("\n"-separated), led by a kind and the job's 1-based
--           position in the batch (the jobs of ARGV[5] fill the positions the lines leave free):
--             e <pos> <id>                    ended, nothing kept
--             r <pos> <id> <ttlMs> <record>   ended, its result record kept for ttlMs
--             q <pos> <id> <keyIndex> <json>  retry now: new JSON stored, id RPUSHed to KEYS[keyIndex]
--             f <pos> <id> <atMs> <json>      retry later: new JSON stored, id ZADDed to future at atMs
--           An upper-case kind (E, R, Q, F) also forgets the job's progress.
-- A job is applied only while it is in this broker's running SET: another broker may have
-- recovered it after this broker's lease expired (it is theirs now), or this is an ack re-sent
-- after a lost reply. A job listed twice is applied once, at its first position. A job of a limited
-- task releases its slot; its task is read from its JSON, before the JSON is rewritten or deleted.
-- Returns the positions (1-based, in the batch) of the jobs NOT applied; {} when all were.
local running_key, max_key, cur_key, future_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local jobs_key, results_key, expiry_key, progress_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local now = tonumber(ARGV[3])

local plain = chard_split_ids(ARGV[5], tonumber(ARGV[4]))
local lines = {}
if ARGV[6] ~= '' then lines = chard_lines(ARGV[6], 5) end
local np = #plain
local ids = plain -- every id: those of ARGV[5], then those of the lines
if #lines > 0 then
  ids = {}
  for i = 1, np do ids[i] = plain[i] end
  for j, line in ipairs(lines) do ids[np + j] = line[3] end
end
if #ids == 0 then return {} end

-- Which jobs are still ours: one SMISMEMBER, then one SREM for all of them (not one per job).
local flags = chard_chunked_list('SMISMEMBER', running_key, ids)
local all = true
for i = 1, #ids do
  if flags[i] ~= 1 then
    all = false
    break
  end
end
local ours = ids
if not all then
  ours = {}
  for i = 1, #ids do
    if flags[i] == 1 then ours[#ours + 1] = ids[i] end
  end
end
local removed = 0
if #ours > 0 then removed = chard_chunked('SREM', running_key, ours) end

-- Batch positions, computed only when needed (a job listed twice, or some not applied).
local function positions()
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
local applied, pos = flags, nil -- applied[i] == 1: the job ids[i] is acted on
if removed ~= #ours then
  -- Some id is listed twice: only its first occurrence in batch order is applied.
  pos = positions()
  local order, seen = {}, {}
  for i = 1, #ids do order[i] = i end
  table.sort(order, function(a, b) return pos[a] < pos[b] end)
  applied = {}
  for _, i in ipairs(order) do
    if flags[i] == 1 and not seen[ids[i]] then
      seen[ids[i]] = true
      applied[i] = 1
    else
      applied[i] = 0
    end
  end
  all = false
end

local notify = false
if removed > 0 and redis.call('EXISTS', max_key) == 1 then -- no limited task at all: skip this
  local taken = {}
  for i = 1, #ids do
    if applied[i] == 1 then taken[#taken + 1] = ids[i] end
  end
  local jsons = chard_chunked_list('HMGET', jobs_key, taken)
  for k = 1, #taken do
    local job = jsons[k] and chard_read_job(jsons[k])
    if job and chard_release(max_key, cur_key, job.task) then notify = true end
  end
end

local ended, message, records, progress, stored = plain, ARGV[5], {}, {}, {}
if not all or #lines > 0 then
  ended, message = {}, nil
  for i = 1, np do
    if applied[i] == 1 then ended[#ended + 1] = plain[i] end
  end
end
for j, line in ipairs(lines) do
  if applied[np + j] == 1 then
    local kind, id = line[1], line[3]
    local lower = string.lower(kind)
    if kind ~= lower then progress[#progress + 1] = id end
    if lower == 'f' or lower == 'q' then
      stored[#stored + 1] = id
      stored[#stored + 1] = line[5]
      if lower == 'f' then
        redis.call('ZADD', future_key, line[4], id)
      else
        redis.call('RPUSH', KEYS[tonumber(line[4])], id)
      end
      notify = true
    else
      ended[#ended + 1] = id
      if lower == 'r' then records[#records + 1] = { id, line[5], line[4] } end
    end
  end
end
chard_hset_pairs(jobs_key, stored)
if #progress > 0 then chard_chunked('HDEL', progress_key, progress) end
if #ended > 0 then
  chard_jobs_ended(jobs_key, results_key, expiry_key, ARGV[2], ended, records, now, nil, nil, message)
end
if notify then redis.call('PUBLISH', ARGV[1], '') end

if all then return {} end
pos = pos or positions()
local not_applied = {}
for i = 1, #ids do
  if applied[i] ~= 1 then not_applied[#not_applied + 1] = pos[i] end
end
return not_applied
