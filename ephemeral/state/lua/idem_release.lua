-- The request failed or was aborted: drop our in-flight marker so a retry can run.
-- KEYS: record. ARGV: nonce.
if redis.call('HGET', KEYS[1], 'n') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
