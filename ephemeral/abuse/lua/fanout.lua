-- Distinct recipients of one content (keyed by an HMAC of its bytes) within a sliding window.
-- KEYS: the content's zset (member: a keyed hash of a recipient id, score: last seen ms).
-- ARGV: window_ms, limit, recipient hashes... (time is Redis TIME)
-- A create that adds new recipients to content already sent in the window is refused when
-- the distinct count would pass the limit; the first send of a content is one message to one
-- group (at most max_recipients) and is never refused by this rule alone.
local key = KEYS[1]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])

redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local fresh = 0
for i = 3, #ARGV do
  if not redis.call('ZSCORE', key, ARGV[i]) then fresh = fresh + 1 end
end
if fresh > 0 and count > 0 and count + fresh > limit then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return {'refused', tostring(count), tostring(tonumber(oldest[2]) + window - now)}
end
for i = 3, #ARGV do
  redis.call('ZADD', key, now, ARGV[i])
end
redis.call('PEXPIRE', key, window)
return {'ok', tostring(count + fresh), '0'}
