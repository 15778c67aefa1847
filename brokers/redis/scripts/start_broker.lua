-- start_broker.lua: a broker whose workers start takes its lease and records what it runs.
-- KEYS[1]   leases ZSET (broker id -> lease expiry ms)
-- KEYS[2]   brokers HASH (broker id -> its worker info, JSON: host, pid, queues, concurrency,
--           startedAt, leaseMs; read by list_workers.lua)
-- ARGV[1]   broker id
-- ARGV[2]   lease expiry (now + leaseMs)
-- ARGV[3]   its worker info JSON, or "" for none (a broker started without workers' info)
-- The info goes with the lease: stop.lua and recover_dead_brokers.lua remove it. Safe to repeat.
-- Returns 1.
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], ARGV[1], ARGV[3]) end
return 1
