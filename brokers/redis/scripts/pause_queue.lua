-- pause_queue.lua: pauses or resumes a queue for every worker of the namespace.
-- KEYS[1]  max-concurrency HASH (its field "" holds the namespace's flags)
-- ARGV[1]  events channel (published to on a resume, so that idle workers fetch at once)
-- ARGV[2]  queue name
-- ARGV[3]  "1" to pause, "0" to resume
-- The paused state is the flag "paused:<queue>" of the field "" of KEYS[1] (chard_set_flag),
-- which fetch_jobs.lua reads with the limits: a fetch takes nothing from a paused queue (and
-- serves the other queues it is given); acks, due future jobs and periodic tasks, and lease
-- renewals go on. No job is touched here. Safe to apply twice: the second run finds the flag as
-- the first left it (and a resume publishes again, which only wakes idle workers once more).
-- Returns 1 when the queue was paused before this call, else 0.
local flag = 'paused:' .. ARGV[2]
local before = chard_decode_flags(redis.call('HGET', KEYS[1], ''))[flag] == true
chard_set_flag(KEYS[1], flag, ARGV[3] == '1')
if ARGV[3] ~= '1' then redis.call('PUBLISH', ARGV[1], '') end
if before then return 1 end
return 0
