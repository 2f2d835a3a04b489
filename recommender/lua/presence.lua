-- One presence event, atomically: deduplicate, update the visit, decide the prompt.
-- KEYS: 1 seen (zset), 2 visit (hash), 3 profile (hash) -- all one customer's slot
-- ARGV: 1 event_id, 2 ts, 3 now, 4 zone, 5 action (enter|leave), 6 dedupe_window,
--       7 dedupe_ttl, 8 visit_ttl, 9 max_age, 10 vip tiers (space separated),
--       11 replenish_from, 12 replenish_until, 13.. categories shelved in the zone
-- Returns {outcome [, kind, category, tier, points, last_purchase_ts, interval_s, label]}
local event_id, ts, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local zone, action = ARGV[4], ARGV[5]

if seen_before(KEYS[1], event_id, ts, tonumber(ARGV[6]), tonumber(ARGV[7])) then
  return {'duplicate'}
end
local p = redis.call('HMGET', KEYS[3], 'consent', 'tier', 'points')
if not p[1] then
  return {'unknown_member'}
end
if p[1] ~= '1' then
  -- Data minimisation: no visit state for a member who did not consent to recognition.
  return {'no_consent'}
end

local last_ts = tonumber(redis.call('HGET', KEYS[2], 'last_ts') or '0')
if ts < last_ts then
  -- An older event arriving late must not move the customer back.
  return {'out_of_order'}
end
if action == 'enter' then
  redis.call('HSET', KEYS[2], 'zone', zone, 'last_ts', ARGV[2])
  redis.call('HSETNX', KEYS[2], 'started', ARGV[2])
else
  if redis.call('HGET', KEYS[2], 'zone') == zone then
    redis.call('HDEL', KEYS[2], 'zone')
  end
  redis.call('HSET', KEYS[2], 'last_ts', ARGV[2])
end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[8]))
if action ~= 'enter' then
  return {'ok'}
end
if now - ts > tonumber(ARGV[9]) then
  return {'stale'}
end

local tier, points = p[2] or '', p[3] or ''
local vip = false
for t in string.gmatch(ARGV[10], '%S+') do
  if t == tier then vip = true end
end

-- Rule 1, replenishment due: a category shelved here whose usual interval has passed.
local from, till = tonumber(ARGV[11]), tonumber(ARGV[12])
for i = 13, #ARGV do
  local cat = ARGV[i]
  local f = redis.call('HMGET', KEYS[3], 'last:' .. cat, 'interval:' .. cat, 'label:' .. cat)
  local bought, interval = tonumber(f[1]), tonumber(f[2])
  if bought and interval and interval > 0 then
    local elapsed = ts - bought
    if elapsed >= interval * from and elapsed <= interval * till
        and redis.call('HSETNX', KEYS[2], 'p:replenish:' .. cat, ARGV[2]) == 1 then
      -- The associate is engaging anyway: no separate greeting later in this visit.
      if vip then redis.call('HSETNX', KEYS[2], 'p:greet', ARGV[2]) end
      return {'ok', 'replenishment_due', cat, tier, points, f[1], f[2], f[3] or ''}
    end
  end
end

-- Rule 2, greet a VIP once per visit.
if vip and redis.call('HSETNX', KEYS[2], 'p:greet', ARGV[2]) == 1 then
  return {'ok', 'greet_vip', '', tier, points}
end
return {'ok'}
