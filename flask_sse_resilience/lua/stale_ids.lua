-- KEYS: one shard of the active index, and optionally its watch (the
-- guardian's). ARGV: stale_ms, limit, gap_ms, watch_ttl_ms, force.
-- Returns {in grace, ids whose heartbeat is older than stale_ms}.
-- With a watch, stamps it: a gap since the last stamp longer than gap_ms
-- restarts 'since', and the shard is in its grace (no ids) until one stale
-- threshold after it, unless forced. A missing watch (a new deployment, or
-- one whose guardian stopped long ago) is no gap.
local cutoff = now - tonumber(ARGV[1])
if KEYS[2] then
  local w = redis.call('HMGET', KEYS[2], 'at', 'since')
  local at, since = tonumber(w[1]), tonumber(w[2]) or 0
  if at and now - at > tonumber(ARGV[3]) then since = now end
  redis.call('HSET', KEYS[2], 'at', now, 'since', since)
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  if ARGV[5] ~= '1' and since >= cutoff then return {1, {}} end
end
return {0, redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. cutoff,
  'LIMIT', 0, ARGV[2])}
