-- finish_jobs.lua: acknowledges ended executions of this broker atomically, with no fetch (a worker
-- with no free slot or stopping, acks re-sent after a failed turn; a turn's acks go with
-- fetch_jobs.lua).
-- KEYS[1]   running HASH (job id -> fetch token) of this broker
-- KEYS[2]   max-concurrency HASH
-- KEYS[3]   concurrency HASH
-- KEYS[4]   future ZSET (job ids, score = atMs)
-- KEYS[5]   jobs HASH (job id -> job JSON)
-- KEYS[6]   results HASH
-- KEYS[7]   result-expiry ZSET
-- KEYS[8]   progress HASH
-- KEYS[9..] queue LISTs that retried jobs go back to
-- ARGV[1]   events channel (published to when a job was re-enqueued or a concurrency slot freed)
-- ARGV[2]   results channel (the ids of the jobs that ended are published to it, space-separated)
-- ARGV[3]   now (epoch ms)
-- ARGV[4]   id width of ARGV[5]: every id there is that many bytes, or 0 (ids of any width)
-- ARGV[5]   the common case, packed: ids of the jobs that ended (succeeded or failed) with no
--           result record kept and no progress stored, in batch order, separated by one space
-- ARGV[6]   the fetch tokens of the ids of ARGV[5], run-length: "<token> <count>" pairs,
--           space-separated, in batch order (each execution's ack carries the token of the fetch
--           that handed it its job)
-- ARGV[7]   the other jobs, one line each ("\n"-separated), led by a kind, the job's 1-based
--           position in the batch (the jobs of ARGV[5] fill the positions the lines leave free)
--           and its fetch token:
--             e <pos> <id> <token>                    ended, nothing kept
--             r <pos> <id> <token> <ttlMs> <record>   ended, its result record kept for ttlMs
--             q <pos> <id> <token> <keyIndex> <json>  retry now: new JSON stored, id RPUSHed to KEYS[keyIndex]
--                                                     (a job with a priority: to that level of its queue)
--             f <pos> <id> <token> <atMs> <json>      retry later: new JSON stored, id ZADDed to future at atMs
--           An upper-case kind (E, R, Q, F) also forgets the job's progress. An ended kind led by
--           "k" (ke, kR...) is the ack of a job with a key: its key record (<p>:key:<key>, built
--           from ARGV[8]) is released or given its ttl if it still names the job (chard_key_ended);
--           acks of jobs without a key never read one. A kind led by "h"
--           (he, hR, hke...) keeps the job's concurrency slot taken: its task function runs on (it
--           ignored a timeout, cancel or stop), so the slot is recorded as "s:<token>:<id>" -> task
--           in KEYS[1] until a release line frees it (or a recovery, once this broker's lease
--           expired). And the slot releases, after the acks, without a position:
--             s <id> <token>                          frees the slot "s:<token>:<id>" if still held
-- ARGV[8]   key prefix "{chard:<ns>}": the level of a retry with a priority is built here as
--           prefix..":prio:"..priority..":"..queue, listed in prefix..":prios:"..queue (same hash
--           tag, same Cluster slot), and flagged in KEYS[2] (see chard_push_level); the key
--           records of keyed acks are built from it too
-- ARGV[9]   the acks that failed for good, and the ended records to keep, one line each
--           ("\n"-separated): "<id> f" (failed, no record kept), "<id> f <record>" (failed, its
--           lib/operations.ts EndedRecord for the failed store), "<id> s <record>" (succeeded, its
--           record for the succeeded store); an ended ack not listed succeeded with nothing kept
-- ARGV[10]  the stores' bounds: "<failed count> <failed age ms> <succeeded count> <succeeded age ms>"
--           (Broker.retention): each store that gets records is trimmed to them (chard_store_ended)
-- ARGV[11]  the task and queue of each ack, in batch order: "<n> <bytes> <task>\1<queue>" runs
--           (chard_ack_groups): the acks are counted by them, without reading their jobs ("": read)
-- The jobs applied are counted per state, task and queue (<p>:counts, built from ARGV[8]; see
-- chard_tally), and so are the records stored and trimmed.
-- The work is chard_finish_jobs (_prelude.lua), which fetch_jobs.lua also runs for the acks of a
-- worker's turn. Fenced, so safe to apply late or twice: a job is applied only while this
-- broker's running HASH holds it under the ack's fetch token; an ack applied before (re-sent
-- after a lost reply) is skipped; one of a job another broker took over is refused. A job listed
-- twice is applied once, at its first position; a job of a limited task releases its slot (or
-- holds it). A release frees a held slot only while its field is there, so it frees one at most.
-- Returns the positions (1-based, in the batch) of the acks refused because another broker took
-- their job over (this broker's lease had expired), and, negated, those of the retries applied as
-- cancellations (the job was cancelled while it ran: chard_apply_lines); {} when none was.
local keys = { running = KEYS[1], max_concurrency = KEYS[2], concurrency = KEYS[3], future = KEYS[4], jobs = KEYS[5],
  results = KEYS[6], result_expiry = KEYS[7], progress = KEYS[8], by_index = KEYS, prefix = ARGV[8],
  broker = string.sub(KEYS[1], #ARGV[8] + 10) }
local notify, taken_over = chard_finish_jobs(keys, ARGV[2], nil, tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], ARGV[6],
  ARGV[7], ARGV[9], chard_read_bounds(ARGV[10]), nil, ARGV[11])
if notify then redis.call('PUBLISH', ARGV[1], '') end
return taken_over
