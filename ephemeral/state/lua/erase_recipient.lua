-- Erasure: remove one person's receipts from a media they received. Their entry disappears
-- from the list and the counts (n, done, status, screenshot) as if they had never been a member;
-- their lease ends now and every lease record, timer and outbox entry naming them goes.
-- KEYS: media, rcpts, timers, outbox, recipient. ARGV: rid, lprefix.
-- Returns {'absent'} or {'ok', purge_due, due, ver}.
local mkey, rcpts, timers, outbox, rkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local rid, lprefix = ARGV[1], ARGV[2]
redis.call('LREM', rcpts, 0, rid)
if redis.call('EXISTS', rkey) == 0 then return {'absent'} end
local r = redis.call('HMGET', rkey, 'st', 'done', 'sc', 'lease', 'vids')
end_lease(mkey, rkey, timers, lprefix, r[4])
local vids = (r[5] or '') .. ' ' .. (r[4] or '')
for vid in string.gmatch(vids, '%S+') do
  redis.call('DEL', lprefix .. vid, lprefix .. vid .. ':streams')
  redis.call('ZREM', timers, 'ls:' .. vid)
end
redis.call('ZREM', timers, 'rp:' .. rid)
if redis.call('EXISTS', mkey) == 1 then
  if r[1] then redis.call('HINCRBY', mkey, 'c:' .. r[1], -1) end
  if num(r[3]) > 0 then redis.call('HINCRBY', mkey, 'c:screenshot', -1) end
  if r[2] == '1' then redis.call('HINCRBY', mkey, 'done', -1) end
  redis.call('HINCRBY', mkey, 'n', -1)
end
redis.call('DEL', rkey)
-- The outbox is bounded (a few entries per member); entries naming them are withdrawn.
local start = '-'
while true do
  local batch = redis.call('XRANGE', outbox, start, '+', 'COUNT', 500)
  if #batch == 0 then break end
  for _, entry in ipairs(batch) do
    local fields = entry[2]
    for i = 1, #fields, 2 do
      if fields[i] == 'recipient' and fields[i + 1] == rid then
        redis.call('XDEL', outbox, entry[1])
      end
    end
  end
  start = '(' .. batch[#batch][1]
end
if redis.call('EXISTS', mkey) == 0 then return {'ok', '0', '', ''} end
bump(mkey)
local purged = redis.call('HGET', mkey, 'purged_at') or redis.call('HGET', mkey, 'state') == 'purged'
local due = schedule(mkey, timers)
return {'ok', (all_done(mkey) and not purged) and '1' or '0', due[1], due[2]}
