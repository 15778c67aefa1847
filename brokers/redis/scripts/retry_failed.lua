-- retry_failed.lua: moves failed jobs from the failed store back to their queue (Broker.retryFailed).
-- KEYS[1]   jobs HASH (job id -> job JSON)
-- KEYS[2]   ended HASH (job id -> ended record)
-- KEYS[3]   failed ZSET (the failed store)
-- KEYS[4]   results HASH
-- KEYS[5]   result-expiry ZSET
-- KEYS[6]   max-concurrency HASH (the flags: a job with a priority or a group goes to its level or lane)
-- KEYS[7]   revoked SET
-- ARGV[1]   key prefix "{chard:<ns>}": queues, levels, lanes and key records are built here from it
-- ARGV[2]   events channel (published to once when a job was moved: workers wake)
-- ARGV[3]   now (epoch ms): the jobs' new due time
-- ARGV[4..] the job ids
-- Each job, atomically: its JSON from its ended record, rewritten with retries 0 and at = now (its
-- attempt history kept), stored and queued by its priority and group (chard_push_ready), out of
-- the store, its result record forgotten (getResult waits for the new run), counted from failed to
-- queued. A job with a key takes it again (policy keep, remembered 0 ms after it ends) unless a
-- live job holds it, and a job not ended may not have its id: either is a "conflict", left in the
-- store. Applied twice, the second finds it gone.
-- Returns one outcome per id: "done", "missing" (not in the failed store) or "conflict".
local prefix, now, tally, out, moved = ARGV[1], tonumber(ARGV[3]), {}, {}, false
for i = 4, #ARGV do
  local id = ARGV[i]
  local record = redis.call('ZSCORE', KEYS[3], id) and redis.call('HGET', KEYS[2], id)
  local json = record and chard_ended_job(record)
  local job = json and chard_read_job(json)
  local outcome = 'missing'
  if job and job.id == id and redis.call('HEXISTS', KEYS[1], id) == 1 then
    outcome = 'conflict' -- a job not ended has its id again: left in the store
  elseif job and job.id == id then
    outcome = 'done'
    if job.key then
      local rk = prefix .. ':key:' .. job.key
      local holder = string.match(redis.call('GET', rk) or '', '^(%S+) %a %-?%d+ %d+$')
      if holder and holder ~= id and redis.call('HEXISTS', KEYS[1], holder) == 1
          and redis.call('SISMEMBER', KEYS[7], holder) == 0 then
        outcome = 'conflict'
      else
        redis.call('SET', rk, id .. ' k ' .. string.format('%d', now) .. ' 0')
      end
    end
    if outcome == 'done' then
      redis.call('HSET', KEYS[1], id, chard_rewrite_head(json, id, 0, now) or json)
      chard_push_ready(prefix, KEYS[6], nil, job.queue, job.prio, id, false,
        job.group and chard_group_lane(job.task, job.group))
      redis.call('ZREM', KEYS[3], id)
      redis.call('HDEL', KEYS[2], id)
      redis.call('HDEL', KEYS[4], id)
      redis.call('ZREM', KEYS[5], id)
      chard_tally(tally, 'f', job, -1)
      chard_tally(tally, 'q', job, 1)
      moved = true
    end
  end
  out[#out + 1] = outcome
end
chard_write_tally(prefix, tally)
if moved then redis.call('PUBLISH', ARGV[2], '') end
return out
