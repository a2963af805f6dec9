-- KEYS: record, log. ARGV: token, seq, type, data, maxlen, channel.
-- Logs event number seq and announces it: {1, id}, or a status of check.
local ending = ''
${CHECK}
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*',
  '${E_SEQ}', seq, '${E_TYPE}', ARGV[3], '${E_DATA}', ARGV[4])
redis.call('HSET', KEYS[1], '${SEQ}', seq, '${LAST_EVENT_ID}', id)
redis.call('PEXPIRE', KEYS[2], redis.call('PTTL', KEYS[1]))
redis.call(${PUBLISH}, ARGV[6], id .. '\n' .. seq .. '\n' .. ARGV[3] .. '\n' .. ARGV[4])
return {1, id}
