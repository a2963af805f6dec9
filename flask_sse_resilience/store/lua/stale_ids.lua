-- KEYS: one shard of the active index, its cancelling and abandon sets, and
-- optionally its watch (the guardian's).
-- ARGV: stale_ms, limit, gap_ms, watch_ttl_ms, force, cancel grace ms.
-- Returns {in grace, ids whose heartbeat is older than stale_ms, ids whose
-- cancel request is older than the grace, ids due for an abandon check}.
-- With a watch, stamps it: a gap since the last stamp longer than gap_ms
-- restarts 'since', and the shard is in its grace (no stale or abandoned
-- ids: its producers could not heartbeat, nor its followers renew their
-- leases) until one stale threshold after it, unless forced. A missing watch
-- (a new deployment, or one whose guardian stopped long ago) is no gap.
local cutoff = now - tonumber(ARGV[1])
local limit = ARGV[2]
local fence = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - ARGV[6],
  'LIMIT', 0, limit)
if KEYS[4] then
  local w = redis.call('HMGET', KEYS[4], 'at', 'since')
  local at, since = tonumber(w[1]), tonumber(w[2]) or 0
  if at and now - at > tonumber(ARGV[3]) then since = now end
  redis.call('HSET', KEYS[4], 'at', now, 'since', since)
  redis.call('PEXPIRE', KEYS[4], ARGV[4])
  if ARGV[5] ~= '1' and since >= cutoff then return {1, {}, fence, {}} end
end
return {0,
  redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. cutoff, 'LIMIT', 0, limit),
  fence,
  redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, limit)}
