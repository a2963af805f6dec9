-- KEYS: sweep count, last sweep. ARGV: worker, orphaned, pruned, ms.
-- Counts a sweep and records what it did; returns its number.
local n = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], 'at', now, 'worker', ARGV[1], 'orphaned', ARGV[2],
  'pruned', ARGV[3], 'ms', ARGV[4], 'sweep', n)
return n
