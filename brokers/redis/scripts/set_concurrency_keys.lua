-- set_concurrency_keys.lua: records the gates of the given tasks: concurrency limits and rate limits.
-- KEYS[1]   max-concurrency HASH (task name -> limit; "0" for a task gated without a concurrency
--           limit: by rate limits, a pause or a block; field "": the namespace's flags)
-- KEYS[2]   concurrency HASH (task name -> jobs running now)
-- KEYS[3]   jobs HASH (job id -> job JSON: read for the priorities of the jobs of a lane put back)
-- ARGV[1]   key prefix "{chard:<ns>}": the lane of a task in a queue is built here as
--           prefix..":lane:"..queue..":t:"..task, listed in prefix..":lanes:"..queue, and the
--           queues that have had lanes are the SET prefix..":lane-queues" (same hash tag)
-- ARGV[2]   now (epoch ms): blocks that ended before it are forgotten
-- ARGV[3..] four per task: name, limit ("" = unlimited), rate limits (JSON
--           [[id, max, window ms], ...], "" for none; ids "t:<task>" and "n:<limiter>"), group
--           limits (JSON [maxConcurrency or 0, and max, window ms of a rate limit], "" for none)
-- A task with group limits keeps them in the flags "gcap:<task>" (each group's concurrency limit,
-- counted in the field of its group lane, "\\1<task>\\1<group>") and "grl:<task>" ({max, window ms}
-- of each group's window, "g:<group lane>"), and is gated. A gated task (a limit, rate limits or
-- group limits) gets its limit ("0" without one, overwritten) and a
-- counter initialised to 0 only if missing, so jobs running now stay counted; its rate limiters'
-- ids go in the flag "rl:<task>" and their definitions in "lim:<id>" ({max, window ms}: the
-- latest registered definition of a named limiter is kept; its window of starts, in
-- prefix..":rate:"..id and the field id of prefix..":rates", is left as it is). A task that is
-- neither is removed from both hashes, unless it is paused or blocked (it stays gated with "0"):
-- the jobs waiting in its lane of each queue go back to the front of their queue (chard_unlane).
-- Tasks absent from this call are left alone; so are the other flags of the field "" but those of
-- the lanes emptied here. Applied twice, the second call finds nothing more to change.
-- Returns the number of gated tasks.
local gated, prefix, now = 0, ARGV[1], tonumber(ARGV[2])
local specs = {}
local group_specs = {}
for i = 3, #ARGV, 4 do -- checked first: a script's writes are not rolled back
  if ARGV[i + 3] ~= '' then
    local ok, g = pcall(cjson.decode, ARGV[i + 3])
    if not ok or type(g) ~= 'table' or type(g[1]) ~= 'number' or (g[2] ~= nil and (type(g[2]) ~= 'number'
        or type(g[3]) ~= 'number' or g[2] < 1 or g[3] < 1)) then
      return redis.error_reply('CHARD_ARGS set_concurrency_keys: group limits are [maxConcurrency, max, window ms]')
    end
    group_specs[i] = g
  end
  if ARGV[i] == '' then return redis.error_reply('CHARD_ARGS set_concurrency_keys: a task name is not empty') end
  local spec = {}
  if ARGV[i + 2] ~= '' then
    local ok, decoded = pcall(cjson.decode, ARGV[i + 2])
    if not ok or type(decoded) ~= 'table' then
      return redis.error_reply('CHARD_ARGS set_concurrency_keys: rate limits are a JSON list')
    end
    for _, l in ipairs(decoded) do
      if type(l) ~= 'table' or type(l[1]) ~= 'string' or type(l[2]) ~= 'number' or type(l[3]) ~= 'number'
          or l[2] < 1 or l[3] < 1 then
        return redis.error_reply('CHARD_ARGS set_concurrency_keys: a rate limit is [id, max >= 1, window ms >= 1]')
      end
      spec[#spec + 1] = l
    end
  end
  specs[i] = spec
end
local flags = chard_decode_flags(redis.call('HGET', KEYS[1], ''))
local ungated, changed = {}, false
-- Sets flags[f] to `v` (a list, or nil), noting a change.
local function set(f, v)
  local old = flags[f]
  if v == nil and old == nil then return end
  if v ~= nil and type(old) == 'table' and #old == #v then
    local same = true
    for k = 1, #v do
      if old[k] ~= v[k] then same = false end
    end
    if same then return end
  end
  flags[f], changed = v, true
end
for i = 3, #ARGV, 4 do
  local name, limit, spec, gspec = ARGV[i], ARGV[i + 1], specs[i], group_specs[i]
  local ids = {}
  for k, l in ipairs(spec) do
    ids[k] = l[1]
    set('lim:' .. l[1], { l[2], l[3] })
  end
  set('rl:' .. name, #ids > 0 and ids or nil)
  local until_ = tonumber(flags['until:t:' .. name])
  if until_ and until_ <= now then
    flags['until:t:' .. name], changed, until_ = nil, true, nil
  end
  if gspec and gspec[1] > 0 then set('gcap:' .. name, { gspec[1] }) else set('gcap:' .. name, nil) end
  if gspec and gspec[2] then set('grl:' .. name, { gspec[2], gspec[3] }) else set('grl:' .. name, nil) end
  if limit ~= '' or #ids > 0 or gspec or flags['tpaused:' .. name] or until_ then
    redis.call('HSET', KEYS[1], name, limit ~= '' and limit or '0')
    redis.call('HSETNX', KEYS[2], name, 0)
    gated = gated + 1
  else
    ungated[#ungated + 1] = name
  end
end
if changed then chard_write_flags(KEYS[1], flags) end
for _, name in ipairs(ungated) do
  if redis.call('HDEL', KEYS[1], name) == 1 then
    for _, queue in ipairs(redis.call('SMEMBERS', prefix .. ':lane-queues')) do
      chard_unlane(prefix, KEYS[1], KEYS[3], queue, name)
    end
  end
  redis.call('HDEL', KEYS[2], name)
end
return gated
