-- KEYS: record, the stream's connections, the shard's abandon set.
-- ARGV: id, lease_ms.
-- Looks at a stream due for an abandon check: 1 if nobody has followed it
-- for its abandonMs (dropped from the set; the caller cancels it), else 0
-- and the next look is scheduled. A follower counts from its lease's last
-- renewal (its score is the expiry), or from when it left (followedAt).
local rec = redis.call('HMGET', KEYS[1], '${STATE}', '${ABANDON_MS}',
  '${FOLLOWED_AT}', '${STARTED_AT}', '${CANCEL}')
local wait = tonumber(rec[2]) or 0
if rec[1] ~= 'active' or rec[5] or wait <= 0 then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 0
end
local last = math.max(tonumber(rec[3]) or 0, tonumber(rec[4]))
local top = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if top[2] then
  local expiry = tonumber(top[2])
  if expiry > now then
    redis.call('ZADD', KEYS[3], now + wait, ARGV[1])
    return 0
  end
  last = math.max(last, expiry - tonumber(ARGV[2]))
end
if now - last < wait then
  redis.call('ZADD', KEYS[3], last + wait, ARGV[1])
  return 0
end
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
