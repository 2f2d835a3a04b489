-- One footfall event that earns a store-level prompt (open a till): deduplicate on the
-- zone, and claim the action's store cool-down so only one manager prompt goes out.
-- KEYS: 1 the zone's seen (zset), 2 the action's cool-down key (string)
-- ARGV: 1 event_id, 2 ts, 3 now, 4 dedupe_window, 5 dedupe_ttl, 6 max_age, 7 cool-down s,
--       8 prompt id
-- Returns {outcome [, 'claimed' | 'capped']}
if seen_before(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[5])) then
  return {'duplicate'}
end
if tonumber(ARGV[3]) - tonumber(ARGV[2]) > tonumber(ARGV[6]) then
  return {'stale'}
end
local ttl = math.max(1, math.floor(tonumber(ARGV[7])))
if redis.call('SET', KEYS[2], ARGV[8], 'NX', 'EX', ttl) then
  return {'ok', 'claimed'}
end
return {'ok', 'capped'}
