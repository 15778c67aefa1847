-- trim_results.lua: removes result records whose expiry has passed, first to expire first: how a
-- lease renewal goes on when keep_alive.lua removed a full batch (more expired records are left).
-- KEYS[1]  results HASH
-- KEYS[2]  result-expiry ZSET
-- ARGV[1]  now (epoch ms): the records whose expiry is before it go
-- ARGV[2]  at most this many
-- Returns how many were removed: fewer than ARGV[2] means none expired is left.
-- Safe to apply late or twice: a record removed is one read_result.lua already reads as gone (past
-- its expiry), and a second run finds fewer to remove.
return chard_trim_results(KEYS[1], KEYS[2], tonumber(ARGV[1]), ARGV[2])
