-- Claim an Idempotency-Key, or report what holds it. One key: the record, named by an HMAC.
-- KEYS: record. ARGV: fingerprint, claimer nonce, in-flight ttl ms.
-- Returns {'claimed', created_ms} or {state, fingerprint, status, ciphertext, media}.
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then
  local now = now_ms()
  redis.call('HSET', key, 'st', 'inflight', 'fp', ARGV[1], 'n', ARGV[2],
    'created', tostring(now))
  redis.call('PEXPIRE', key, num(ARGV[3]))
  return {'claimed', tostring(now)}
end
local r = redis.call('HMGET', key, 'st', 'fp', 'status', 'ct', 'media')
return {r[1] or '', r[2] or '', r[3] or '', r[4] or '', r[5] or ''}
