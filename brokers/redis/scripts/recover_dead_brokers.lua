-- recover_dead_brokers.lua: takes back the running jobs of brokers whose lease expired.
-- KEYS[1]   leases ZSET
-- KEYS[2]   max-concurrency HASH
-- KEYS[3]   concurrency HASH
-- KEYS[4]   jobs HASH (job id -> job JSON)
-- KEYS[5]   results HASH
-- KEYS[6]   result-expiry ZSET
-- KEYS[7]   progress HASH
-- KEYS[8]   unannounced HASH of the recovering broker: each job failed or cancelled here is
--           recorded in it (job id -> "f" or "c" + JSON) until the broker confirms it announced it
--           (keep_alive.lua), so a reply lost on the way is announced by the next renewal
-- KEYS[9..] running HASH (job id -> fetch token) of each candidate broker, in the order of their
--           ids in ARGV[9..]
-- ARGV[1]   key prefix "{chard:<ns>}": a requeued job goes to the queue named in its JSON, whose
--           key is built here as prefix..":queue:"..queue, or with a priority to its level
--           prefix..":prio:"..priority..":"..queue, listed in prefix..":prios:"..queue and flagged in
--           KEYS[2] (chard_push_level; same hash tag, same Cluster slot)
-- ARGV[2]   events channel (published to when a job was requeued or a concurrency slot freed)
-- ARGV[3]   now (epoch ms)
-- ARGV[4]   results channel (ids of the jobs failed here are published to it)
-- ARGV[5]   how long the record of a lost job is kept (ms)
-- ARGV[6]   the record of a lost job (lib/results.ts LOST_RECORD)
-- ARGV[7]   the record of a job cancelled while it ran (lib/results.ts CANCELLED_RECORD)
-- ARGV[8]   the stores' bounds (see finish_jobs.lua ARGV[10]): a job failed or cancelled here goes
--           to the failed store with an ended record written here (chard_failed_record)
-- ARGV[9..] candidate broker ids (from keep_alive.lua)
-- A candidate whose lease is gone (already recovered) or was renewed meanwhile is skipped, so a
-- late or repeated call changes nothing. Each job of a dead broker is taken back (chard_take_back:
-- slot released; a job cancelled while it ran fails with its cancel; else retries + 1 and requeued
-- when retryable, the crash counting as an attempt; else failed; a missing or corrupt JSON
-- forgotten), its progress forgotten, and its entry becomes a tombstone "x:<token>:<id>": a late
-- ack of that execution (its broker was only stalled) is then refused as taken over, never
-- mistaken for one applied before, even if the same broker fetched the job again since. The
-- concurrency slots its acks kept for task functions that ran on ("s:<token>:<id>" -> task) are
-- released and their fields removed (a late release of the broker then finds nothing). The HASH
-- then expires in a day (tombstones of a broker that never comes back), unless
-- the broker renews its lease again (keep_alive.lua keeps it); its lease goes.
-- Each job taken back is counted out of running (<p>:counts, see chard_tally), into queued or
-- into the failed total (and the failed store); a dead broker's worker info (<p>:brokers) and
-- sleep mark (<p>:sleepers, see fetch_jobs.lua ARGV[19]) go.
-- A job failed or cancelled here releases its key, or gives it its ttl (chard_key_ended), if the
-- key record still names it; a requeued one keeps it.
-- An entry whose JSON is not a job is forgotten with the record of an unreadable job (one whose
-- JSON is missing, with none).
-- Returns { requeued JSONs (new retries), failed JSONs, corrupt entries dropped (flat pairs: id,
--           JSON or false when none was stored), cancelled JSONs }
local leases_key, max_key, cur_key = KEYS[1], KEYS[2], KEYS[3]
local jobs_key, results_key, expiry_key, progress_key = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local prefix, now = ARGV[1], tonumber(ARGV[3])
local out = { requeued = {}, failed = {}, cancelled = {}, dropped = {}, failed_ids = {}, cancelled_ids = {},
  lost_ids = {}, unreadable_ids = {} }
local taken, freed, tally, failed_records = {}, false, {}, {}
for i = 9, #ARGV do
  local id, running_key = ARGV[i], KEYS[i]
  local lease = redis.call('ZSCORE', leases_key, id)
  if lease and tonumber(lease) < now then
    local flat = redis.call('HGETALL', running_key)
    local ids, entries, held = {}, {}, {}
    for k = 1, #flat, 2 do
      local head = string.sub(flat[k], 1, 2)
      if head == 's:' then
        if chard_release(max_key, cur_key, flat[k + 1]) then freed = true end
        held[#held + 1] = flat[k]
      elseif flat[k] ~= '~seq' and head ~= 'x:' and head ~= 'k:' then
        ids[#ids + 1], entries[#ids + 1] = flat[k], flat[k + 1]
      end
    end
    if #held > 0 then chard_chunked('HDEL', running_key, held) end
    local jsons = chard_chunked_list('HMGET', jobs_key, ids)
    local tombstones = {}
    for k = 1, #ids do
      local cancelled = string.byte(entries[k], 1) == 99
      local requeued = #out.requeued
      chard_take_back(ids[k], jsons[k], prefix, jobs_key, max_key, cur_key, out, cancelled)
      local job = jsons[k] and chard_read_job(jsons[k])
      if job and job.id == ids[k] then
        chard_tally(tally, 'a', job, -1)
        if #out.requeued > requeued then
          chard_tally(tally, 'q', job, 1)
        else
          chard_tally(tally, 'F', job, 1)
          local token = cancelled and string.sub(entries[k], 2) or entries[k]
          failed_records[#failed_records + 1] = { ids[k],
            chard_failed_record(now, token, id, cancelled and ARGV[7] or ARGV[6], jsons[k]) }
        end
      end
      tombstones[#tombstones + 1] = 'x:' .. (cancelled and string.sub(entries[k], 2) or entries[k]) .. ':' .. ids[k]
      tombstones[#tombstones + 1] = '1'
      taken[#taken + 1] = ids[k]
    end
    if #ids > 0 then chard_chunked('HDEL', running_key, ids) end
    chard_hset_pairs(running_key, tombstones)
    redis.call('EXPIRE', running_key, 86400)
    redis.call('ZREM', leases_key, id)
    redis.call('HDEL', prefix .. ':brokers', id)
    redis.call('HDEL', prefix .. ':sleepers', id)
  end
end
local bounds = chard_read_bounds(ARGV[8]) or chard_read_bounds('10000 604800000 0 86400000')
chard_store_ended(prefix, 'f', failed_records, now, bounds, tally)
chard_write_tally(prefix, tally)
if #out.requeued > 0 or freed then redis.call('PUBLISH', ARGV[2], '') end
if #out.lost_ids > 0 then chard_chunked('HDEL', jobs_key, out.lost_ids) end
chard_end_unreadable(jobs_key, results_key, expiry_key, ARGV[4], out.unreadable_ids, now, ARGV[5])
if #taken > 0 then chard_chunked('HDEL', progress_key, taken) end
local unannounced = {}
for k = 1, #out.failed do
  unannounced[#unannounced + 1] = out.failed_ids[k]
  unannounced[#unannounced + 1] = 'f' .. out.failed[k]
end
for k = 1, #out.cancelled do
  unannounced[#unannounced + 1] = out.cancelled_ids[k]
  unannounced[#unannounced + 1] = 'c' .. out.cancelled[k]
end
if #unannounced > 0 then
  chard_hset_pairs(KEYS[8], unannounced)
  redis.call('EXPIRE', KEYS[8], 86400)
end
chard_keys_ended(prefix, out.failed, now)
chard_keys_ended(prefix, out.cancelled, now)
if #out.failed > 0 then
  chard_jobs_ended(jobs_key, results_key, expiry_key, ARGV[4], out.failed_ids, nil, now, ARGV[6], ARGV[5])
end
if #out.cancelled > 0 then
  chard_jobs_ended(jobs_key, results_key, expiry_key, ARGV[4], out.cancelled_ids, nil, now, ARGV[7], ARGV[5])
end
return { out.requeued, out.failed, out.dropped, out.cancelled }
