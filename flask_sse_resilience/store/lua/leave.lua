-- KEYS: a stream's connections, its record. ARGV: lease.
-- Gives a connection's lease back from the stream and, for a stream that is
-- cancelled when abandoned, notes when a follower last left.
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('HEXISTS', KEYS[2], '${ABANDON_MS}') == 1 then
  redis.call('HSET', KEYS[2], '${FOLLOWED_AT}', now)
end
return 1
