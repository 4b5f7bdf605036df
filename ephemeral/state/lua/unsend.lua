-- Unsend: revoke every token with views left and end every live lease. Repeatable.
-- KEYS: media, rcpts, timers, outbox, objects. ARGV: rprefix, lprefix.
local mkey, rcpts, timers, outbox = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local rprefix, lprefix = ARGV[1], ARGV[2]
if redis.call('EXISTS', mkey) == 0 then return {'gone'} end
local state = redis.call('HGET', mkey, 'state')
if state == 'revoked' or state == 'failed' or state == 'purged' then return {'ok', '0', '', ''} end
local now = now_ms()
for _, rid in ipairs(redis.call('LRANGE', rcpts, 0, -1)) do
  local rkey = rprefix .. rid
  local r = redis.call('HMGET', rkey, 'st', 'vl', 'lease')
  end_lease(mkey, rkey, timers, lprefix, r[3])
  if r[1] == 'sent' or r[1] == 'delivered' then
    set_status(mkey, rkey, 'revoked')
    redis.call('HSET', rkey, 'vl', '0', 'vat', tostring(now), 'vr', 'unsent')
    emit(mkey, outbox, 'recipient.revoked', rid, 'revoked', 0, '', now)
  elseif not TERMINAL[r[1]] and (num(r[2]) > 0 or (r[3] and r[3] ~= '')) then
    redis.call('HSET', rkey, 'vl', '0', 'vat', tostring(now), 'vr', 'unsent')
    redis.call('ZREM', timers, 'rp:' .. rid)
    emit(mkey, outbox, 'recipient.revoked', rid, r[1], 0, '', now)
  end
  maybe_done(mkey, rkey, lprefix, now)
end
redis.call('HSET', mkey, 'state', 'revoked', 'revoked_at', tostring(now))
redis.call('HDEL', mkey, 'kek', 'epoch', 'uwk')
emit(mkey, outbox, 'media.revoked', '', 'revoked', 0, '', now)
local due = schedule(mkey, timers)
return {'ok', '1', due[1], due[2]}
