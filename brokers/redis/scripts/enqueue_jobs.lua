-- enqueue_jobs.lua: stores a batch of jobs atomically, at most once per call (idempotency token).
-- KEYS[1]   token STRING <p>:token:<uuid>, one per logical enqueue call (kept across retries)
-- KEYS[2]   future ZSET
-- KEYS[3]   jobs HASH (id -> "p" pending / "r" running / "x" revoked)
-- KEYS[4..] queue LISTs of the due jobs of the batch
-- ARGV[1]   events channel (published to once)
-- ARGV[2]   token TTL in ms
-- ARGV[3..] one triple per job, in batch order: target (index into KEYS of its queue, or 0 for
--           the future set), atMs, job JSON
-- Returns 0 when stored, 1 (DUPLICATE) when the token existed: an earlier attempt of this very
-- call already stored the batch, so nothing is stored twice.
local DUPLICATE = 1
-- Every entry is checked before anything is written: a script's writes are not rolled back.
local ids = {}
for i = 3, #ARGV, 3 do
  local id = chard_job_id(ARGV[i + 2])
  if not id then return redis.error_reply('CHARD_ARGS enqueue_jobs: not a job: ' .. string.sub(ARGV[i + 2], 1, 100)) end
  ids[#ids + 1] = id
end
if not redis.call('SET', KEYS[1], '1', 'PX', ARGV[2], 'NX') then return DUPLICATE end

-- Consecutive jobs of one queue go in one RPUSH; order within a queue is batch order.
local run_key, run = nil, {}
for i = 3, #ARGV, 3 do
  local target = tonumber(ARGV[i])
  if target == 0 then
    redis.call('ZADD', KEYS[2], ARGV[i + 1], ARGV[i + 2])
  else
    local key = KEYS[target]
    if key ~= run_key or #run >= 1000 then
      if run_key then redis.call('RPUSH', run_key, unpack(run)) end
      run_key, run = key, {}
    end
    run[#run + 1] = ARGV[i + 2]
  end
end
if run_key then redis.call('RPUSH', run_key, unpack(run)) end
chard_hset_all(KEYS[3], ids, 'p')
redis.call('PUBLISH', ARGV[1], '')
return 0
