-- One footfall event that earns a store-level prompt (open a till): deduplicate on the
-- zone, and claim the action's store cool-down so only one manager prompt goes out.
-- KEYS: 1 the zone's seen (zset), 2 the action's cool-down key (string), 3 unsent prompts (hash)
-- ARGV: 1 event_id, 2 ts, 3 now, 4 dedupe_window, 5 dedupe_ttl, 6 max_age, 7 cool-down s,
--       8 prompt id, 9 the prompt's topic ('' none), 10 its payload, 11 unsent TTL s
-- Returns {outcome [, 'claimed' | 'capped']}, or {'duplicate' [, unsent key, prompt id,
-- topic\npayload]} (see unsent_for)
if seen_before(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[5])) then
  return {'duplicate', unpack(unsent_for(KEYS[3], ARGV[1]))}
end
if tonumber(ARGV[3]) - tonumber(ARGV[2]) > tonumber(ARGV[6]) then
  return {'stale'}
end
-- The cool-down runs on event time (the key holds when it last fired; its TTL only bounds memory).
local cooldown = tonumber(ARGV[7])
local last = tonumber(redis.call('GET', KEYS[2]) or '')
if last and tonumber(ARGV[2]) - last < cooldown then
  return {'ok', 'capped'}
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', math.max(1, math.ceil(cooldown)))
if ARGV[9] and ARGV[9] ~= '' then  -- optional: older callers pass 8 arguments
  redis.call('HSET', KEYS[3], ARGV[8], ARGV[9] .. '\n' .. ARGV[10])
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[11]))
end
return {'ok', 'claimed'}
