-- Remove one member from the group: no more views, their lease ends now. Repeatable.
-- KEYS: media, recipient, timers, outbox. ARGV: rid, lprefix.
local mkey, rkey, timers, outbox = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local rid, lprefix = ARGV[1], ARGV[2]
if redis.call('EXISTS', rkey) == 0 then return {'not-found'} end
local now = now_ms()
local r = redis.call('HMGET', rkey, 'st', 'vl', 'lease')
local changed = false
end_lease(mkey, rkey, timers, lprefix, r[3])
if r[1] == 'sent' or r[1] == 'delivered' then
  set_status(mkey, rkey, 'revoked')
  redis.call('HSET', rkey, 'vl', '0', 'vat', tostring(now), 'vr', 'removed')
  changed = true
elseif not TERMINAL[r[1]] and (num(r[2]) > 0 or (r[3] and r[3] ~= '')) then
  redis.call('HSET', rkey, 'vl', '0', 'vat', tostring(now), 'vr', 'removed')
  redis.call('ZREM', timers, 'rp:' .. rid)
  changed = true
end
if changed then
  emit(mkey, outbox, 'recipient.revoked', rid, redis.call('HGET', rkey, 'st'), 0, '', now)
end
maybe_done(mkey, rkey, lprefix, now)
local due = schedule(mkey, timers)
return {'ok', all_done(mkey) and '1' or '0', due[1], due[2]}
