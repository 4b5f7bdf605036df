-- The first response is known: replace our in-flight marker by the encrypted record, kept
-- until 24 h (ttl) after the claim. Only the claimer (same nonce) may complete.
-- KEYS: record. ARGV: nonce, status, ciphertext, media id, ttl ms.
local key = KEYS[1]
if redis.call('HGET', key, 'n') ~= ARGV[1] then return 0 end
local created = num(redis.call('HGET', key, 'created'))
redis.call('HDEL', key, 'n')
redis.call('HSET', key, 'st', 'done', 'status', ARGV[2], 'ct', ARGV[3], 'media', ARGV[4])
redis.call('PEXPIREAT', key, created + num(ARGV[5]))
return 1
