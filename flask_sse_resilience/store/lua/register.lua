-- KEYS: record, active index shard, the shard's abandon set; for a keyed
--       stream, its key pointer and the record of the stream the caller
--       expects the pointer to name (if any).
-- ARGV: id, type, user, metadata, ttl_ms, key, expected id, max_events,
--       completion_ttl_ms, abandon_ms ('' where the settings apply), and how
--       long the key's pointer lives (the stream's ttl plus its end's).
-- Returns {start time}, {0} if the id is taken, or {-7, id, state} if the key
-- names another stream: its state when it is the expected one and active,
-- '' when the pointer moved (ask again, expecting it). Nothing is written
-- then.
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
if ARGV[6] ~= '' then
  local current = redis.call('GET', KEYS[4])
  if current then
    if current ~= ARGV[7] then return {-7, current, ''} end
    if redis.call('HGET', KEYS[5], '${STATE}') == 'active' then
      return {-7, current, 'active'}
    end
  end
end
redis.call('HSET', KEYS[1], '${STREAM_ID}', ARGV[1], '${STREAM_TYPE}', ARGV[2],
  '${USER_ID}', ARGV[3], '${METADATA}', ARGV[4], '${STATE}', 'active',
  '${STARTED_AT}', now, '${LAST_HEARTBEAT}', now, '${SEQ}', 0)
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[1], '${KEY}', ARGV[6])
  redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[11])
end
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], '${MAX_EVENTS}', ARGV[8]) end
if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], '${COMPLETION_TTL}', ARGV[9]) end
if ARGV[10] ~= '' then
  redis.call('HSET', KEYS[1], '${ABANDON_MS}', ARGV[10])
  redis.call('ZADD', KEYS[3], now + ARGV[10], ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], now, ARGV[1])
return {now}
