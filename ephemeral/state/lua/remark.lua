-- The relay's backstop: mark again every listed media that is still on the live-set. Checked in
-- the script, so a media discarded between the caller's read and this call is not brought back.
-- KEYS: due zset, relay-pending zset (one {live:<shard>} slot). ARGV: media ids.
local marked = 0
for _, member in ipairs(ARGV) do
  if redis.call('ZSCORE', KEYS[1], member) then
    redis.call('ZINCRBY', KEYS[2], 1, member)
    marked = marked + 1
  end
end
return marked
