-- Add a media to a cross-slot index (a zset: an owner's or a recipient's media) and keep the
-- index at least keep_ms longer, never shorter: one call where ZADD and two PEXPIREs (GT for a
-- key with a TTL, NX for a new one) were three. KEYS: index. ARGV: member, score, keep_ms.
local key, keep = KEYS[1], num(ARGV[3])
redis.call('ZADD', key, ARGV[2], ARGV[1])
if redis.call('PTTL', key) < keep then redis.call('PEXPIRE', key, keep) end
return 1
