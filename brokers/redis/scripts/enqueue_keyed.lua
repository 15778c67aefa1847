-- enqueue_keyed.lua: stores a batch of jobs of which some have a key, atomically, at most once per
-- call (its producer turn): enqueue_jobs.lua with the decision of each keyed job (see below).
-- KEYS[1]   producer lane STRING <p>:producer:<broker id>:<n>: the lane's high-water mark
--           (chard_producer_turn), with the reply of its last call
-- KEYS[2]   jobs HASH (job id -> job JSON)
-- KEYS[3]   future ZSET (job ids, score = atMs)
-- KEYS[4]   max-concurrency HASH: its field "" holds the flags, "prio:<queue>" set here when a job
--           enters a new level of a queue (see chard_push_level)
-- KEYS[5..] queue LISTs (job ids) of the due jobs of the batch
-- ARGV[1]   events channel (published to once, only while a worker pool sleeps, as enqueue_jobs.lua
--           does, with the same message)
-- ARGV[2]   the call's turn, "<seq> <ttl ms>" (as enqueue_jobs.lua)
-- ARGV[3]   id width w: the length every job id of the batch has (0 if they differ). A job whose
--           JSON shows its id as w plain bytes has it read there (the cheap path); any other's
--           id is read from its JSON as chard_job_id does
-- ARGV[4]   groups, "<target> <count> <target> <count> ...": the first <count> jobs of ARGV[5]
--           go to <target>, the next ones to the next target... <target> is the KEYS index of a
--           queue, or 0 for the future set, or "<KEYS index of a queue>:<priority>" for jobs due
--           with a priority other than 0: they go to that level of the queue, the LIST
--           prefix..":prio:"..priority..":"..queue (chard_push_level), or
--           "<KEYS index of a queue>:<priority>:g" for due jobs with a group (of that priority, 0
--           included): each goes to its group's lane. The common batch (all due, one queue, no
--           priority) is one group.
-- ARGV[5]   the jobs' JSONs, exactly as toJSON writes them, "\n"-separated, in group order and in
--           batch order within a group (so within each queue)
-- ARGV[6]   the atMs of the jobs of the future group, space-separated, in their order ("" if none)
-- ARGV[7]   key prefix "{chard:<ns>}": the levels are built here from it and the queue's name
--           (KEYS[i] is prefix..":queue:"..queue; same hash tag, same Cluster slot), and so are
--           the key records <p>:key:<key>, the queues, levels and lanes of replaced jobs, the
--           revoked SET, results and leases of a keyed batch
-- ARGV[8]   now (epoch ms, the client's clock): the due-now rule of a moved job, the
--           throttle window, the remembered windows of ended jobs;
-- ARGV[9]   the keyed jobs, in batch order, as space-separated quadruples
--           "<pos> <batchPos> <policy> <ttlMs>": <pos> is the 1-based place of the job in
--           ARGV[5], <batchPos> its 1-based place in the batch, <policy> k(eep), r(eplace),
--           d(ebounce) or t(hrottle), <ttlMs> its keyTtl. Each job's key is read from its JSON.
--           Policy o(nce) (a call of Broker.enqueueOnce: one for each job, key or not) is
--           the job's once-mark instead, the STRING prefix..":once:"..id, set (NX, PX <ttlMs>)
--           before anything else is decided: a job whose id is marked already is not stored (a
--           relay's re-sent rows, chard/postgres), and its key is left as it is.
-- ARGV[10..] optional, at most one: the claim of a schedule's fire time (engine scheduler), for a
--           batch of one job: "<rev>\n<due ms>\n<fire ms>\n<next ms>\n<next ms if skipped>\n<flags>\n<name>"
--           (an empty next ms: none). Applied after
--           the producer turn, before any other write: only while the schedule's HASH
--           (prefix..":schedule:"..name) has revision <rev>, is not paused, and its next fire time
--           in the ZSET prefix..":schedules" is <due ms>; then the next fire time becomes <next ms>
--           (none: removed, the schedule ended), or <next ms if skipped> for a claim without a job
--           (a skip does not count towards a limit of fires). Flags: "m" (misfired: no job,
--           counted skipped), "o" (no job either while the schedule's last job is in KEYS[2] and
--           not revoked). A fire counts fires, and records its fire time (last) and its job's id
--           (job): the job's, or for a duplicate of a key, the holder's.
--           Replies "x" (lost: another call claimed it, or the schedule changed; nothing written),
--           "s m" / "s o" (claimed without a job), else the batch's outcome; stored with the
--           lane's mark as any outcome, so a re-sent claim replies the same.
-- The jobs stored are counted (<p>:counts: queued, or waiting/retrying; see chard_tally), and a
-- replaced holder moves between those counts (and to its new task and queue).
-- A key record is a STRING: "<id> <policy> <scheduledMs> <ttlMs>" while its job (the holder)
-- exists, no expiry; "<id> <untilMs>" once it ended (the end paths write it: _prelude.lua), with
-- a PX to untilMs. A keyed job whose key is free (no record, an ended record past untilMs, or a
-- holder gone: ended by a version that ignores keys, or revoked) is stored and takes the key. A held key makes it a
-- duplicate, handled by its own policy (the holder may be a job earlier in this batch):
--   keep: nothing changes; throttle: the same while now < the holder's scheduledMs + this ttl,
--   else it is stored and takes the key; replace: a holder not running gets this job's JSON with
--   the holder's id, retries and at (in place when its task and queue are the same; else it
--   moves to the tail of its new queue, or the future set); debounce: the same with this job's
--   at (it moves between queue and future set as needed); a running holder is left to run and
--   this job is stored and takes the key. An ended record (within its window): nothing changes.
--   A replaced job goes to the level of its new priority (chard_push_ready) when it moves.
-- Returns the outcome of the batch, one line per job in batch order ("\n"-separated), stored with
-- the lane's mark ("<seq> <reply>") so that a re-sent call returns the same (a late attempt of an
-- earlier call of the lane returns 1, DUPLICATE, and writes nothing):
--   c                     created
--   k <state> <json>      kept or throttled: the holder, state w(aiting), q(ueued) or r(unning)
--   r <state> <json>      replaced or debounced: the holder as now stored
--   e <id> <status>       the key's job ended within its window: status s(ucceeded), f(ailed) or
--                         n (no result kept)
--   o                     its once-mark was set: an earlier call stored a job with its id
-- A CHARD_ARGS error, before anything is written, when the arguments do not describe a batch.
local DUPLICATE = 1
-- The claim of ARGV[10] (see the header): nil when the fire time was claimed for a job, else the reply.
local function claim_schedule(prefix, c, jobs_key, job_id)
  local rev, due, fire, next_at, skip_next, flags, name = c[1], c[2], c[3], c[4], c[5], c[6], c[7]
  local key, sched_key = prefix .. ':schedule:' .. name, prefix .. ':schedules'
  local s = redis.call('HMGET', key, 'rev', 'paused', 'job')
  local score = redis.call('ZSCORE', sched_key, name)
  if s[1] ~= rev or s[2] == '1' or not score or tonumber(score) ~= tonumber(due) then return 'x' end
  local skip = string.find(flags, 'm', 1, true) and 's m'
  -- The last job has not ended while it is stored and not revoked (a revoked one never runs).
  if not skip and string.find(flags, 'o', 1, true) and s[3] and redis.call('HEXISTS', jobs_key, s[3]) == 1
      and redis.call('SISMEMBER', prefix .. ':revoked', s[3]) == 0 then
    skip = 's o'
  end
  if skip then next_at = skip_next end
  if next_at == '' then redis.call('ZREM', sched_key, name) else redis.call('ZADD', sched_key, next_at, name) end
  if skip then
    redis.call('HINCRBY', key, 'skipped', 1)
    return skip
  end
  redis.call('HINCRBY', key, 'fires', 1)
  redis.call('HSET', key, 'last', fire, 'job', job_id)
  return nil
end
local function bad(what)
  return redis.error_reply('CHARD_ARGS enqueue_keyed: ' .. what)
end
local batch, wrong = chard_read_batch(ARGV[4], ARGV[5], tonumber(ARGV[3]), ARGV[6], #KEYS)
if not batch then return bad(wrong) end
local targets, prios, counts, ids = batch.targets, batch.prios, batch.counts, batch.ids
local hash_args, n, future_at = batch.hash_args, batch.n, batch.future_at

-- A batch with keyed jobs (see the header): the same writes, job by job decided, then grouped
-- as for any batch (one HSET, one RPUSH per queue, one ZADD), plus two commands per keyed job
-- (GET and SET of its key record) and a few more per duplicate.
do
  local now, prefix = tonumber(ARGV[8]), ARGV[7]
  if not now or not prefix then return bad('a keyed batch needs now and the prefix') end
  local claim = nil
  if ARGV[10] and ARGV[10] ~= '' then
    claim = { string.match(ARGV[10], '^(%d+)\n(%-?%d+)\n(%-?%d+)\n(%-?%d*)\n(%-?%d*)\n(%a*)\n(.+)$') }
    if #claim ~= 7 or n ~= 1 then return bad('bad claim ' .. string.sub(ARGV[10], 1, 100)) end
  end
  local quads = chard_split_ids(ARGV[9], 0)
  if #quads % 4 ~= 0 then return bad('bad keyed jobs: ' .. string.sub(ARGV[9], 1, 100)) end
  local entries = {}
  for q = 1, #quads, 4 do
    local pos, batch_pos, policy, ttl = tonumber(quads[q]), tonumber(quads[q + 1]), quads[q + 2], tonumber(quads[q + 3])
    local job = pos and ids[pos] and chard_read_job(hash_args[2 * pos])
    if not job or not (job.key or policy == 'o') or not batch_pos or batch_pos < 1 or batch_pos > n or not ttl
        or not string.find('krdto', policy, 1, true) or #policy ~= 1 then
      return bad('bad keyed job ' .. string.sub(ARGV[9], q, q + 60))
    end
    -- Checked now, as everything else: a replace rewrites the JSON's head after writes began.
    if (policy == 'r' or policy == 'd') and not chard_rewrite_head(hash_args[2 * pos], job.id, 0, 0) then
      return bad('not a job entry: ' .. string.sub(hash_args[2 * pos], 1, 100))
    end
    entries[#entries + 1] = { pos = pos, batch = batch_pos, policy = policy, ttl = ttl, job = job }
  end
  local seen, seq, ttl = chard_producer_turn(KEYS[1], ARGV[2])
  if seen == false then return bad(seq) end
  if seen then
    local mark, stored = string.match(seen, '^(%d+) (.*)$')
    if mark == seq then return stored end
    return DUPLICATE
  end
  if claim then
    local claimed = claim_schedule(prefix, claim, KEYS[2], ids[1])
    if claimed then
      redis.call('SET', KEYS[1], seq .. ' ' .. claimed, 'PX', ttl)
      return claimed
    end
  end

  -- Where each job of ARGV[5] goes: a queue key (and its priority level, when not 0), or false
  -- for the future set (and its at).
  local dest, at_of, prio_of, lane_of, first = {}, {}, {}, {}, 1
  -- The flags this call set (chard_push_group sets the flag of a queue's groups once per call).
  local set_flags = {}
  for g, target in ipairs(targets) do
    for i = first, first + counts[g] - 1 do
      if target == 0 then
        dest[i] = false
        at_of[i] = future_at[i - first + 1]
      else
        dest[i] = KEYS[target]
        prio_of[i] = prios[g] or nil
        if batch.grouped[g] then
          local j = chard_read_job(hash_args[2 * i])
          lane_of[i] = chard_group_lane(j.task, j.group)
        end
      end
    end
    first = first + counts[g]
  end
  local store = {} -- store[i] == false: the job of ARGV[5] at i is not stored (a duplicate)
  local in_batch = {} -- id -> place in ARGV[5] of a job of this batch that took a key
  local extra_hset, extra_push, extra_zadd = {}, {}, {}
  local outcome, tally = {}, {}
  local function place(id, queue, at, prio, lane) -- a replaced job stored before this call, moved
    if at <= now then
      if lane or (prio and prio ~= 0) then
        chard_push_ready(prefix, KEYS[4], set_flags, queue, prio, id, false, lane)
        return 'q'
      end
      local key = prefix .. ':queue:' .. queue
      extra_push[key] = extra_push[key] or {}
      table.insert(extra_push[key], id)
      return 'q'
    end
    extra_zadd[#extra_zadd + 1] = chard_score(at)
    extra_zadd[#extra_zadd + 1] = id
    return 'w'
  end
  -- Once-marks first: a job whose id an earlier once call stored is left out, key and all.
  local keyed = {}
  for _, e in ipairs(entries) do
    if e.policy == 'o' and not redis.call('SET', prefix .. ':once:' .. ids[e.pos], '1', 'NX', 'PX', e.ttl) then
      outcome[e.batch], store[e.pos] = 'o', false
    end
  end
  for _, e in ipairs(entries) do
    if e.policy ~= 'o' and store[e.pos] ~= false then keyed[#keyed + 1] = e end
  end
  for _, e in ipairs(keyed) do
    local job, rk = e.job, prefix .. ':key:' .. e.job.key
    local record = redis.call('GET', rk)
    local take = true
    if record then
      local holder, policy, scheduled = string.match(record, '^(%S+) (%a) (%-?%d+) %d+$')
      if not holder then
        local ended, until_ms = string.match(record, '^(%S+) (%-?%d+)$')
        if ended and tonumber(until_ms) > now then
          local result = redis.call('HGET', prefix .. ':results', ended)
          local status = not result and 'n' or (string.sub(result, 1, 10) == '{"ok":true' and 's' or 'f')
          outcome[e.batch] = 'e ' .. ended .. ' ' .. status
          store[e.pos], take = false, false
        end
      else
        local pos = in_batch[holder]
        local json, state, cur = nil, nil, nil
        if pos then
          json, state = hash_args[2 * pos], dest[pos] and 'q' or 'w'
        else
          json = redis.call('HGET', KEYS[2], holder)
          if json then -- else gone (ended by a version that ignores keys): the key is free
            local live = chard_live_state(prefix .. ':revoked', prefix .. ':leases', prefix, holder)
            if live == 'running' then
              state = 'r'
            elseif live == 'pending' then
              state = redis.call('ZSCORE', KEYS[3], holder) and 'w' or 'q'
            end -- revoked: it will never run, the key is free
          end
        end
        if state then
          cur = chard_read_job(json)
          local p = e.policy
          if p == 'k' or (p == 't' and now < tonumber(scheduled) + e.ttl) then
            outcome[e.batch] = 'k ' .. state .. ' ' .. json
            store[e.pos], take = false, false
          elseif cur and state ~= 'r' and (p == 'r' or p == 'd') then
            local new_at = p == 'd' and job.at or cur.at
            local new_json = chard_rewrite_head(hash_args[2 * e.pos], holder, cur.retries, new_at)
            if not new_json then return bad('not a job entry: ' .. string.sub(hash_args[2 * e.pos], 1, 100)) end
            local due = new_at <= now
            local same = job.queue == cur.queue and job.task == cur.task and (job.prio or 0) == (cur.prio or 0)
              and job.group == cur.group
            local new_lane = job.group and chard_group_lane(job.task, job.group)
            local now_state
            if pos then -- a job of this batch, not written yet: its place is decided here
              hash_args[2 * pos] = new_json
              if not (same and due and state == 'q') then
                dest[pos] = due and (prefix .. ':queue:' .. job.queue) or false
                at_of[pos] = chard_score(new_at)
                prio_of[pos] = job.prio
                lane_of[pos] = new_lane or nil
              end
              now_state = dest[pos] and 'q' or 'w'
            else
              extra_hset[#extra_hset + 1] = holder
              extra_hset[#extra_hset + 1] = new_json
              if state == 'w' then
                if same and not due then
                  if new_at ~= cur.at then redis.call('ZADD', KEYS[3], chard_score(new_at), holder) end
                  now_state = 'w'
                else
                  redis.call('ZREM', KEYS[3], holder)
                  now_state = place(holder, job.queue, new_at, job.prio, new_lane)
                end
              elseif same and due then
                now_state = 'q'
              else
                chard_unqueue(prefix, KEYS[4], holder, cur) -- where it waits
                now_state = place(holder, job.queue, new_at, job.prio, new_lane)
              end
            end
            if not pos then -- counted out of its old place, into its new one
              local after = chard_read_job(new_json)
              chard_tally(tally, state == 'w' and chard_wait_letter(cur) or 'q', cur, -1)
              if after then chard_tally(tally, now_state == 'w' and chard_wait_letter(after) or 'q', after, 1) end
            end
            redis.call('SET', rk, holder .. ' ' .. e.policy .. ' ' .. scheduled .. ' ' .. string.format('%d', e.ttl))
            outcome[e.batch] = 'r ' .. now_state .. ' ' .. new_json
            store[e.pos], take = false, false
          end
        end
      end
    end
    if take then -- free, or taken from a holder that is gone, running (replace) or past its window
      redis.call('SET', rk, ids[e.pos] .. ' ' .. e.policy .. ' ' .. string.format('%d', now) .. ' '
        .. string.format('%d', e.ttl))
      in_batch[ids[e.pos]] = e.pos
    end
  end

  local hset, pushes, push_order, zadd, levels = {}, {}, {}, {}, {}
  for i = 1, n do
    if store[i] ~= false then
      hset[#hset + 1] = ids[i]
      hset[#hset + 1] = hash_args[2 * i]
      local key = dest[i]
      local counted = chard_read_job(hash_args[2 * i])
      if counted then chard_tally(tally, key and 'q' or chard_wait_letter(counted), counted, 1) end
      if key and (lane_of[i] or (prio_of[i] and prio_of[i] ~= 0)) then
        levels[#levels + 1] = { string.sub(key, #prefix + 8), prio_of[i], ids[i], lane_of[i] }
      elseif key then
        if not pushes[key] then
          pushes[key] = {}
          push_order[#push_order + 1] = key
        end
        table.insert(pushes[key], ids[i])
      else
        zadd[#zadd + 1] = at_of[i]
        zadd[#zadd + 1] = ids[i]
      end
    end
  end
  for i = 1, #extra_hset do hset[#hset + 1] = extra_hset[i] end
  for i = 1, #extra_zadd do zadd[#zadd + 1] = extra_zadd[i] end
  for key, list in pairs(extra_push) do
    if not pushes[key] then
      pushes[key] = {}
      push_order[#push_order + 1] = key
    end
    for _, id in ipairs(list) do table.insert(pushes[key], id) end
  end
  chard_hset_pairs(KEYS[2], hset)
  for _, key in ipairs(push_order) do chard_chunked('RPUSH', key, pushes[key]) end
  for _, l in ipairs(levels) do chard_push_ready(prefix, KEYS[4], set_flags, l[1], l[2], l[3], false, l[4]) end
  for i = 1, #zadd, 2000 do redis.call('ZADD', KEYS[3], unpack(zadd, i, math.min(i + 1999, #zadd))) end
  local lines = {}
  for b = 1, n do lines[b] = outcome[b] or 'c' end
  local reply = table.concat(lines, '\n')
  -- A fire whose job is a duplicate of a held (or remembered) key: the schedule's last job is the
  -- holder, whose end the overlap policy and the listing follow.
  if claim and lines[1] ~= 'c' then
    local holder = string.match(lines[1], '^e (%S+)') or chard_job_id(string.sub(lines[1], 5))
    if holder then redis.call('HSET', prefix .. ':schedule:' .. claim[7], 'job', holder) end
  end
  chard_write_tally(prefix, tally)
  redis.call('SET', KEYS[1], seq .. ' ' .. reply, 'PX', ttl)
  chard_wake_sleepers(prefix, ARGV[1], KEYS[1])
  return reply
end

