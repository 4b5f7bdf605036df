-- Keep only the newest computation of a media's next deadline. KEYS: due zset, version hash
-- (one {live:<shard>} slot). ARGV: media id, deadline ms ('' = remove), version.
local due, vers = KEYS[1], KEYS[2]
local member, score, ver = ARGV[1], ARGV[2], tonumber(ARGV[3])
local seen = tonumber(redis.call('HGET', vers, member) or '-1')
if ver <= seen then return 0 end
if score == '' then
  redis.call('ZREM', due, member)
  redis.call('HDEL', vers, member)
else
  redis.call('ZADD', due, score, member)
  redis.call('HSET', vers, member, ver)
end
return 1
