-- KEYS: record, active index shard. ARGV: id.
-- Refreshes an active stream (1); an index entry whose record is gone or
-- ended is dropped instead (0).
if redis.call('HGET', KEYS[1], '${STATE}') ~= 'active' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
redis.call('HSET', KEYS[1], '${LAST_HEARTBEAT}', now)
redis.call('ZADD', KEYS[2], now, ARGV[1])
return 1
