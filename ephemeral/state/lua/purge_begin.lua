-- Destroy every key of a media now, and list its blobs for deletion. KEYS: media, rcpts,
-- timers, outbox, objects. ARGV: rprefix, lprefix, retry_ms.
-- Returns {due, ver, object...}: a 'purge' timer brings the sweeper back if we crash now.
local mkey, rcpts, timers, objects = KEYS[1], KEYS[2], KEYS[3], KEYS[5]
local rprefix, lprefix, retry_ms = ARGV[1], ARGV[2], num(ARGV[3])
if redis.call('EXISTS', mkey) == 0 then return {'', ''} end
local now = now_ms()
for _, rid in ipairs(redis.call('LRANGE', rcpts, 0, -1)) do
  local rkey = rprefix .. rid
  local lease = redis.call('HGET', rkey, 'lease')
  end_lease(mkey, rkey, timers, lprefix, lease)
  if num(redis.call('HGET', rkey, 'vl')) > 0 then redis.call('HSET', rkey, 'vl', '0') end
  redis.call('HDEL', rkey, 'wk')
  if redis.call('HGET', rkey, 'done') ~= '1' then
    redis.call('HSET', rkey, 'done', '1')
    redis.call('HINCRBY', mkey, 'done', 1)
  end
end
redis.call('HDEL', mkey, 'kek', 'epoch', 'caption', 'uwk')  -- uwk: a two-step upload's key
redis.call('HSET', mkey, 'purging', '1')
redis.call('HSETNX', mkey, 'pdue', tostring(now))  -- unsend, failure: due from now
redis.call('ZADD', timers, now + retry_ms, 'purge')
local due = schedule(mkey, timers)
local out = {due[1], due[2]}
for _, o in ipairs(redis.call('SMEMBERS', objects)) do table.insert(out, o) end
return out
