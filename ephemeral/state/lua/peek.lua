-- KEYS: media, recipient, timers, outbox. ARGV: verifier, jwt sub ('' = none), rid, lprefix.
local mkey, rkey, timers, outbox = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local verifier, sub, rid, lprefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local vf = redis.call('HGET', rkey, 'vf')
if not vf or vf ~= verifier then return {'not-found'} end
if sub ~= '' and sub ~= rid then return {'forbidden'} end
local m = redis.call('HMGET', mkey, 'state', 'kind', 'duration', 'rauth', 'expires', 'capture')
if m[4] == 'account' and sub == '' then return {'unauthorized'} end
local now = now_ms()
settle(mkey, rkey, rid, outbox, timers, lprefix, now)
local r = redis.call('HMGET', rkey, 'st', 'vl', 'rxp')
local st, vl = r[1], num(r[2])
local state
if TERMINAL[st] then
  state = st
elseif m[1] == 'failed' then
  state = 'failed'
elseif m[1] == 'revoked' then
  state = 'revoked'
elseif vl == 0 or m[1] == 'purged' then
  state = 'viewed'
elseif m[1] == 'processing' or m[1] == 'awaiting_upload' then
  state = 'processing'
else
  state = 'ready'
end
if st == 'sent' and (state == 'ready' or state == 'processing') then
  set_status(mkey, rkey, 'delivered')
  redis.call('HSET', rkey, 'dat', tostring(now))
  emit(mkey, outbox, 'recipient.delivered', rid, 'delivered', vl, '', now)
end
local deadline = 0
if st == 'sent' or st == 'delivered' then deadline = num(m[5])
elseif vl > 0 and r[3] and r[3] ~= '' then deadline = num(r[3]) end
local expires_in = ''
if deadline > 0 and state ~= 'viewed' and not TERMINAL[state] then
  expires_in = tostring(math.max(0, math.floor((deadline - now) / 1000)))
end
if state ~= 'ready' and state ~= 'processing' then vl = 0 end
return {'ok', state, m[2] or '', tostring(vl), m[3] or '', expires_in, m[4] or 'link', m[6] or 'notify'}
