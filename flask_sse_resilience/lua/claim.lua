-- KEYS: record, active index shard. ARGV: id, token.
-- Gives the write lease to this producer and refreshes the heartbeat.
-- Returns the current seq (>= 0), -1 when the stream has ended, -2 when it
-- does not exist.
local state = redis.call('HGET', KEYS[1], '${STATE}')
if not state then return -2 end
if state ~= 'active' then return -1 end
redis.call('HSET', KEYS[1], '${PRODUCER}', ARGV[2], '${LAST_HEARTBEAT}', now)
redis.call('ZADD', KEYS[2], now, ARGV[1])
return tonumber(redis.call('HGET', KEYS[1], '${SEQ}'))
