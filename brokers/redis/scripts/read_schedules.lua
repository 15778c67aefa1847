-- read_schedules.lua: schedules with their state and their last job's, in one atomic read.
-- KEYS[1]   schedules ZSET (name -> next fire ms)
-- KEYS[2]   schedule-names SET
-- KEYS[3]   jobs HASH
-- KEYS[4]   results HASH
-- KEYS[5]   revoked SET
-- KEYS[6]   leases ZSET
-- ARGV[1]   key prefix "{chard:<ns>}" (each schedule's HASH is prefix..":schedule:"..name)
-- ARGV[2]   "all", "names" (the names in ARGV[5..]) or "due" (those due by ARGV[3], at most ARGV[4])
-- ARGV[3]   "due": the time (ms) they are due by; the next fire time after it is returned too
-- ARGV[4]   "due": most schedules returned
-- ARGV[5]   "due": where among the due ones the returned ones start, a number in [0, 1): with more
--           due than ARGV[4], the window starts at that fraction of the rest (engines racing for
--           a burst of fire times each read their own window)
-- ARGV[6..] "names": the names
-- Read-only. Returns { entries, next fire ms after ARGV[3] (exact text; "due" only) or false },
-- entries flattened 12 per schedule: name, def, rev, next fire ms or "", paused "1" or "",
-- fires, skipped, last fire ms or "", last job id or "", its state (pending, running, revoked,
-- finished, unknown or ""), "1" when finished with a success record else "", created ms .. " " ..
-- updated ms. A name listed without a HASH (written by no version) is left out. In "due" mode the
-- last job's state is not looked up (the scheduler claiming them does not need it): "", "".
local sched_key, names_key, jobs_key, results_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, mode = ARGV[1], ARGV[2]
local names, next_after = {}, false
if mode == 'due' then
  local limit = tonumber(ARGV[4])
  local extra = redis.call('ZCOUNT', sched_key, '-inf', ARGV[3]) - limit
  local offset = extra > 0 and math.floor((tonumber(ARGV[5]) or 0) * (extra + 1)) or 0
  names = redis.call('ZRANGEBYSCORE', sched_key, '-inf', ARGV[3], 'LIMIT', offset, limit)
  local later = redis.call('ZRANGEBYSCORE', sched_key, '(' .. ARGV[3], '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if later[2] then next_after = later[2] end
elseif mode == 'names' then
  for i = 6, #ARGV do names[#names + 1] = ARGV[i] end
else
  names = redis.call('SMEMBERS', names_key)
end
local out = {}
for _, name in ipairs(names) do
  local s = redis.call('HMGET', prefix .. ':schedule:' .. name, 'def', 'rev', 'paused', 'fires', 'skipped', 'last',
    'job', 'created', 'updated')
  if s[1] then
    local job, state, ok = s[7], '', ''
    if job and mode ~= 'due' then
      if redis.call('HEXISTS', jobs_key, job) == 1 then
        state = chard_live_state(KEYS[5], KEYS[6], prefix, job)
      else
        local record = redis.call('HGET', results_key, job)
        state = record and 'finished' or 'unknown'
        if record and string.sub(record, 1, 10) == '{"ok":true' then ok = '1' end
      end
    end
    local next_at = redis.call('ZSCORE', sched_key, name)
    out[#out + 1] = name
    out[#out + 1] = s[1]
    out[#out + 1] = s[2]
    out[#out + 1] = next_at or ''
    out[#out + 1] = s[3] or ''
    out[#out + 1] = s[4] or '0'
    out[#out + 1] = s[5] or '0'
    out[#out + 1] = s[6] or ''
    out[#out + 1] = job or ''
    out[#out + 1] = state
    out[#out + 1] = ok
    out[#out + 1] = (s[8] or '0') .. ' ' .. (s[9] or '0')
  end
end
return { out, next_after }
