-- KEYS: media, rcpts, timers, objects. ARGV: rprefix, json spec.
local mkey, rcpts, timers, objects = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local rprefix = ARGV[1]
local spec = cjson.decode(ARGV[2])
if redis.call('EXISTS', mkey) == 1 then return {'exists'} end
local now = now_ms()
local expires = now + spec.expires_in * 1000
local hard = expires + spec.replay_window * 1000 + spec.lease_max * 1000
local processing_deadline = now + spec.processing_ms
local n = #spec.recipients
redis.call('HSET', mkey,
  'tenant', spec.tenant, 'sender', spec.sender, 'state', spec.state, 'kind', spec.kind,
  'views', tostring(spec.views), 'created', tostring(now), 'expires', tostring(expires),
  'rwin', tostring(spec.replay_window * 1000), 'hard', tostring(hard),
  'caption', spec.caption, 'capture', spec.capture, 'client_ref', spec.client_ref,
  'rauth', spec.recipient_auth, 'orig', spec.orig, 'orig_hdr', spec.orig_hdr,
  'orig_size', tostring(spec.orig_size), 'kek', spec.kek, 'epoch', tostring(spec.epoch),
  'n', tostring(n), 'done', '0', 'seq', '0', 'ver', '1', 'c:sent', tostring(n))
local ids = {}
for _, r in ipairs(spec.recipients) do
  local rkey = rprefix .. r.id
  redis.call('HSET', rkey, 'st', 'sent', 'vu', '0', 'vl', tostring(spec.views),
    'vf', r.vf, 'wk', r.wk, 'lease', '', 'done', '0', 'sc', '0')
  redis.call('PEXPIREAT', rkey, hard + spec.receipts_ttl * 1000)
  ids[#ids + 1] = r.id
  if #ids == 500 then  -- one RPUSH per batch; unpack() is bounded by Lua's stack
    redis.call('RPUSH', rcpts, unpack(ids))
    ids = {}
  end
end
if #ids > 0 then redis.call('RPUSH', rcpts, unpack(ids)) end
redis.call('ZADD', timers, expires, 'exp', hard, 'hard', processing_deadline, 'proc',
  now + spec.requeue_ms, 'job')
if spec.orig ~= '' then redis.call('SADD', objects, spec.orig) end
for _, k in ipairs({mkey, rcpts, timers, objects}) do
  redis.call('PEXPIREAT', k, hard + spec.receipts_ttl * 1000)
end
local due = schedule(mkey, timers)
return {'ok', tostring(now), tostring(expires), due[1], due[2]}
