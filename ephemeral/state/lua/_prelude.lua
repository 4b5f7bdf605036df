-- Shared helpers, prepended to every script. All keys a script touches share the media's hash
-- tag ({m:<id>}): the ones built here from ARGV prefixes are in the same slot as KEYS[1].
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local TERMINAL = {expired = true, revoked = true, failed = true}
local STATUSES = {'sent', 'delivered', 'opened', 'replayed', 'expired', 'revoked', 'failed'}

local function num(v) return tonumber(v) or 0 end

local function counts(mkey)
  local c = {}
  for _, s in ipairs(STATUSES) do c[s] = num(redis.call('HGET', mkey, 'c:' .. s)) end
  c['screenshot'] = num(redis.call('HGET', mkey, 'c:screenshot'))
  return c
end

local function bump(mkey)
  redis.call('HINCRBY', mkey, 'ver', 1)
end

-- Append an event to the media's outbox in the same script as the change it describes.
local function emit(mkey, outbox, etype, rid, status, views_left, device, now, detail)
  local seq = redis.call('HINCRBY', mkey, 'seq', 1)
  redis.call('XADD', outbox, '*',
    'type', etype, 'ts', tostring(now), 'seq', tostring(seq),
    'recipient', rid or '', 'status', status or '', 'views_left', tostring(views_left or ''),
    'device', device or '', 'detail', detail or '', 'counts', cjson.encode(counts(mkey)))
  bump(mkey)
  return seq
end

local function set_status(mkey, rkey, new)
  local old = redis.call('HGET', rkey, 'st')
  if old == new then return end
  redis.call('HSET', rkey, 'st', new)
  if old then redis.call('HINCRBY', mkey, 'c:' .. old, -1) end
  redis.call('HINCRBY', mkey, 'c:' .. new, 1)
  bump(mkey)
end

local function lease_live(lkey, now)
  if lkey == nil or redis.call('EXISTS', lkey) == 0 then return false end
  local l = redis.call('HMGET', lkey, 'idle_until', 'max_until')
  return now < num(l[1]) and now < num(l[2])
end

-- A recipient is done when nothing can be shown to them any more: terminal, or out of views
-- with no live lease. The media is purged once every recipient is done.
local function maybe_done(mkey, rkey, lprefix, now)
  local r = redis.call('HMGET', rkey, 'done', 'st', 'vl', 'lease')
  if r[1] == '1' then return end
  local live = r[4] and r[4] ~= '' and lease_live(lprefix .. r[4], now)
  if TERMINAL[r[2]] or (num(r[3]) == 0 and not live) then
    redis.call('HSET', rkey, 'done', '1')
    redis.call('HDEL', rkey, 'wk')
    -- The last recipient done: the purge condition holds from now (purge lag is measured
    -- from here, see purge_finish).
    if redis.call('HINCRBY', mkey, 'done', 1) >= num(redis.call('HGET', mkey, 'n')) then
      redis.call('HSETNX', mkey, 'pdue', tostring(now))
    end
  end
end

local function end_lease(mkey, rkey, timers, lprefix, view_id)
  if view_id == nil or view_id == '' then return end
  -- A tombstone (no key, idle_until 0) lives on until the lease's TTL, so a late request
  -- learns the lease ended (410) rather than that it never existed (404).
  local lkey = lprefix .. view_id
  if redis.call('EXISTS', lkey) == 1 then
    local l = redis.call('HMGET', lkey, 'idle_until', 'max_until', 'ended_at')
    if not l[3] then
      local t = redis.call('TIME')
      local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
      local ended_at = math.min(now, num(l[1]), num(l[2]))
      redis.call('HSET', lkey, 'ended_at', tostring(ended_at))
      redis.call('PEXPIRE', lkey, 660000)  -- reports are accepted 10 minutes after the end
    end
    redis.call('HDEL', lkey, 'wk', 'rk', 'dk')
    redis.call('HSET', lkey, 'idle_until', '0', 'ended', '1')
  end
  redis.call('DEL', lkey .. ':streams')
  redis.call('ZREM', timers, 'ls:' .. view_id)
  if redis.call('HGET', rkey, 'lease') == view_id then
    redis.call('HSET', rkey, 'lease', '')
  end
  bump(mkey)
end

-- Apply the timeline of API.md to one recipient: unopened tokens expire at expires_at; a
-- replay lapses at replay_expires_at (the status stays opened, views_left drops to 0).
local function settle(mkey, rkey, rid, outbox, timers, lprefix, now)
  local r = redis.call('HMGET', rkey, 'st', 'vl', 'rxp')
  local st, vl = r[1], num(r[2])
  local expires = num(redis.call('HGET', mkey, 'expires'))
  if (st == 'sent' or st == 'delivered') and now >= expires then
    set_status(mkey, rkey, 'expired')
    redis.call('HSET', rkey, 'xat', tostring(now), 'vl', '0')
    emit(mkey, outbox, 'recipient.expired', rid, 'expired', 0, '', now)
  elseif (st == 'opened' or st == 'replayed') and vl > 0 and r[3] and r[3] ~= ''
      and now >= num(r[3]) then
    redis.call('HSET', rkey, 'vl', '0')
    redis.call('ZREM', timers, 'rp:' .. rid)
    bump(mkey)
  end
  maybe_done(mkey, rkey, lprefix, now)
end

-- The media's next deadline, versioned so the live-set keeps only the newest computation.
local function schedule(mkey, timers)
  local first = redis.call('ZRANGE', timers, 0, 0, 'WITHSCORES')
  local ver = redis.call('HINCRBY', mkey, 'dv', 1)
  if first[2] == nil then return {'', ver} end
  return {first[2], ver}
end

local function all_done(mkey)
  return num(redis.call('HGET', mkey, 'done')) >= num(redis.call('HGET', mkey, 'n'))
end
