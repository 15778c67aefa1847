-- read_job.lua: one job by id, whatever its state, in one atomic read (Broker.readJob).
-- KEYS[1]   jobs HASH (job id -> job JSON; jobs not ended)
-- KEYS[2]   revoked SET
-- KEYS[3]   leases ZSET (the running HASHes of the brokers listed there tell which jobs run)
-- KEYS[4]   future ZSET
-- KEYS[5]   ended HASH (job id -> ended record of the failed and succeeded stores)
-- KEYS[6]   failed ZSET (the failed store)
-- KEYS[7]   results HASH
-- KEYS[8]   result-expiry ZSET
-- KEYS[9]   progress HASH
-- ARGV[1]   job id
-- ARGV[2]   key prefix "{chard:<ns>}": running HASHes are built here as prefix..":running:"..brokerId
-- ARGV[3]   now (epoch ms): a result record past its expiry counts as gone
-- Returns { state, JSON or false, ended record or false, result record or false, progress or
--           false, broker id or false, fetch token or false }; state is "waiting", "retrying",
--           "queued", "running", "revoked", "failed", "succeeded" or "unknown" (nothing known).
local id = ARGV[1]
local result = redis.call('HGET', KEYS[7], id)
if result then
  local expiry = redis.call('ZSCORE', KEYS[8], id)
  if not expiry or tonumber(expiry) < tonumber(ARGV[3]) then result = false end
end
local json = redis.call('HGET', KEYS[1], id)
if json then
  local state, running_key, entry = chard_live_state(KEYS[2], KEYS[3], ARGV[2], id)
  if state == 'running' then
    local broker = string.sub(running_key, #ARGV[2] + 10)
    local token = string.byte(entry, 1) == 99 and string.sub(entry, 2) or entry
    return { 'running', json, false, result, redis.call('HGET', KEYS[9], id) or false, broker, token }
  end
  if state == 'pending' then
    if redis.call('ZSCORE', KEYS[4], id) then
      local job = chard_read_job(json)
      state = (job and job.retries > 0) and 'retrying' or 'waiting'
    else
      state = 'queued'
    end
  end
  return { state, json, false, result, false, false, false }
end
local ended = redis.call('HGET', KEYS[5], id)
if ended then
  local state = redis.call('ZSCORE', KEYS[6], id) and 'failed' or 'succeeded'
  return { state, false, ended, result, false, false, false }
end
if result then
  local state = string.sub(result, 1, 10) == '{"ok":true' and 'succeeded' or 'failed'
  return { state, false, false, result, false, false, false }
end
return { 'unknown', false, false, false, false, false, false }
