-- A screenshot, screen recording or abuse report, told on a lease: accepted until 10 minutes
-- after the lease ends, one event per lease and kind. KEYS: media, lease, timers, outbox.
-- ARGV: lease_verifier, rprefix, kind ('screenshot' | 'recording' | 'report'), grace_ms, note.
local mkey, lkey, timers, outbox = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local lease_vf, rprefix, kind, grace_ms, note = ARGV[1], ARGV[2], ARGV[3], num(ARGV[4]), ARGV[5]
local l = redis.call('HMGET', lkey, 'lv', 'rid', 'idle_until', 'max_until', 'ended_at')
if not l[1] or l[1] ~= lease_vf then return {'not-found'} end
local now = now_ms()
local ended = num(l[5])
if ended == 0 then ended = math.min(num(l[3]), num(l[4])) end
if now > ended + grace_ms then return {'too-late'} end
if redis.call('HSETNX', lkey, 'noted:' .. kind, tostring(now)) == 0 then return {'duplicate'} end
local rid = l[2]
local rkey = rprefix .. rid
local r = redis.call('HMGET', rkey, 'st', 'vl')
if kind == 'report' then
  redis.call('HSET', rkey, 'rpa', tostring(now))
  emit(mkey, outbox, 'recipient.reported', rid, r[1], num(r[2]), '', now, note)
else
  local count = redis.call('HINCRBY', rkey, 'sc', 1)
  if count == 1 then
    redis.call('HSET', rkey, 'fss', tostring(now))
    redis.call('HINCRBY', mkey, 'c:screenshot', 1)
  end
  redis.call('HSET', rkey, 'lss', tostring(now))
  emit(mkey, outbox, 'recipient.screenshot', rid, r[1], num(r[2]), '', now, kind)
end
return {'ok'}
