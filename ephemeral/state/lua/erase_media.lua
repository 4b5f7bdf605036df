-- Erasure: delete every key of a media its sender is erased from, once its blobs are gone
-- (purge confirmed them deleted). KEYS: media, rcpts, timers, outbox, objects.
-- ARGV: rprefix, lprefix. Returns {'ok'} or {'objects-left'}.
local mkey, rcpts, timers, outbox, objects = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local rprefix, lprefix = ARGV[1], ARGV[2]
if redis.call('SCARD', objects) > 0 then return {'objects-left'} end
for _, rid in ipairs(redis.call('LRANGE', rcpts, 0, -1)) do
  local rkey = rprefix .. rid
  local r = redis.call('HMGET', rkey, 'lease', 'vids')
  for vid in string.gmatch((r[2] or '') .. ' ' .. (r[1] or ''), '%S+') do
    redis.call('DEL', lprefix .. vid, lprefix .. vid .. ':streams')
  end
  redis.call('DEL', rkey)
end
redis.call('DEL', mkey, rcpts, timers, outbox, objects)
return {'ok'}
