-- Unsend or purge: reduce the record of this media to a tombstone (no ciphertext, so no token
-- survives), keeping its TTL. A record of another media (the key was reused after its 24 h)
-- is left alone. KEYS: record. ARGV: media id.
local key = KEYS[1]
if redis.call('HGET', key, 'media') ~= ARGV[1] then return 0 end
if redis.call('HGET', key, 'st') ~= 'done' then return 0 end
redis.call('HDEL', key, 'ct')
redis.call('HSET', key, 'st', 'tomb')
return 1
