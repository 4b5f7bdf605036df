-- Start a content stream on a lease. KEYS: media, lease, streams, timers.
-- ARGV: lease_verifier, stream_id, idle_ms, max_streams, stale_ms, view_id.
local mkey, lkey, skey, timers = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local lease_vf, stream_id = ARGV[1], ARGV[2]
local idle_ms, max_streams, stale_ms = num(ARGV[3]), num(ARGV[4]), num(ARGV[5])
local now = now_ms()
local l = redis.call('HMGET', lkey, 'lv', 'wk', 'idle_until', 'max_until', 'bytes', 'budget',
  'dk', 'rid', 'rk')
if not l[1] or l[1] ~= lease_vf then return {'not-found'} end
if now >= num(l[3]) or now >= num(l[4]) then return {'ended'} end
if num(l[5]) >= num(l[6]) then return {'budget'} end
redis.call('ZREMRANGEBYSCORE', skey, '-inf', now - stale_ms)
if stream_id ~= '' then
  if redis.call('ZCARD', skey) >= max_streams then return {'busy'} end
  redis.call('ZADD', skey, now, stream_id)
  redis.call('PEXPIREAT', skey, num(l[4]) + 60000)
end
local idle_until = math.min(now + idle_ms, num(l[4]))
redis.call('HSET', lkey, 'idle_until', tostring(idle_until))
local view_id = ARGV[6]
redis.call('ZADD', timers, idle_until, 'ls:' .. view_id)
local m = redis.call('HMGET', mkey, 'obj', 'hdr', 'size', 'mime', 'state')
if m[5] ~= 'ready' then return {'ended'} end
return {'ok', l[2] or '', m[1], m[2], m[3], m[4], tostring(num(l[4]) - now), l[7] or '', l[8] or '',
  l[9] or ''}
