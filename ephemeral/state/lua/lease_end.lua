-- The viewer closed: end the lease now. KEYS: media, lease, timers. ARGV: lease_verifier,
-- rprefix, lprefix, view_id.
local mkey, lkey, timers = KEYS[1], KEYS[2], KEYS[3]
local lease_vf, rprefix, lprefix, view_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local l = redis.call('HMGET', lkey, 'lv', 'rid')
if not l[1] or l[1] ~= lease_vf then return {'not-found'} end
local rkey = rprefix .. l[2]
local now = now_ms()
end_lease(mkey, rkey, timers, lprefix, view_id)
maybe_done(mkey, rkey, lprefix, now)
local due = schedule(mkey, timers)
return {'ok', all_done(mkey) and '1' or '0', due[1], due[2]}
