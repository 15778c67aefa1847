-- read_key.lua: the job holding a key (engine.getJobByKey).
-- KEYS[1]   jobs HASH (job id -> job JSON)
-- KEYS[2]   future ZSET (job ids, score = atMs)
-- KEYS[3]   revoked SET
-- KEYS[4]   leases ZSET
-- ARGV[1]   key prefix "{chard:<ns>}": the key record is prefix..":key:"..key, the running HASHes
--           prefix..":running:"..brokerId (same hash tag)
-- ARGV[2]   the key
-- ARGV[3]   now (epoch ms): an ended record past its window counts as gone
-- The key record is read as enqueue_jobs.lua writes it: "<id> <policy> <scheduledMs> <ttlMs>"
-- while its job exists, "<id> <untilMs>" once it ended.
-- Returns { id, state, JSON or false }: state "waiting", "queued" or "running" with the stored
-- JSON, or "ended" (no JSON) while the record of an ended job is kept; nil when the key is free
-- (no record, one past its window, or one whose job is gone or revoked).
local record = redis.call('GET', ARGV[1] .. ':key:' .. ARGV[2])
if not record then return nil end
local holder = string.match(record, '^(%S+) %a %-?%d+ %d+$')
if not holder then
  local ended, until_ms = string.match(record, '^(%S+) (%-?%d+)$')
  if ended and tonumber(until_ms) > tonumber(ARGV[3]) then return { ended, 'ended', false } end
  return nil
end
local json = redis.call('HGET', KEYS[1], holder)
if not json then return nil end
local live = chard_live_state(KEYS[3], KEYS[4], ARGV[1], holder)
if live == 'running' then return { holder, 'running', json } end
if live ~= 'pending' then return nil end
if redis.call('ZSCORE', KEYS[2], holder) then return { holder, 'waiting', json } end
return { holder, 'queued', json }
