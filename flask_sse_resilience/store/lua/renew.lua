-- KEYS: a capped set (see capped_add). ARGV: member, ttl_ms.
-- Renews only a member that is still there (XX), so one given back stays
-- given back; drops expired members.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], 'XX', now + ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
