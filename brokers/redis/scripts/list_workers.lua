-- list_workers.lua: the brokers holding a lease, with their worker info and running jobs.
-- KEYS[1]   leases ZSET (broker id -> lease expiry ms)
-- KEYS[2]   brokers HASH (broker id -> worker info JSON, see start_broker.lua)
-- ARGV[1]   key prefix "{chard:<ns>}": running HASHes are built here as prefix..":running:"..brokerId
-- ARGV[2]   now (epoch ms): brokers whose lease expired before it are left out
-- Returns a flat list: broker id, lease expiry (ms, text), info JSON or false, and the ids of the
-- jobs running there space-separated ("" for none); per broker. O(brokers + jobs running).
local out = {}
local leased = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], '+inf', 'WITHSCORES')
for i = 1, #leased, 2 do
  local id = leased[i]
  local ids = {}
  for _, field in ipairs(redis.call('HKEYS', ARGV[1] .. ':running:' .. id)) do
    local head = string.sub(field, 1, 2)
    if field ~= '~seq' and head ~= 'x:' and head ~= 'k:' and head ~= 's:' then ids[#ids + 1] = field end
  end
  out[#out + 1] = id
  out[#out + 1] = leased[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[2], id) or false
  out[#out + 1] = table.concat(ids, ' ')
end
return out
