-- KEYS: record, log. ARGV: token, seq of the first event, count, ending,
-- maxlen, channel, then the type and the data of each event.
-- Logs events seq .. seq + count - 1 (one entry each) and announces them in
-- one message: {1, last id}, or a status of check (a retried batch is
-- acknowledged whole: a batch is written all or nothing). Once a cancel was
-- asked for, only a producer that is ending the stream 'cancelled' (ending)
-- still writes what it had sent before.
local ending = ARGV[4]
${CHECK}
local count = tonumber(ARGV[3])
local parts = {}
local id
for i = 0, count - 1 do
  local etype, data = ARGV[7 + 2 * i], ARGV[8 + 2 * i]
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*',
    '${E_SEQ}', seq + i, '${E_TYPE}', etype, '${E_DATA}', data)
  parts[i + 1] = id .. '\n' .. (seq + i) .. '\n' .. etype .. '\n' .. data
end
redis.call('HSET', KEYS[1], '${SEQ}', seq + count - 1, '${LAST_EVENT_ID}', id)
-- The log expires with the record, whose TTL is fixed while it is active:
-- set on the first event and again every 64 (a log a failover re-created).
local step = (seq - 1) % 64
if step == 0 or step + count > 64 then
  redis.call('PEXPIRE', KEYS[2], redis.call('PTTL', KEYS[1]))
end
redis.call(${PUBLISH}, ARGV[6], table.concat(parts, '\n'))
return {1, id}
