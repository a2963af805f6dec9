-- The checks shared by append and finish (not a script by itself).
-- Statuses: 1 written, 0 already written (a retry: {0, id, user}),
-- -1 ended, -2 missing, -3 another producer holds the lease,
-- -4 out of order ({-4, logged seq}), -5 (guardian) no longer stale,
-- -6 cancelled ({-6, request}): a cancel was asked for, so only an end as
-- 'cancelled' is still written, or the stream ended cancelled.
-- The including script sets `ending`: the state a finish writes, or '' for
-- an append. A producer passes its token; the guardian passes none and ends
-- only a stream that is still active and either still stale or fenced (a
-- cancel asked for longer than the grace ago), dropping from the active
-- index what is gone or ended, and telling followers of a vanished stream
-- it is over.
local rec = redis.call('HMGET', KEYS[1], '${STATE}', '${PRODUCER}', '${SEQ}',
  '${LAST_EVENT_ID}', '${USER_ID}', '${LAST_HEARTBEAT}', '${CANCEL}',
  '${CANCEL_AT}', '${MAX_EVENTS}', '${COMPLETION_TTL}')
local seq = tonumber(ARGV[2])
local maxlen = rec[9] or ARGV[5]
if ARGV[1] == '' then
  if not rec[1] or rec[1] ~= 'active' then  -- gone or ended: out of the sets
    local indexed = redis.call('ZREM', KEYS[4], ARGV[10])
    for i = 5, 6 do redis.call('ZREM', KEYS[i], ARGV[10]) end
    if rec[1] then return {-1} end
    if indexed == 1 then
      redis.call(${PUBLISH}, ARGV[6], '\n0\nfailed\n{"reason":"expired"}')
    end
    return {-2}
  end
  local fenced = rec[8] and now - tonumber(rec[8]) >= tonumber(ARGV[11])
  if not fenced then
    local beat = tonumber(rec[6])
    if KEYS[8] then  -- the shard's watch: a heartbeat is no older than its grace
      beat = math.max(beat, tonumber(redis.call('HGET', KEYS[8], 'since') or 0))
    end
    if now - beat <= tonumber(ARGV[8]) then return {-5} end
  end
  seq = tonumber(rec[3]) + 1
else
  if not rec[1] then return {-2} end
  local cur = tonumber(rec[3])
  if rec[2] ~= ARGV[1] then  -- another producer's lease, or the guardian's end
    if rec[1] == 'cancelled' then return {-6, rec[7] or ''} end
    if rec[1] ~= 'active' then return {-1} end
    return {-3}
  end
  if seq <= cur then return {0, rec[4], rec[5]} end
  if rec[1] == 'cancelled' or (rec[7] and ending ~= 'cancelled') then
    return {-6, rec[7] or ''}
  end
  if rec[1] ~= 'active' then return {-1} end
  if seq ~= cur + 1 then return {-4, cur} end
end
