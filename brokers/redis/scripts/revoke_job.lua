-- revoke_job.lua: revokes or cancels one job, and reports where it was.
-- KEYS[1]   jobs HASH (id -> "p" pending / "r" running / "x" revoked)
-- KEYS[2]   results HASH
-- ARGV[1]   job id
-- ARGV[2]   "revoke" or "cancel"
-- ARGV[3]   events channel: a cancel of a running job is published to it as "c <id>", so the
--           broker running the job, whichever it is, aborts it
-- A pending job (queued or waiting) is marked revoked: the fetch that pops it drops it.
-- Returns the state before: "pending", "running", "revoked", "finished" (a result is kept) or
-- "unknown".
local state = redis.call('HGET', KEYS[1], ARGV[1])
if state == 'p' then
  redis.call('HSET', KEYS[1], ARGV[1], 'x')
  return 'pending'
elseif state == 'r' then
  if ARGV[2] == 'cancel' then redis.call('PUBLISH', ARGV[3], 'c ' .. ARGV[1]) end
  return 'running'
elseif state == 'x' then
  return 'revoked'
elseif redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return 'finished'
end
return 'unknown'
