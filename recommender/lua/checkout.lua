-- One checkout event, atomically: deduplicate, learn purchase intervals, end the visit,
-- decide the prompt (a join invite for a non-member).
-- Member:     KEYS: 1 seen (zset), 2 visit (hash), 3 profile (hash) -- one customer's slot
-- Non-member: KEYS: 1 the lane's seen (zset)
-- ARGV: 1 event_id, 2 ts, 3 now, 4 member ('' for none), 5 dedupe_window, 6 dedupe_ttl,
--       7 max_age, 8.. categories in the basket
local event_id, ts, now, member = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]

if seen_before(KEYS[1], event_id, ts, tonumber(ARGV[5]), tonumber(ARGV[6])) then
  return {'duplicate'}
end
if member == '' then
  if now - ts > tonumber(ARGV[7]) then
    return {'stale'}
  end
  return {'ok', 'join_invite'}
end
if not redis.call('HGET', KEYS[3], 'consent') then
  return {'unknown_member'}
end
for i = 8, #ARGV do
  local cat = ARGV[i]
  local prev = tonumber(redis.call('HGET', KEYS[3], 'last:' .. cat))
  if prev == nil or ts > prev then
    if prev and ts - prev > 86400 then
      -- A new purchase occasion: move the usual interval towards the latest gap.
      local old = tonumber(redis.call('HGET', KEYS[3], 'interval:' .. cat))
      local gap = ts - prev
      local learned = gap
      if old then learned = 0.7 * old + 0.3 * gap end
      redis.call('HSET', KEYS[3], 'interval:' .. cat, string.format('%.0f', learned))
    end
    redis.call('HSET', KEYS[3], 'last:' .. cat, ARGV[2])
  end
end
-- The visit ends at the till.
redis.call('DEL', KEYS[2])
return {'ok'}
