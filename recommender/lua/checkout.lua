-- One checkout event, atomically: deduplicate, update the purchase history incrementally
-- (orders, spend, last purchase, per-category intervals, won-back), find conversions of
-- earlier suggestions, end the visit.
-- Member:     KEYS: 1 seen (zset), 2 visit (hash), 3 profile (hash), 4 suggested (hash),
--             5 tombstone (string)
--             -- one customer's slot
-- Non-member: KEYS: 1 the lane's seen (zset), 2 the lane's unsent prompts (hash); ARGV 11-14:
--             the invitation's prompt id, topic ('' none), payload, unsent TTL s
-- ARGV: 1 event_id, 2 ts, 3 now, 4 member ('' for none), 5 dedupe_window, 6 dedupe_ttl,
--       7 max_age, 8 conversion window s, 9 lapse s (a longer gap marks a win-back),
--       10 total cents, 11.. categories in the basket
-- Returns {outcome [, orders, first, last, spend, conversions ('kind|prompt|ts|holdout|category')...]},
-- or for a non-member {'duplicate' [, unsent key, prompt id, topic\npayload]} (see unsent_for)
local event_id, ts, now, member = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]

if member ~= '' and KEYS[5] and redis.call('EXISTS', KEYS[5]) == 1 then
  return {'erased'}  -- an erased member's basket counts for the lane, not for them
end
if seen_before(KEYS[1], event_id, ts, tonumber(ARGV[5]), tonumber(ARGV[6])) then
  if member == '' then
    return {'duplicate', unpack(unsent_for(KEYS[2], event_id))}
  end
  return {'duplicate'}
end
if member == '' then
  if now - ts > tonumber(ARGV[7]) then
    return {'stale'}
  end
  if ARGV[12] ~= nil and ARGV[12] ~= '' then
    redis.call('HSET', KEYS[2], ARGV[11], ARGV[12] .. '\n' .. ARGV[13])
    redis.call('EXPIRE', KEYS[2], tonumber(ARGV[14]))
  end
  return {'ok'}
end
if not redis.call('HGET', KEYS[3], 'consent') then
  return {'unknown_member'}
end
local p = redis.call('HMGET', KEYS[3], 'last', 'orders', 'spend', 'first')
local last, orders, spend = tonumber(p[1]), tonumber(p[2] or '0'), tonumber(p[3] or '0')
if last == nil or ts - last > 86400 then
  orders = orders + 1
  if last and ts - last > tonumber(ARGV[9]) then
    redis.call('HSET', KEYS[3], 'winback', ARGV[2])
  end
end
if last == nil or ts > last then last = ts end
spend = spend + tonumber(ARGV[10])
redis.call('HSET', KEYS[3], 'last', string.format('%.0f', last), 'orders', orders, 'spend', spend)
redis.call('HSETNX', KEYS[3], 'first', string.format('%.0f', ts))
local window = tonumber(ARGV[8])
local conversions = {}
for i = 11, #ARGV do
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
  local s = redis.call('HGET', KEYS[4], cat)
  if s then
    redis.call('HDEL', KEYS[4], cat)
    local k, pid, sts, h = string.match(s, '([^|]*)|([^|]*)|([^|]*)|([^|]*)')
    if ts - tonumber(sts) <= window then
      conversions[#conversions + 1] = s .. '|' .. cat
    end
  end
end
local first = redis.call('HGET', KEYS[3], 'first')
-- The visit ends at the till.
redis.call('DEL', KEYS[2])
local out = {'ok', tostring(orders), first, string.format('%.0f', last), tostring(spend)}
for _, c in ipairs(conversions) do out[#out + 1] = c end
return out
