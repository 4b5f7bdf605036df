-- Keep only the newest computation of a media's next deadline, and mark its outbox for the
-- relay. KEYS: due zset, version hash, relay-pending zset (one {live:<shard>} slot).
-- ARGV: media id, deadline ms ('' = remove), version.
local due, vers, relay = KEYS[1], KEYS[2], KEYS[3]
local member, score, ver = ARGV[1], ARGV[2], tonumber(ARGV[3])
-- A counter, not a time: the relay's compare-and-delete must see every new mark.
redis.call('ZINCRBY', relay, 1, member)
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
