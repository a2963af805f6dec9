-- KEYS: record, active index shard. ARGV: id, channel.
-- Refreshes an active stream: 1, or 2 when a cancel was asked for (the
-- producer's slow path to the request). An index entry whose record is gone
-- or ended is dropped instead: 0, or 2 if it ended cancelled. Dropping a
-- gone record's entry tells its followers it is over, as check does (the
-- guardian will not see it again); each worker then says whether it expired.
local rec = redis.call('HMGET', KEYS[1], '${STATE}', '${CANCEL}')
if rec[1] ~= 'active' then
  local indexed = redis.call('ZREM', KEYS[2], ARGV[1])
  if rec[1] == 'cancelled' then return 2 end
  if not rec[1] and indexed == 1 then
    redis.call(${PUBLISH}, ARGV[2], '\n0\nfailed\n{"reason":"expired"}')
  end
  return 0
end
redis.call('HSET', KEYS[1], '${LAST_HEARTBEAT}', now)
redis.call('ZADD', KEYS[2], now, ARGV[1])
if rec[2] then return 2 end
return 1
