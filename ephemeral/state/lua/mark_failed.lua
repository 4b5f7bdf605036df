-- Processing failed for good: every member becomes failed; the content is purged.
-- KEYS: media, rcpts, timers, outbox, objects. ARGV: rprefix, lprefix, error code, detail.
local mkey, rcpts, timers, outbox = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local rprefix, lprefix, code, detail = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local state = redis.call('HGET', mkey, 'state')
if state ~= 'processing' and state ~= 'awaiting_upload' then return {'refused'} end
local now = now_ms()
for _, rid in ipairs(redis.call('LRANGE', rcpts, 0, -1)) do
  local rkey = rprefix .. rid
  if not TERMINAL[redis.call('HGET', rkey, 'st')] then
    set_status(mkey, rkey, 'failed')
    redis.call('HSET', rkey, 'vl', '0')
  end
  maybe_done(mkey, rkey, lprefix, now)
end
redis.call('HSET', mkey, 'state', 'failed', 'error', code, 'error_detail', detail,
  'failed_at', tostring(now))
redis.call('HDEL', mkey, 'kek', 'epoch', 'uwk')
redis.call('ZREM', timers, 'proc', 'job')
emit(mkey, outbox, 'media.failed', '', 'failed', 0, '', now)
local due = schedule(mkey, timers)
return {'ok', due[1], due[2]}
