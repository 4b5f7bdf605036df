-- Compare-and-delete: drop a relay mark only if nobody marked the media again meanwhile.
-- KEYS: relay-pending zset. ARGV: media id, the score that was seen.
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
