-- Exactly-once redemption. KEYS: media, recipient, timers, outbox.
-- ARGV: verifier, sub, rid, lprefix, view_id, lease_verifier, lease_wk, redeem_id, device,
--       lease_idle_ms, lease_floor_ms, lease_factor, budget_factor.
-- lease_wk is the recipient's wrap key wrapped under the lease key; the lease row keeps it
-- ('rk') beside a copy of the recipient's wrapped DEK ('dk'), so the caller needs no read of
-- its own before this script: the lease opens the wrap key, the wrap key opens the DEK. (Rows
-- written before this format hold the DEK under the lease key in 'wk'.)
local mkey, rkey, timers, outbox = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local verifier, sub, rid, lprefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local view_id, lease_vf, lease_wk, redeem_id, device = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local idle_ms, floor_ms, factor, budget_factor =
  num(ARGV[10]), num(ARGV[11]), num(ARGV[12]), num(ARGV[13])

local vf = redis.call('HGET', rkey, 'vf')
if not vf or vf ~= verifier then return {'not-found'} end
if sub ~= '' and sub ~= rid then return {'forbidden'} end
local m = redis.call('HMGET', mkey, 'state', 'rauth', 'size', 'duration')
if m[2] == 'account' and sub == '' then return {'unauthorized'} end
local now = now_ms()

-- A retried redeem (same redeem_id) while its lease lives gets the same view back.
local r0 = redis.call('HMGET', rkey, 'lease', 'lrid')
if redeem_id ~= '' and r0[2] == redeem_id and r0[1] ~= '' and lease_live(lprefix .. r0[1], now) then
  return {'replayed', r0[1]}
end

settle(mkey, rkey, rid, outbox, timers, lprefix, now)
local r = redis.call('HMGET', rkey, 'st', 'vl', 'vu', 'oat', 'rxp')
local st, vl, vu = r[1], num(r[2]), num(r[3])
if st == 'revoked' or m[1] == 'revoked' then return {'revoked'} end
if st == 'expired' then return {'expired'} end
if st == 'failed' or m[1] == 'failed' then return {'media-failed'} end
if vl == 0 or m[1] == 'purged' then
  if vu > 0 and r[5] and r[5] ~= '' and now >= num(r[5]) and vu < num(redis.call('HGET', mkey, 'views')) then
    return {'expired'}
  end
  return {'already-viewed', r[4] or ''}
end
if m[1] ~= 'ready' then return {'media-processing'} end
local dk = redis.call('HGET', rkey, 'wk')
if not dk then return {'already-viewed', r[4] or ''} end

vl = vl - 1
vu = vu + 1
redis.call('HSET', rkey, 'vl', tostring(vl), 'vu', tostring(vu))
local etype, status
if vu == 1 then
  status, etype = 'opened', 'recipient.opened'
  redis.call('HSET', rkey, 'oat', tostring(now))
  if vl > 0 then
    local rxp = now + num(redis.call('HGET', mkey, 'rwin'))
    redis.call('HSET', rkey, 'rxp', tostring(rxp))
    redis.call('ZADD', timers, rxp, 'rp:' .. rid)
  end
else
  status, etype = 'replayed', 'recipient.replayed'
  redis.call('HSET', rkey, 'rat', tostring(now))
  if vl == 0 then redis.call('ZREM', timers, 'rp:' .. rid) end
end
set_status(mkey, rkey, status)
if vl == 0 then redis.call('HDEL', rkey, 'wk') end

-- One live lease per recipient: a replay ends the previous one.
end_lease(mkey, rkey, timers, lprefix, r0[1])
local size = num(m[3])
local max_ms = math.max(floor_ms, math.floor(factor * num(m[4]) * 1000))
local lkey = lprefix .. view_id
redis.call('HSET', lkey, 'rid', rid, 'lv', lease_vf, 'rk', lease_wk, 'dk', dk,
  'idle_until', tostring(now + idle_ms), 'max_until', tostring(now + max_ms),
  'bytes', '0', 'budget', tostring(budget_factor * size), 'started', tostring(now))
redis.call('PEXPIREAT', lkey, now + max_ms + 660000)  -- + the 10-minute report window
redis.call('ZADD', timers, now + math.min(idle_ms, max_ms), 'ls:' .. view_id)
redis.call('HSET', rkey, 'lease', view_id, 'lrid', redeem_id)
-- Every view id of the recipient (at most `views`), so an erasure finds ended leases too.
redis.call('HSET', rkey, 'vids', (redis.call('HGET', rkey, 'vids') or '') .. view_id .. ' ')
emit(mkey, outbox, etype, rid, status, vl, device, now)
local due = schedule(mkey, timers)
local shown = redis.call('HMGET', mkey, 'kind', 'mime', 'size', 'width', 'height', 'duration',
  'caption', 'capture')
local out = {'ok', view_id, tostring(vl), tostring(max_ms), due[1], due[2]}
for i = 1, 8 do out[6 + i] = shown[i] or '' end
out[15] = dk
return out
