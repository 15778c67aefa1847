-- reclaim_orphans.lua: puts back jobs of fetches whose reply never reached this broker.
-- A fetch whose reply was lost (connection dropped after Redis ran it, or a fetch that ran twice
-- because the client re-sent it on reconnect) leaves jobs Running on a broker that keeps renewing
-- its lease: no one would ever recover them. Each fetch stores its jobs under its own token, and
-- the broker names the tokens of the fetches it never got a reply for: their jobs never started,
-- so each goes back to the FRONT of its queue (a limited task's job: of its task's lane, see
-- fetch_jobs.lua; a job with a priority: of its level, see chard_push_level), its JSON unchanged (same retries: no attempt was
-- made), and its concurrency slot is released. Entries of other tokens are left alone, so a
-- reclaim applied late (after later fetches, e.g. re-sent after NOSCRIPT) or twice is harmless:
-- a job put back and fetched again has a new token. A job cancelled meanwhile ("c" entry) is
-- also marked revoked, so the fetch that pops it drops it. Entries of a fetch whose reply came
-- but held entries the broker could not read as jobs ("partial" fetches) are removed and
-- ended unless the broker read them (its "known" ids): they would fail again if put back. Ids
-- whose JSON is missing or not a job are removed too (their slot released when the task can be
-- read); those with a JSON are ended with the record of an unreadable job (chard_end_unreadable),
-- so getResult rejects and the broker sends jobFailed. Tombstones and held slots ("x:", "k:", "s:"
-- fields) are left alone. A job put back is counted from running to queued, an unreadable one
-- out of running (<p>:counts: chard_tally).
-- KEYS[1]   running HASH (job id -> fetch token) of this broker
-- KEYS[2]   max-concurrency HASH
-- KEYS[3]   concurrency HASH
-- KEYS[4]   jobs HASH (job id -> job JSON)
-- KEYS[5]   revoked SET
-- KEYS[6]   results HASH
-- KEYS[7]   result-expiry ZSET
-- ARGV[1]   key prefix "{chard:<ns>}": an orphan goes back to the queue named in its JSON, whose
--           key is built here as prefix..":queue:"..queue (a limited task's: its lane
--           prefix..":lane:"..queue..":t:"..task or, with a priority, its level (chard_push_lane),
--           listed in prefix..":lanes:"..queue and the queue in
--           prefix..":lane-queues"; a job with a priority: its level prefix..":prio:"..priority..":"..queue,
--           listed in prefix..":prios:"..queue and flagged in KEYS[2]; same hash tag, same Cluster slot)
-- ARGV[2]   events channel (published to when a job was put back)
-- ARGV[3]   lost tokens: of the fetches whose reply this broker never got, space-separated (their
--           jobs are put back)
-- ARGV[4]   partial tokens: of fetches whose reply held entries the broker could not read,
--           space-separated
-- ARGV[5]   now (epoch ms)
-- ARGV[6]   results channel (the ids of the unreadable jobs ended here are published to it)
-- ARGV[7]   how long the record of an unreadable job is kept (ms)
-- ARGV[8..] known: ids the broker read from those partial fetches (they stay)
-- Returns { orphan JSONs put back, entries removed (flat pairs: id, JSON or false when none was
--           stored) }
local running_key, max_key, cur_key, jobs_key, prefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1]
local lost, partial, known = {}, {}, {}
for token in string.gmatch(ARGV[3], '%S+') do lost[token] = true end
for token in string.gmatch(ARGV[4], '%S+') do partial[token] = true end
for i = 8, #ARGV do known[ARGV[i]] = true end
local put_back, removed, unreadable_ids, tally = {}, {}, {}, {}
local flat = redis.call('HGETALL', running_key)
for k = 1, #flat, 2 do
  local id, entry = flat[k], flat[k + 1]
  local cancelled = string.byte(entry, 1) == 99
  local token = cancelled and string.sub(entry, 2) or entry
  local unreadable = partial[token] and not known[id]
  local head = string.sub(id, 1, 2)
  if id ~= '~seq' and head ~= 'x:' and head ~= 'k:' and head ~= 's:' and (lost[token] or unreadable) then
    local json = redis.call('HGET', jobs_key, id)
    local job = json and chard_read_job(json)
    if job then
      chard_release(max_key, cur_key, job.task, job.group)
      chard_tally(tally, 'a', job, -1)
    end
    if job and job.id == id and not unreadable then
      if cancelled then redis.call('SADD', KEYS[5], id) end
      if job.group then -- back to the front of its group's lane
        chard_push_group(prefix, max_key, nil, job.queue, chard_group_lane(job.task, job.group), job.prio, { id }, true)
      elseif redis.call('HEXISTS', max_key, job.task) == 1 then -- back to the front of its task's lane
        chard_push_lane(prefix, max_key, nil, job.queue, job.task, job.prio, { id }, true) -- by its priority
        redis.call('ZADD', prefix .. ':lanes:' .. job.queue, 'NX', '0', job.task)
        redis.call('SADD', prefix .. ':lane-queues', job.queue)
      else -- to the front of its queue LIST, or of its level when it has a priority
        chard_push_ready(prefix, max_key, nil, job.queue, job.prio, id, true)
      end
      put_back[#put_back + 1] = json
      chard_tally(tally, 'q', job, 1)
    else
      chard_corrupt(removed, id, json, unreadable_ids)
      redis.call('HDEL', jobs_key, id)
    end
    redis.call('HDEL', running_key, id)
  end
end
if #put_back > 0 then redis.call('PUBLISH', ARGV[2], '') end
chard_write_tally(prefix, tally)
chard_end_unreadable(jobs_key, KEYS[6], KEYS[7], ARGV[6], unreadable_ids, tonumber(ARGV[5]), ARGV[7])
return { put_back, removed }
