-- Forget media that no longer count: `done` leaves the in-flight set (processing ended),
-- `gone` also gives its stored bytes back (purged, unsent, failed, or never recorded).
-- KEYS: inflight, stored, sizes (as in quota_admit). ARGV: pairs of media_id, `done` | `gone`.
local inflight, stored, sizes = KEYS[1], KEYS[2], KEYS[3]
for i = 1, #ARGV, 2 do
  local id, what = ARGV[i], ARGV[i + 1]
  redis.call('ZREM', inflight, id)
  if what == 'gone' and redis.call('ZREM', stored, id) == 1 then
    local held = tonumber(redis.call('HGET', sizes, id) or '0')
    redis.call('HINCRBY', sizes, '_total', -held)
    redis.call('HDEL', sizes, id)
  end
end
return {'ok'}
