-- KEYS: record, snapshot. ARGV: token, seq, data.
-- Stores the producer's snapshot of the stream as of event seq, which must be
-- the last one logged: {1, its id}, or a status: -1 ended, -2 missing,
-- -3 another producer's lease, -4 the log is elsewhere ({-4, logged seq}).
-- It lives as long as the record and goes with the terminal event.
local rec = redis.call('HMGET', KEYS[1], '${STATE}', '${PRODUCER}', '${SEQ}',
  '${LAST_EVENT_ID}')
if not rec[1] then return {-2} end
if rec[1] ~= 'active' then return {-1} end
if rec[2] ~= ARGV[1] then return {-3} end
if tonumber(rec[3]) ~= tonumber(ARGV[2]) then return {-4, rec[3]} end
local id = rec[4] or ''
local value = ARGV[2] .. '\n' .. id .. '\n' .. ARGV[3]
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('SET', KEYS[2], value, 'PX', ttl)
else
  redis.call('SET', KEYS[2], value)
end
redis.call('HSET', KEYS[1], '${SNAPSHOT_ID}', id)
return {1, id}
