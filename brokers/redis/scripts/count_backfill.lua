-- count_backfill.lua: gives a namespace its counters (<p>:counts, see chard_tally) once, from the
-- jobs it holds: run by each broker before its first write; the first run counts, the others
-- find the mark and return at once.
-- KEYS[1]   counts HASH: the field "~v" marks a namespace counted
-- KEYS[2]   jobs HASH (job id -> job JSON)
-- KEYS[3]   future ZSET (job ids, score = atMs)
-- KEYS[4]   leases ZSET (the running HASHes of the brokers listed there are read)
-- ARGV[1]   key prefix "{chard:<ns>}": running HASHes are built here as prefix..":running:"..brokerId
-- A namespace made by a version without counters (0.1.0) is counted by state: its waiting and
-- retrying jobs (in the future set), running ones (in a leased broker's running HASH), and every
-- other job it holds as queued (a revoked one included, until a fetch drops it). The totals start
-- at 0. The walk is O(jobs) in one call (HSCAN of the jobs HASH in steps of 1000, within the
-- script): a one-time cost, about 2 s per million jobs. Processes of the old version still running
-- during it move jobs uncounted: stop them before starting this version (CHANGELOG).
-- Returns 1 when it counted, 0 when the namespace was counted already.
if redis.call('HEXISTS', KEYS[1], '~v') == 1 then return 0 end
local prefix, tally, running = ARGV[1], {}, {}
for _, broker in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  for _, id in ipairs(redis.call('HKEYS', prefix .. ':running:' .. broker)) do running[id] = true end
end
local cursor = '0'
repeat
  local reply = redis.call('HSCAN', KEYS[2], cursor, 'COUNT', 1000)
  cursor = reply[1]
  local flat, ids = reply[2], {}
  for k = 1, #flat, 2 do ids[#ids + 1] = flat[k] end
  local scores = chard_chunked_list('ZMSCORE', KEYS[3], ids)
  for k = 1, #ids do
    local job = chard_read_job(flat[2 * k])
    if job then
      local letter = 'q'
      if running[ids[k]] then letter = 'a' elseif scores[k] then letter = chard_wait_letter(job) end
      chard_tally(tally, letter, job, 1)
    end
  end
until cursor == '0'
redis.call('DEL', KEYS[1])
chard_write_tally(prefix, tally)
redis.call('HSET', KEYS[1], '~v', '1')
return 1
