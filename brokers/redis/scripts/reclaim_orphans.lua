-- reclaim_orphans.lua: puts back jobs that sit in this broker's running set but never reached it.
-- A fetch whose reply was lost (connection dropped after Redis ran it, or a command the client
-- re-sent on reconnect) leaves jobs Running on a broker that keeps renewing its lease: no one would
-- ever recover them. The broker knows which jobs it handed out; every other id is an orphan that
-- never started, so it goes back to the FRONT of its queue, its JSON unchanged (same retries: no
-- attempt was made), and its concurrency slot is released. Jobs the broker received but could not
-- read, and ids whose JSON is missing or not a job, are removed and forgotten (their slot released
-- when the task can be read).
-- KEYS[1]   running SET (job ids) of this broker
-- KEYS[2]   max-concurrency HASH
-- KEYS[3]   concurrency HASH
-- KEYS[4]   jobs HASH (job id -> job JSON)
-- ARGV[1]   key prefix "{chard:<ns>}": an orphan goes back to the queue named in its JSON, whose
--           key is built here as prefix..":queue:"..queue (same hash tag, same Cluster slot)
-- ARGV[2]   events channel (published to when a job was put back)
-- ARGV[3]   n, the number of known ids that follow
-- ARGV[4..3+n] ids of the jobs this broker fetched and has not finished: they stay
-- ARGV[4+n..]  ids of jobs the broker could not read: they are removed
-- Returns { orphan JSONs put back, entries removed (unreadable or corrupt, for the log) }
local running_key, max_key, cur_key, jobs_key, prefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1]
local n = tonumber(ARGV[3])
local known, unreadable = {}, {}
for i = 4, 3 + n do known[ARGV[i]] = true end
for i = 4 + n, #ARGV do unreadable[ARGV[i]] = true end
local put_back, removed = {}, {}
for _, id in ipairs(redis.call('SMEMBERS', running_key)) do
  if not known[id] then
    local json = redis.call('HGET', jobs_key, id)
    local job = json and chard_read_job(json)
    if job then chard_release(max_key, cur_key, job.task) end
    if job and job.id == id and not unreadable[id] then
      redis.call('LPUSH', prefix .. ':queue:' .. job.queue, id)
      put_back[#put_back + 1] = json
    else
      removed[#removed + 1] = chard_corrupt(id, json)
      redis.call('HDEL', jobs_key, id)
    end
    redis.call('SREM', running_key, id)
  end
end
if #put_back > 0 then redis.call('PUBLISH', ARGV[2], '') end
return { put_back, removed }
