-- KEYS: record, the shard's cancelling set. ARGV: request ({"reason", "by"}),
-- control channel, id, stale_ms.
-- Asks an active stream to stop: the request is kept in the record (the
-- first one wins) and sent to its producer's process.
-- Returns {1 asked now | 0 asked before, 1 if its producer looks dead}, or
-- {-1, state} when it has ended, {-2} when it does not exist.
local rec = redis.call('HMGET', KEYS[1], '${STATE}', '${CANCEL}', '${LAST_HEARTBEAT}')
if not rec[1] then return {-2} end
if rec[1] ~= 'active' then return {-1, rec[1]} end
local request = rec[2]
if not request then
  request = ARGV[1]
  redis.call('HSET', KEYS[1], '${CANCEL}', request, '${CANCEL_AT}', now)
  redis.call('ZADD', KEYS[2], now, ARGV[3])
end
redis.call(${PUBLISH}, ARGV[2], request)
local dead = 0
if now - tonumber(rec[3]) > tonumber(ARGV[4]) then dead = 1 end
return {rec[2] and 0 or 1, dead}
