-- KEYS: the guardian's leader lock. ARGV: token, ttl_ms.
-- 1 if this token leads (lock taken or renewed), else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
