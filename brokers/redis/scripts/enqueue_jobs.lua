-- enqueue_jobs.lua: stores a batch of jobs atomically, at most once per call (idempotency token).
-- KEYS[1]   token STRING <p>:token:<uuid>, one per logical enqueue call (kept across retries)
-- KEYS[2]   jobs HASH (job id -> job JSON)
-- KEYS[3]   future ZSET (job ids, score = atMs)
-- KEYS[4]   max-concurrency HASH: its field "" holds the flags, "prio:<queue>" set here when a job
--           enters a new level of a queue (see chard_push_level)
-- KEYS[5..] queue LISTs (job ids) of the due jobs of the batch
-- ARGV[1]   events channel (published to once)
-- ARGV[2]   token TTL in ms
-- ARGV[3]   id width w: the length every job id of the batch has (0 if they differ). A job whose
--           JSON shows its id as w plain bytes has it read there (the cheap path); any other's
--           id is read from its JSON as chard_job_id does
-- ARGV[4]   groups, "<target> <count> <target> <count> ...": the first <count> jobs of ARGV[5]
--           go to <target>, the next ones to the next target... <target> is the KEYS index of a
--           queue, or 0 for the future set, or "<KEYS index of a queue>:<priority>" for jobs due
--           with a priority other than 0: they go to that level of the queue, the LIST
--           prefix..":prio:"..priority..":"..queue (chard_push_level). The common batch (all due, one
--           queue, no priority) is one group.
-- ARGV[5]   the jobs' JSONs, exactly as toJSON writes them, "\n"-separated, in group order and in
--           batch order within a group (so within each queue)
-- ARGV[6]   the atMs of the jobs of the future group, space-separated, in their order ("" if none)
-- ARGV[7]   key prefix "{chard:<ns>}": the levels are built here from it and the queue's name
--           (KEYS[i] is prefix..":queue:"..queue; same hash tag, same Cluster slot)
-- Returns 0 when stored, 1 (DUPLICATE) when the token existed: an earlier attempt of this very
-- call already stored the batch, so nothing is stored twice.
-- A CHARD_ARGS error, before anything is written, when the arguments do not describe a batch.
local DUPLICATE = 1
local packed, width = ARGV[5], tonumber(ARGV[3])
local function bad(what)
  return redis.error_reply('CHARD_ARGS enqueue_jobs: ' .. what)
end

-- Every entry is checked before anything is written: a script's writes are not rolled back.
local targets, prios, counts, total = {}, {}, {}, 0
do
  local fields = chard_split_ids(ARGV[4], 0)
  for i = 1, #fields, 2 do
    local target, count, prio = tonumber(fields[i]), tonumber(fields[i + 1]), nil
    if not target then
      local t, p = string.match(fields[i], '^(%d+):(%-?%d+)$')
      target, prio = tonumber(t), tonumber(p)
      if prio == 0 or target == 0 then target = nil end
    end
    if not target or not count or count < 1 or (target ~= 0 and (target < 5 or not KEYS[target])) then
      return bad('bad groups: ' .. string.sub(ARGV[4], 1, 100))
    end
    targets[#targets + 1], prios[#targets + 1], counts[#counts + 1] = target, prio or false, count
    total = total + count
  end
end
if not width then return bad('bad id width ' .. tostring(ARGV[3])) end

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
  if not id then return bad('not a job entry: ' .. sub(json, 1, 100)) end
  n = n + 1
  ids[n] = id
  hash_args[2 * n - 1] = id
  hash_args[2 * n] = json
  pos = eol + 1
end
if n ~= total then return bad(n .. ' jobs for groups of ' .. total) end
local future_at = {}
if ARGV[6] ~= '' then future_at = chard_split_ids(ARGV[6], 0) end
for g, target in ipairs(targets) do
  if target == 0 and #future_at ~= counts[g] then return bad('one atMs per future job') end
end
for _, at in ipairs(future_at) do
  if not tonumber(at) then return bad('bad atMs ' .. string.sub(at, 1, 30)) end
end

if not redis.call('SET', KEYS[1], '1', 'PX', ARGV[2], 'NX') then return DUPLICATE end

chard_hset_pairs(KEYS[2], hash_args)
local first = 1
for g, target in ipairs(targets) do
  local last = first + counts[g] - 1
  if target == 0 then
    local scored = {}
    for i = first, last do
      scored[#scored + 1] = future_at[i - first + 1]
      scored[#scored + 1] = ids[i]
    end
    for i = 1, #scored, 2000 do redis.call('ZADD', KEYS[3], unpack(scored, i, math.min(i + 1999, #scored))) end
  elseif prios[g] then
    local queue = string.sub(KEYS[target], #ARGV[7] + 8)
    local level = {}
    for i = first, last do level[#level + 1] = ids[i] end
    chard_push_level(ARGV[7], KEYS[4], nil, queue, prios[g], level, false)
  else
    for i = first, last, 1000 do redis.call('RPUSH', KEYS[target], unpack(ids, i, math.min(i + 999, last))) end
  end
  first = last + 1
end
redis.call('PUBLISH', ARGV[1], '')
return 0
