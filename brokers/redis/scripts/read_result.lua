-- read_result.lua: the result record of a job and its state, in one atomic read.
-- KEYS[1]   results HASH
-- KEYS[2]   result-expiry ZSET
-- KEYS[3]   jobs HASH (id -> "p" pending / "r" running / "x" revoked)
-- ARGV[1]   job id
-- ARGV[2]   now (epoch ms): a record past its expiry counts as gone (the next finish removes it)
-- Returns { record or false, state: "pending", "running", "revoked", "finished" or "unknown" }
local record = redis.call('HGET', KEYS[1], ARGV[1])
if record then
  local expiry = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if expiry and tonumber(expiry) >= tonumber(ARGV[2]) then return { record, 'finished' } end
end
local state = redis.call('HGET', KEYS[3], ARGV[1])
if state == 'p' then return { false, 'pending' } end
if state == 'r' then return { false, 'running' } end
if state == 'x' then return { false, 'revoked' } end
return { false, 'unknown' }
