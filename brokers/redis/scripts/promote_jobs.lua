-- promote_jobs.lua: moves waiting (or retrying) jobs to their queue now (Broker.promoteJobs).
-- KEYS[1]   jobs HASH (job id -> job JSON)
-- KEYS[2]   future ZSET
-- KEYS[3]   revoked SET
-- KEYS[4]   max-concurrency HASH (the flags: a job with a priority or a group goes to its level or lane)
-- ARGV[1]   key prefix "{chard:<ns>}": queues, levels and lanes are built here from it
-- ARGV[2]   events channel (published to once when a job was moved: workers wake)
-- ARGV[3]   now (epoch ms): the jobs' new due time
-- ARGV[4..] the job ids
-- Each job in the future set and not revoked, atomically: its JSON rewritten with at = now, out
-- of the future set, queued by its priority and group (chard_push_ready), counted from waiting
-- (or retrying) to queued. Applied twice, the second finds it queued.
-- Returns one outcome per id: "done" or "missing" (not waiting).
local prefix, now, tally, out, moved = ARGV[1], tonumber(ARGV[3]), {}, {}, false
for i = 4, #ARGV do
  local id = ARGV[i]
  local json = redis.call('ZSCORE', KEYS[2], id) and redis.call('SISMEMBER', KEYS[3], id) == 0
    and redis.call('HGET', KEYS[1], id)
  local job = json and chard_read_job(json)
  local new = job and chard_rewrite_head(json, id, job.retries, now)
  if new then
    redis.call('HSET', KEYS[1], id, new)
    redis.call('ZREM', KEYS[2], id)
    chard_push_ready(prefix, KEYS[4], nil, job.queue, job.prio, id, false,
      job.group and chard_group_lane(job.task, job.group))
    chard_tally(tally, chard_wait_letter(job), job, -1)
    chard_tally(tally, 'q', job, 1)
    moved = true
    out[#out + 1] = 'done'
  else
    out[#out + 1] = 'missing'
  end
end
chard_write_tally(prefix, tally)
if moved then redis.call('PUBLISH', ARGV[2], '') end
return out
