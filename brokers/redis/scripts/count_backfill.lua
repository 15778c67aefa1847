-- count_backfill.lua: gives a namespace its counters (<p>:counts, see chard_tally) from the jobs it
-- holds, one bounded step per call: each broker runs it, until it replies 0, before its first
-- write, so no process of this version moves a job while a namespace is being counted.
-- KEYS[1]   counts HASH: the field "~v" marks a namespace counted, "~b" holds the walk's cursor
-- KEYS[2]   jobs HASH (job id -> job JSON)
-- KEYS[3]   future ZSET (job ids, score = atMs)
-- KEYS[4]   leases ZSET (the running HASHes of the brokers listed there are read)
-- ARGV[1]   key prefix "{chard:<ns>}": running HASHes are built here as prefix..":running:"..brokerId
-- ARGV[2]   the most jobs one call counts (a bound on the call's time: about 7 us per job)
-- A namespace made by a version without counters (0.1.0) is counted by state: its waiting and
-- retrying jobs (in the future set), running ones (in a leased broker's running HASH), and every
-- other job it holds as queued (a revoked one included, until a fetch drops it). The totals start
-- at 0. The walk is an HSCAN of the jobs HASH, its cursor kept in "~b" between calls (a broker that
-- dies mid-walk leaves it to the next); the first step clears what a previous version might have
-- left. Exact because nothing moves jobs meanwhile: every broker of this version waits for the
-- walk's end before it writes, and processes of the old version must be stopped first (CHANGELOG).
-- Safe to apply late or twice: a counted namespace ("~v") replies 0 at once, and each step
-- continues from the cursor the previous one stored.
-- Returns 0 when the namespace is counted, 1 when more steps are needed.
if redis.call('HEXISTS', KEYS[1], '~v') == 1 then return 0 end
local prefix, most, tally, running = ARGV[1], tonumber(ARGV[2]), {}, {}
local cursor = redis.call('HGET', KEYS[1], '~b')
if not cursor then
  redis.call('DEL', KEYS[1])
  cursor = '0'
end
for _, broker in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  for _, id in ipairs(redis.call('HKEYS', prefix .. ':running:' .. broker)) do running[id] = true end
end
local seen = 0
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
  seen = seen + #ids
until cursor == '0' or seen >= most
chard_write_tally(prefix, tally)
if cursor == '0' then
  redis.call('HDEL', KEYS[1], '~b')
  redis.call('HSET', KEYS[1], '~v', '1')
  return 0
end
redis.call('HSET', KEYS[1], '~b', cursor)
return 1
