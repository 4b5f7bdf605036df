-- A link-preview bot or a HEAD fetched the link: an unauthenticated hint, set once.
-- KEYS: media, recipient, timers, outbox. ARGV: rid.
local mkey, rkey, timers, outbox = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local rid = ARGV[1]
if redis.call('EXISTS', rkey) == 0 or redis.call('HEXISTS', rkey, 'lpa') == 1 then
  return {'same'}
end
local now = now_ms()
redis.call('HSET', rkey, 'lpa', tostring(now))
local r = redis.call('HMGET', rkey, 'st', 'vl')
emit(mkey, outbox, 'recipient.link_previewed', rid, r[1], num(r[2]), '', now)
return {'ok'}
