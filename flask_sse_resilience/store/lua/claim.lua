-- KEYS: record, active index shard. ARGV: id, token.
-- Gives the write lease to this producer and refreshes the heartbeat.
-- Returns {current seq, pending cancel request or false}, or a status: -1
-- when the stream has ended, -2 when it does not exist, -6 when it ended
-- cancelled.
local rec = redis.call('HMGET', KEYS[1], '${STATE}', '${SEQ}', '${CANCEL}')
if not rec[1] then return -2 end
if rec[1] == 'cancelled' then return -6 end
if rec[1] ~= 'active' then return -1 end
redis.call('HSET', KEYS[1], '${PRODUCER}', ARGV[2], '${LAST_HEARTBEAT}', now)
redis.call('ZADD', KEYS[2], now, ARGV[1])
return {tonumber(rec[2]), rec[3]}
