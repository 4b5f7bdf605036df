-- Every blob is confirmed gone: record the purge and shorten every key to receipts_ttl.
-- KEYS: media, rcpts, timers, outbox, objects. ARGV: rprefix, receipts_ttl_ms.
local mkey, rcpts, timers, outbox, objects = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local rprefix, ttl = ARGV[1], num(ARGV[2])
if redis.call('EXISTS', mkey) == 0 then return {'gone'} end
if redis.call('SCARD', objects) > 0 then return {'objects-left'} end
if redis.call('HGET', mkey, 'purged_at') then return {'already'} end
local now = now_ms()
local state = redis.call('HGET', mkey, 'state')
if state == 'ready' or state == 'processing' or state == 'awaiting_upload' then
  redis.call('HSET', mkey, 'state', 'purged')
end
redis.call('HSET', mkey, 'purged_at', tostring(now))
local lag = now - num(redis.call('HGET', mkey, 'pdue') or now)
redis.call('HDEL', mkey, 'obj', 'hdr', 'orig', 'orig_hdr', 'purging', 'pdue')
redis.call('DEL', timers)
emit(mkey, outbox, 'media.purged', '', '', 0, '', now)
local keys = {mkey, rcpts, outbox}
for _, rid in ipairs(redis.call('LRANGE', rcpts, 0, -1)) do table.insert(keys, rprefix .. rid) end
for _, k in ipairs(keys) do redis.call('PEXPIRE', k, ttl) end
local ver = redis.call('HINCRBY', mkey, 'dv', 1)
return {'ok', '', ver, lag}
