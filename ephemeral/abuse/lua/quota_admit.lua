-- A sender's in-flight jobs and stored bytes: drop what has lapsed, then check (and admit).
-- KEYS: inflight (zset media -> admitted ms), stored (zset media -> purge deadline ms),
--       sizes (hash media -> bytes, plus the running total in `_total`); one hash tag.
-- ARGV: media_id, inflight_cap, inflight_span_ms, size, bytes_cap, purge_in_ms, mode
-- mode `check` admits nothing: it answers whether a new upload could start at all.
-- Time is Redis TIME, as in every other script: API hosts' clocks need not agree.
local inflight, stored, sizes = KEYS[1], KEYS[2], KEYS[3]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local media = ARGV[1]
local inflight_cap = tonumber(ARGV[2])
local span = tonumber(ARGV[3])
local size = tonumber(ARGV[4])
local bytes_cap = tonumber(ARGV[5])
local purge_ms = now + tonumber(ARGV[6])
local mode = ARGV[7]

-- A job older than the processing deadline has failed by now, whatever its record says.
redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now - span)
-- Content past its latest purge time is gone: give its bytes back (bounded per call).
for _, id in ipairs(redis.call('ZRANGEBYSCORE', stored, '-inf', now, 'LIMIT', 0, 100)) do
  local held = tonumber(redis.call('HGET', sizes, id) or '0')
  redis.call('HINCRBY', sizes, '_total', -held)
  redis.call('HDEL', sizes, id)
  redis.call('ZREM', stored, id)
end

local total = tonumber(redis.call('HGET', sizes, '_total') or '0')
local running = redis.call('ZCARD', inflight)
if inflight_cap > 0 and running >= inflight_cap then
  local first = redis.call('ZRANGE', inflight, 0, 0, 'WITHSCORES')
  return {'inflight', tostring(running), tostring(now - tonumber(first[2]))}
end
if bytes_cap > 0 then
  if (mode == 'check' and total >= bytes_cap) or (mode ~= 'check' and total + size > bytes_cap) then
    return {'stored', tostring(total), '0'}
  end
end
if mode == 'check' then
  return {'ok', tostring(total), '0'}
end

redis.call('ZADD', inflight, now, media)
redis.call('PEXPIRE', inflight, span)
redis.call('ZADD', stored, purge_ms, media)
redis.call('HSET', sizes, media, size)
redis.call('HINCRBY', sizes, '_total', size)
-- Both live until the latest purge time of anything in them.
local last = redis.call('ZRANGE', stored, -1, -1, 'WITHSCORES')
local ttl = math.max(1000, tonumber(last[2]) - now)
redis.call('PEXPIRE', stored, ttl)
redis.call('PEXPIRE', sizes, ttl)
return {'ok', tostring(total + size), '0'}
