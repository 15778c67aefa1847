-- read_result.lua: the result record of a job and its state, in one atomic read.
-- KEYS[1]   results HASH
-- KEYS[2]   result-expiry ZSET
-- KEYS[3]   jobs HASH (job id -> job JSON; jobs not ended)
-- KEYS[4]   revoked SET
-- KEYS[5]   leases ZSET
-- ARGV[1]   job id
-- ARGV[2]   now (epoch ms): a record past its expiry counts as gone (a later store or lease
--           renewal removes it: chard_trim_results)
-- ARGV[3]   key prefix "{chard:<ns>}": running HASHes are built here as prefix..":running:"..brokerId
--           for the brokers listed in the leases (same hash tag, same Cluster slot)
-- Returns { record or false, state: "pending", "running", "revoked", "finished" or "unknown" }
local record = redis.call('HGET', KEYS[1], ARGV[1])
if record then
  local expiry = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if expiry and tonumber(expiry) >= tonumber(ARGV[2]) then return { record, 'finished' } end
end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then
  local state = chard_live_state(KEYS[4], KEYS[5], ARGV[3], ARGV[1]) -- its first value only
  return { false, state }
end
return { false, 'unknown' }
