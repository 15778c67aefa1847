-- revoke_job.lua: revokes or cancels one job, and reports where it was.
-- KEYS[1]   jobs HASH (job id -> job JSON; jobs not ended)
-- KEYS[2]   results HASH
-- KEYS[3]   revoked SET (ids of pending jobs that were revoked)
-- KEYS[4]   leases ZSET (the running HASHes of the brokers listed there tell which jobs run)
-- KEYS[5]   result-expiry ZSET (a record past its expiry counts as gone, as in read_result.lua)
-- ARGV[1]   job id
-- ARGV[2]   "revoke" or "cancel"
-- ARGV[3]   events channel: a cancel of a running job is published to it as "c <id>", so the
--           broker running the job, whichever it is, aborts it
-- ARGV[4]   key prefix "{chard:<ns>}": the running HASH of each leased broker is built here as
--           prefix..":running:"..brokerId (same hash tag, same Cluster slot)
-- ARGV[5]   now (epoch ms)
-- A pending job (queued or waiting) is marked revoked: the fetch that pops it drops it; its key
-- (if any, and still its own) is released or given its ttl at once (chard_keys_ended). A running
-- job cancelled also gets its running entry marked ("c" before its fetch token), so the cancel
-- sticks if its broker dies: recovery fails it with JobCancelledError instead of running it again
-- (its own broker's ack still applies: the entry stays its own). Marking twice changes nothing.
-- Returns the state before: "pending", "running", "revoked", "finished" (a result is kept and
-- has not expired) or "unknown".
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  local state, running_key, entry = chard_live_state(KEYS[3], KEYS[4], ARGV[4], ARGV[1])
  if state == 'pending' then
    redis.call('SADD', KEYS[3], ARGV[1])
    -- It will never run: its key, if it has one, is released (or remembered for its ttl) now.
    local json = redis.call('HGET', KEYS[1], ARGV[1])
    if string.find(json, ',"key":', 1, true) then chard_keys_ended(ARGV[4], { json }, tonumber(ARGV[5])) end
  elseif state == 'running' and ARGV[2] == 'cancel' then
    if string.byte(entry, 1) ~= 99 then redis.call('HSET', running_key, ARGV[1], 'c' .. entry) end
    redis.call('PUBLISH', ARGV[3], 'c ' .. ARGV[1])
  end
  return state
elseif redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  local expiry = redis.call('ZSCORE', KEYS[5], ARGV[1])
  if expiry and tonumber(expiry) >= tonumber(ARGV[5]) then return 'finished' end
end
return 'unknown'
