-- Re-evaluate a media's due deadlines (the sweeper and purge jobs). KEYS: media, rcpts,
-- timers, outbox, objects. ARGV: rprefix, lprefix, requeue_ms.
-- Returns {'gone'} when the record no longer exists, {'stuck'} or {'upload-expired'} when the
-- media must fail, else {'ok', purge_due, due, ver, requeue}.
local mkey, rcpts, timers, outbox, objects = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local rprefix, lprefix, requeue_ms = ARGV[1], ARGV[2], num(ARGV[3])
if redis.call('EXISTS', mkey) == 0 then return {'gone'} end
local now = now_ms()
local state = redis.call('HGET', mkey, 'state')
local hard_due, requeue = false, false
-- The latest deadline that fired: when the purge condition began to hold, if it did now.
local fired = redis.call('ZREVRANGEBYSCORE', timers, now, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
for _, member in ipairs(redis.call('ZRANGEBYSCORE', timers, '-inf', now)) do
  local kind, arg = string.match(member, '^(%a+):?(.*)$')
  redis.call('ZREM', timers, member)
  if kind == 'ls' then
    local lkey = lprefix .. arg
    if lease_live(lkey, now) then
      redis.call('ZADD', timers, num(redis.call('HGET', lkey, 'idle_until')), member)
    else
      local rid = redis.call('HGET', lkey, 'rid')
      if rid then
        local rkey = rprefix .. rid
        end_lease(mkey, rkey, timers, lprefix, arg)
        maybe_done(mkey, rkey, lprefix, now)
      end
    end
  elseif kind == 'rp' then
    settle(mkey, rprefix .. arg, arg, outbox, timers, lprefix, now)
  elseif kind == 'exp' then
    for _, rid in ipairs(redis.call('LRANGE', rcpts, 0, -1)) do
      settle(mkey, rprefix .. rid, rid, outbox, timers, lprefix, now)
    end
  elseif kind == 'job' then
    -- Still processing: the job may have been lost (a crash before the enqueue). Enqueueing
    -- again is idempotent (one job id per media), so ask for it and look again later.
    if state == 'processing' then
      requeue = true
      redis.call('ZADD', timers, now + requeue_ms, 'job')
    end
  elseif kind == 'proc' then
    if state == 'processing' or state == 'awaiting_upload' then
      return {'stuck'}
    end
  elseif kind == 'upl' then
    -- A two-step create whose bytes never (fully) arrived: it fails, and is purged.
    if state == 'awaiting_upload' then
      return {'upload-expired'}
    end
  elseif kind == 'hard' or kind == 'purge' then
    hard_due = true
  end
end
local purge_due = all_done(mkey) or hard_due
if state == 'purged' or redis.call('HGET', mkey, 'purged_at') then purge_due = false end
if purge_due and fired[2] then
  local since = redis.call('HGET', mkey, 'pdue')
  if not since or num(fired[2]) < num(since) then redis.call('HSET', mkey, 'pdue', fired[2]) end
end
local due = schedule(mkey, timers)
return {'ok', purge_due and '1' or '0', due[1], due[2], requeue and '1' or '0'}
