-- enqueue_jobs.lua: stores a batch of jobs atomically, at most once per call (its producer turn).
-- KEYS[1]   producer lane STRING <p>:producer:<broker id>:<n>: the lane's high-water mark
--           (chard_producer_turn)
-- KEYS[2]   jobs HASH (job id -> job JSON)
-- KEYS[3]   future ZSET (job ids, score = atMs)
-- KEYS[4]   max-concurrency HASH: its field "" holds the flags, "prio:<queue>" set here when a job
--           enters a new level of a queue (see chard_push_level)
-- KEYS[5..] queue LISTs (job ids) of the due jobs of the batch
-- ARGV[1]   events channel (published to once, only while a worker pool sleeps: the HASH
--           <p>:sleepers, built from ARGV[7], has a field; see chard_wake_sleepers): "w <broker
--           id>", the producer's broker (from KEYS[1]), which woke its own pool already
-- ARGV[2]   the call's turn, "<seq> <ttl ms>": its sequence number in the lane (the same for
--           every attempt of one call, higher for each new call), and how long the mark is kept
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
-- ARGV[8]   the counts the batch adds (<p>:counts, built from ARGV[7]; see the counters in _prelude.lua), as the
--           client sorted its jobs: "<n> <bytes> <field>" entries, concatenated, each field
--           <bytes> bytes long (a field may hold any byte): "q" (queued), "w" or "r" (waiting,
--           retrying) followed by the task, "\1" and the queue
-- Returns 0 when stored, 1 (DUPLICATE) when the lane's mark is at or above the call's sequence
-- number: an earlier attempt of this very call already stored the batch (or this is a late attempt
-- of an earlier call), so nothing is stored twice, even when the jobs already ran and ended. A batch with keyed jobs, or jobs with
-- a group, goes to enqueue_keyed.lua instead (the same ARGV[1..7], then its own), so this script carries none of
-- that code: a script's helpers cost every call their definitions.
-- A CHARD_ARGS error, before anything is written, when the arguments do not describe a batch.
local DUPLICATE = 1
local function bad(what)
  return redis.error_reply('CHARD_ARGS enqueue_jobs: ' .. what)
end
local batch, wrong = chard_read_batch(ARGV[4], ARGV[5], tonumber(ARGV[3]), ARGV[6], #KEYS)
if not batch then return bad(wrong) end
if next(batch.grouped) then return bad('jobs with a group go to enqueue_keyed.lua') end
local counted, pos, len = {}, 1, #(ARGV[8] or '')
while pos <= len do
  local n, size, start = string.match(ARGV[8], '^(%d+) (%d+) ()', pos)
  if not n then return bad('bad counts: ' .. string.sub(ARGV[8], pos, pos + 60)) end
  counted[#counted + 1] = string.sub(ARGV[8], start, start + tonumber(size) - 1)
  counted[#counted + 1] = n
  pos = start + tonumber(size)
end
local targets, prios, counts, ids = batch.targets, batch.prios, batch.counts, batch.ids
local hash_args, n, future_at = batch.hash_args, batch.n, batch.future_at

local seen, wrong_turn = chard_producer_turn(KEYS[1], ARGV[2])
if seen == false then return bad(wrong_turn) end
if seen then return DUPLICATE end

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
for i = 1, #counted, 2 do redis.call('HINCRBY', ARGV[7] .. ':counts', counted[i], counted[i + 1]) end
chard_wake_sleepers(ARGV[7], ARGV[1], KEYS[1])
return 0
