-- The request holding a two-step upload's lock stored a part (or nothing): append it, advance
-- the offset, and, when the last byte has arrived, hand the media to processing in the same
-- step: the DEK re-wrapped under the epoch KEK replaces the upload-secret copy.
-- KEYS: media, ulock, parts, timers. ARGV: nonce, start offset, part ('object header size' or
-- ''), part size, kind (sniffed at offset 0), kek ('' unless completing), epoch, processing_ms,
-- requeue_ms, release ('1': drop the lock; '0': keep it, refreshed to lock_ms), lock_ms.
-- Returns {'lost'} | {'refused', uoff} | {'ok', uoff} | {'complete', due, ver}.
local mkey, lock, parts, timers = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local nonce, start, part, size, kind = ARGV[1], num(ARGV[2]), ARGV[3], num(ARGV[4]), ARGV[5]
local kek, epoch, processing_ms, requeue_ms = ARGV[6], ARGV[7], num(ARGV[8]), num(ARGV[9])
local release, lock_ms = ARGV[10] == '1', num(ARGV[11])
if redis.call('GET', lock) ~= nonce then return {'lost'} end
local m = redis.call('HMGET', mkey, 'state', 'uoff', 'usize', 'uexp', 'ukind', 'purging')
local uoff, usize = num(m[2]), num(m[3])
local now = now_ms()
if m[1] ~= 'awaiting_upload' or m[6] == '1' or uoff ~= start or now >= num(m[4]) then
  redis.call('DEL', lock)
  return {'refused', tostring(uoff)}
end
if size > 0 then
  redis.call('RPUSH', parts, part)
  local ttl = redis.call('PTTL', mkey)
  if ttl > 0 then redis.call('PEXPIRE', parts, ttl) end
  uoff = uoff + size
  redis.call('HSET', mkey, 'uoff', tostring(uoff))
  if start == 0 then redis.call('HSET', mkey, 'ukind', kind) end
end
if release or uoff == usize then
  redis.call('DEL', lock)
else
  redis.call('PEXPIRE', lock, lock_ms)
end
if uoff < usize or kek == '' then return {'ok', tostring(uoff)} end
-- The last byte is here. One part is the original as a one-step upload stores it; several
-- are read by the worker from the parts list, in order.
local orig, orig_hdr = '', ''
if redis.call('LLEN', parts) == 1 then
  local key, hdr = string.match(redis.call('LINDEX', parts, 0), '^(%S+) (%S+)')
  orig, orig_hdr = key, hdr
end
redis.call('HSET', mkey, 'state', 'processing', 'kind', m[5] or kind, 'kek', kek,
  'epoch', epoch, 'orig', orig, 'orig_hdr', orig_hdr, 'orig_size', tostring(usize),
  'udone', '1', 'uploaded_at', tostring(now))
redis.call('HDEL', mkey, 'uwk')
redis.call('ZREM', timers, 'upl')
redis.call('ZADD', timers, now + processing_ms, 'proc', now + requeue_ms, 'job')
bump(mkey)
local due = schedule(mkey, timers)
return {'complete', due[1], due[2]}
