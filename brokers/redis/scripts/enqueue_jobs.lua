-- enqueue_jobs.lua: stores a batch of jobs atomically, at most once per call (idempotency token).
-- KEYS[1]   token STRING <p>:token:<uuid>, one per logical enqueue call (kept across retries)
-- KEYS[2]   future ZSET
-- KEYS[3]   jobs HASH (id -> "p" pending / "r" running / "x" revoked)
-- KEYS[4..] queue LISTs of the due jobs of the batch
-- ARGV[1]   events channel (published to once)
-- ARGV[2]   token TTL in ms
-- ARGV[3]   the jobs, one line each in batch order: "<target> <atMs> <job JSON>", where target is
--           the index into KEYS of its queue, or 0 for the future set
-- Returns 0 when stored, 1 (DUPLICATE) when the token existed: an earlier attempt of this very
-- call already stored the batch, so nothing is stored twice.
local DUPLICATE = 1
-- Every entry is checked before anything is written: a script's writes are not rolled back.
local entries, ids = chard_lines(ARGV[3], 3), {}
for i, e in ipairs(entries) do
  local id = e[3] and tonumber(e[1]) and tonumber(e[2]) and chard_job_id(e[3])
  if not id then return redis.error_reply('CHARD_ARGS enqueue_jobs: not a job entry: ' .. string.sub(table.concat(e, ' '), 1, 100)) end
  ids[i] = id
end
if not redis.call('SET', KEYS[1], '1', 'PX', ARGV[2], 'NX') then return DUPLICATE end

-- Consecutive jobs of one queue go in one RPUSH; order within a queue is batch order.
local run_key, run = nil, {}
for _, e in ipairs(entries) do
  local target = tonumber(e[1])
  if target == 0 then
    redis.call('ZADD', KEYS[2], e[2], e[3])
  else
    local key = KEYS[target]
    if key ~= run_key or #run >= 1000 then
      if run_key then redis.call('RPUSH', run_key, unpack(run)) end
      run_key, run = key, {}
    end
    run[#run + 1] = e[3]
  end
end
if run_key then redis.call('RPUSH', run_key, unpack(run)) end
chard_hset_all(KEYS[3], ids, 'p')
redis.call('PUBLISH', ARGV[1], '')
return 0
