-- KEYS: record, active index shard. ARGV: id, type, user, metadata, ttl_ms.
-- Returns the start time, or 0 if the id is taken (nothing written).
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], '${STREAM_ID}', ARGV[1], '${STREAM_TYPE}', ARGV[2],
  '${USER_ID}', ARGV[3], '${METADATA}', ARGV[4], '${STATE}', 'active',
  '${STARTED_AT}', now, '${LAST_HEARTBEAT}', now, '${SEQ}', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], now, ARGV[1])
return now
