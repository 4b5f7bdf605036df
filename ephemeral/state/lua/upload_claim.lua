-- A request on a two-step upload URL: check the secret and the upload's state, then (PUT,
-- PATCH) take the upload's lock and record the blob it will write before any byte is stored.
-- KEYS: media, ulock, objects. ARGV: verifier, nonce, lock_ms, mode (head|put|patch|delete),
-- offset (patch), object key ('' = none).
-- Returns {'not-found'} | {'closed', state, error} | {'expired'} | {'used'} | {'busy'} |
-- {'offset', uoff} | {'ok', uoff, usize, uexp, uwk, busy}.
local mkey, lock, objects = KEYS[1], KEYS[2], KEYS[3]
local verifier, nonce, lock_ms, mode = ARGV[1], ARGV[2], num(ARGV[3]), ARGV[4]
local offset, object_key = num(ARGV[5]), ARGV[6]
local m = redis.call('HMGET', mkey, 'uvf', 'state', 'uexp', 'uoff', 'usize', 'uwk', 'udone',
  'error', 'purging')
if not m[1] or m[1] ~= verifier then return {'not-found'} end
local uoff, usize = num(m[4]), num(m[5])
if m[7] == '1' then
  -- Complete: tus clients may still ask for the offset; nothing may be written again.
  if mode == 'head' then return {'ok', tostring(uoff), tostring(usize), m[3], '', '0'} end
  return {'used'}
end
-- A purge that has begun (every recipient revoked) owns the media: its state still reads
-- awaiting_upload until purge_finish, but its keys are going and nothing may be written.
if m[2] ~= 'awaiting_upload' or m[9] == '1' then return {'closed', m[2] or '', m[8] or ''} end
local now = now_ms()
if now >= num(m[3]) then return {'expired'} end
local holder = redis.call('GET', lock)
local busy = holder and holder ~= nonce
if mode == 'head' then
  return {'ok', tostring(uoff), tostring(usize), m[3], '', busy and '1' or '0'}
end
if mode == 'put' and (uoff > 0 or busy) then return {'used'} end
if busy then return {'busy'} end
if mode == 'patch' and offset ~= uoff then return {'offset', tostring(uoff)} end
redis.call('SET', lock, nonce, 'PX', lock_ms)
if object_key ~= '' then
  -- Recorded before the write, with the record's lifetime, so purge always finds the blob.
  redis.call('SADD', objects, object_key)
  local ttl = redis.call('PTTL', mkey)
  if ttl > 0 then redis.call('PEXPIRE', objects, ttl) end
end
return {'ok', tostring(uoff), tostring(usize), m[3], m[6] or '', '0'}
