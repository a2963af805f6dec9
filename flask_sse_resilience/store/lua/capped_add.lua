-- A capped set of members that expire (a sorted set scored by expiry, Redis
-- clock): a user's open streams, a user's connections, a stream's connections.
-- KEYS: the set, and optionally a key that must exist (the stream's record).
-- ARGV: member, limit (0: none), ttl_ms.
-- Drops expired members, then adds (or refreshes) this one unless the set is
-- at its limit. Returns 1 added, 0 refreshed (a member already), -1 full,
-- -2 the key that must exist does not.
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 0 then return -2 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local added = 1
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  added = 0
else
  local limit = tonumber(ARGV[2])
  if limit > 0 and redis.call('ZCARD', KEYS[1]) >= limit then return -1 end
end
redis.call('ZADD', KEYS[1], now + ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return added
