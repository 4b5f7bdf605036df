-- Move the media's relay cursor, unless the record has expired meanwhile (no orphan key).
-- KEYS: media. ARGV: last relayed outbox id.
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'relayed', ARGV[1])
  return 1
end
return 0
