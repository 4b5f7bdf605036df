-- The worker's output is stored: publish it, unless the media was unsent meanwhile.
-- KEYS: media, timers, outbox. ARGV: json {obj, hdr, size, mime, kind, width, height, duration}.
local mkey, timers, outbox = KEYS[1], KEYS[2], KEYS[3]
local out = cjson.decode(ARGV[1])
if redis.call('HGET', mkey, 'state') ~= 'processing' then return {'refused'} end
-- A purge has begun (it may already have listed the objects): the output must not be published.
if redis.call('HGET', mkey, 'purging') == '1' then return {'refused'} end
local now = now_ms()
redis.call('HSET', mkey, 'state', 'ready', 'obj', out.obj, 'hdr', out.hdr,
  'size', tostring(out.size), 'mime', out.mime, 'kind', out.kind,
  'width', tostring(out.width), 'height', tostring(out.height), 'duration', out.duration,
  'ready_at', tostring(now))
redis.call('HDEL', mkey, 'kek', 'epoch')
redis.call('ZREM', timers, 'proc', 'job')
emit(mkey, outbox, 'media.ready', '', 'ready', '', '', now)
local due = schedule(mkey, timers)
return {'ok', due[1], due[2]}
