-- Keep a lease alive and account bytes sent. KEYS: lease, streams, timers.
-- ARGV: lease_verifier, stream_id ('' = keepalive), bytes_delta, idle_ms, release (0/1),
-- view_id.
local lkey, skey, timers = KEYS[1], KEYS[2], KEYS[3]
local lease_vf, stream_id, delta = ARGV[1], ARGV[2], num(ARGV[3])
local idle_ms, release = num(ARGV[4]), ARGV[5] == '1'
local now = now_ms()
local l = redis.call('HMGET', lkey, 'lv', 'idle_until', 'max_until', 'bytes', 'budget')
if not l[1] or l[1] ~= lease_vf then return {'ended'} end
if now >= num(l[2]) or now >= num(l[3]) then return {'ended'} end
local used = redis.call('HINCRBY', lkey, 'bytes', delta)
local idle_until = math.min(now + idle_ms, num(l[3]))
redis.call('HSET', lkey, 'idle_until', tostring(idle_until))
local view_id = ARGV[6]
redis.call('ZADD', timers, idle_until, 'ls:' .. view_id)
if stream_id ~= '' then
  if release then redis.call('ZREM', skey, stream_id) else redis.call('ZADD', skey, now, stream_id) end
end
if used > num(l[5]) then return {'budget'} end
return {'ok', tostring(idle_until - now), tostring(num(l[3]) - now)}
