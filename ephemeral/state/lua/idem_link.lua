-- Remember on the media which idempotency record names it, so purge can tombstone it.
-- Only on a media that still exists: a new hash here would have no TTL. KEYS: media.
-- ARGV: record key.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'idem', ARGV[1])
return 1
