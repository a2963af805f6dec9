-- The terminal write: the terminal event, the completion, the record's
-- state, the removal from the active index and the expiry of every key of
-- the stream, all or nothing.
-- KEYS: record, log, completion, active index shard (and, for the guardian,
--       the shard's watch, unless forced).
-- ARGV: token ('' for the guardian), seq, type, data, maxlen, channel,
--       completion_ttl_ms, stale_ms, state, stream id.
-- Returns {1, id, user}, or a status of check.
${CHECK}
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*',
  '${E_SEQ}', seq, '${E_TYPE}', ARGV[3], '${E_DATA}', ARGV[4])
redis.call('HSET', KEYS[1], '${SEQ}', seq, '${LAST_EVENT_ID}', id,
  '${STATE}', ARGV[9], '${ENDED_AT}', now)
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], '${C_STREAM_ID}', ARGV[10],
  '${TERMINAL_EVENT_TYPE}', ARGV[3], '${TERMINAL_EVENT_DATA}', ARGV[4],
  '${COMPLETED_AT}', now, '${EVENT_ID}', id, '${C_USER_ID}', rec[5])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[7]) end
redis.call('ZREM', KEYS[4], ARGV[10])
redis.call(${PUBLISH}, ARGV[6], id .. '\n' .. seq .. '\n' .. ARGV[3] .. '\n' .. ARGV[4])
return {1, id, rec[5]}
