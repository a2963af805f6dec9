-- The terminal write: the terminal event, the completion, the record's
-- state, the removal from the active index (and the shard's cancelling and
-- abandon sets) and the expiry of every key of the stream, all or nothing.
-- KEYS: record, log, completion, active index shard, cancelling set,
--       abandon set, snapshot (and, for the guardian, the shard's watch,
--       unless forced).
-- ARGV: token ('' for the guardian), seq, type, data, maxlen, channel,
--       completion_ttl_ms, stale_ms, state, stream id, cancel grace ms,
--       the request a producer's own cancel stands for.
-- A stream with a cancel request ends 'cancelled' whoever ends it: its data
-- is the request ({"reason", "by"}), plus the producer's partial result.
-- Returns {1, id, user, state}, or a status of check.
local ending = ARGV[9]
${CHECK}
local state, etype, data = ARGV[9], ARGV[3], ARGV[4]
if state == 'cancelled' or (ARGV[1] == '' and rec[7]) then
  local request = rec[7] or ARGV[12]
  state, etype = 'cancelled', 'cancelled'
  if ARGV[1] ~= '' and data ~= 'null' then
    data = string.sub(request, 1, -2) .. ',"partial":' .. data .. '}'
  else
    data = request
  end
end
local ttl = rec[10] or ARGV[7]
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*',
  '${E_SEQ}', seq, '${E_TYPE}', etype, '${E_DATA}', data)
redis.call('HSET', KEYS[1], '${SEQ}', seq, '${LAST_EVENT_ID}', id,
  '${STATE}', state, '${ENDED_AT}', now)
-- Ended without its producer: the lease goes, so none of its writes (even
-- one numbered like the end) passes for a retry of its own.
if ARGV[1] == '' then redis.call('HSET', KEYS[1], '${PRODUCER}', '') end
redis.call('DEL', KEYS[3], KEYS[7])  -- a late joiner now needs only the end
redis.call('HSET', KEYS[3], '${C_STREAM_ID}', ARGV[10],
  '${TERMINAL_EVENT_TYPE}', etype, '${TERMINAL_EVENT_DATA}', data,
  '${COMPLETED_AT}', now, '${EVENT_ID}', id, '${C_USER_ID}', rec[5])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
for i = 4, 6 do redis.call('ZREM', KEYS[i], ARGV[10]) end
redis.call(${PUBLISH}, ARGV[6], id .. '\n' .. seq .. '\n' .. etype .. '\n' .. data)
return {1, id, rec[5], state}
