-- One presence event, atomically: deduplicate, update the visit, and claim the prompt the
-- decision core chose (re-checking the visit caps, so a race or redelivery cannot claim twice).
-- KEYS: 1 seen (zset), 2 visit (hash), 3 profile (hash), 4 contacts (zset), 5 suggested (hash),
--       6 unsent prompts (hash), 7 tombstone (string) -- all one customer's slot
-- ARGV: 1 event_id, 2 ts, 3 now, 4 zone, 5 action (enter|leave|dwell), 6 dedupe_window,
--       7 dedupe_ttl, 8 visit_ttl, 9 max_age,
--       10 prompt_id ('' when the core chose nothing), 11 action id, 12 claim key,
--       13 per-visit cap of the action (0: none), 14 max prompts per visit, 15 min gap s,
--       16 category suggested ('' none), 17 kind, 18 holdout (0|1), 19 history ttl,
--       20 conversion window s, 21 the prompt's topic ('' none), 22 its payload, 23 unsent TTL s
--       (the prompt is built before the claim, so claim and prompt are one write: a crash
--       after this script leaves the prompt in KEYS[6] for the restart to publish),
--       24 the digest of the state the decision was made on ('' : read in this batch, not
--       checked), 25 since (the contact history's lower bound; '' : return no state),
--       26 '1' to return the profile with the state ('0': the caller has it)
-- Returns {outcome [, 'claimed' | 'capped' | 'moved']}, {'out_of_order', 'applied_to_visit' |
-- 'discarded_superseded' | 'discarded_previous_visit'} (a late event), or {'duplicate'
-- [, unsent key, prompt id, topic\npayload]} (see unsent_for); {'erased'} as it is.
-- With ARGV[25]: {that reply, the member's state after it} (the state as read.lua returns it,
-- which the recommender keeps for the member's next event; without the profile unless
-- ARGV[26] is '1'), and {{'changed'}, state (with the profile)} without
-- touching anything when ARGV[24] is not the digest of the state in Redis now: the event is
-- decided again on that state.
local event_id, ts, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local zone, action = ARGV[4], ARGV[5]

if KEYS[7] and redis.call('EXISTS', KEYS[7]) == 1 then
  return {'erased'}  -- before the dedupe set, which would otherwise come back
end
local since = ARGV[25]
if since == '' then since = nil end
if ARGV[24] and ARGV[24] ~= '' then
  -- Decided on a state kept in memory: only if it is still the state here (before the
  -- dedupe, which must not remember an event that is decided again).
  local s = member_state(KEYS[3], KEYS[2], KEYS[4], since or '-inf')
  if state_digest(s) ~= ARGV[24] then
    return {{'changed'}, s}
  end
end

local function event()
  if seen_before(KEYS[1], event_id, ts, tonumber(ARGV[6]), tonumber(ARGV[7])) then
    return {'duplicate', unpack(unsent_for(KEYS[6], event_id))}
  end
  local consent = redis.call('HGET', KEYS[3], 'consent')
  if not consent then
    return {'unknown_member'}
  end
  if consent ~= '1' then
    -- Data minimisation: no visit state for a member who did not consent to recognition.
    return {'no_consent'}
  end

  -- One read of what the visit update and the claim need, and (below) one write of both.
  local act, claim = ARGV[11], 'done:' .. ARGV[12]
  local v = redis.call('HMGET', KEYS[2], 'last_ts', 'zone', 'started', 'n', 'lastp', 'n:' .. act, claim,
    'zone_since')
  local last = tonumber(v[1] or '0')
  if ts < last then
    -- Late: older than the member's latest event (another gateway's outbox draining after an
    -- outage). It must not move the member back, and its moment is past (no claim, no
    -- prompt), but it is true: it can say that the visit, or the stay in the zone the member
    -- is in now, began earlier. Returned with what happened to it, for the counters.
    local started = tonumber(v[3] or v[1])
    if started - ts > tonumber(ARGV[8]) then
      return {'out_of_order', 'discarded_previous_visit'}  -- a visit that is over
    end
    local earlier = {}
    if action == 'enter' then
      if ts < started then
        earlier[#earlier + 1] = 'started'; earlier[#earlier + 1] = ARGV[2]
      end
      if zone == v[2] and ts < tonumber(v[8] or v[1]) then
        earlier[#earlier + 1] = 'zone_since'; earlier[#earlier + 1] = ARGV[2]
      end
    end
    if #earlier == 0 then
      return {'out_of_order', 'discarded_superseded'}  -- a newer event says all it said
    end
    redis.call('HSET', KEYS[2], unpack(earlier))
    return {'out_of_order', 'applied_to_visit'}
  end
  if v[1] and ts - tonumber(v[1]) > tonumber(ARGV[8]) then
    -- The visit is over by the events' own clock (a replay runs faster than the key's TTL).
    redis.call('DEL', KEYS[2])
    v = {}
  end
  local current = v[2]
  local set = {}
  if action == 'enter' then
    if current ~= zone then
      set[#set + 1] = 'zone'; set[#set + 1] = zone
      set[#set + 1] = 'zone_since'; set[#set + 1] = ARGV[2]
    end
    if not v[3] then
      set[#set + 1] = 'started'; set[#set + 1] = ARGV[2]
    end
  end
  if action ~= 'dwell' then
    set[#set + 1] = 'last_ts'; set[#set + 1] = ARGV[2]
  end
  if action == 'leave' and current == zone then
    redis.call('HDEL', KEYS[2], 'zone', 'zone_since')
  end

  local outcome
  local prompt_id = ARGV[10]
  if action == 'leave' then
    outcome = {'ok'}
  elseif now - ts > tonumber(ARGV[9]) then
    outcome = {'stale'}
  elseif action == 'dwell' and current ~= zone then
    outcome = {'ok', 'moved'}
  elseif prompt_id == '' then
    outcome = {'ok'}
  else
    -- The claim: the contact policy and caps again, atomically with the dedupe above.
    local n, lastp, n_act = tonumber(v[4] or '0'), tonumber(v[5] or '0'), tonumber(v[6] or '0')
    local per_visit = tonumber(ARGV[13])
    if v[7] or n >= tonumber(ARGV[14]) or (lastp > 0 and ts - lastp < tonumber(ARGV[15]))
        or (per_visit > 0 and n_act >= per_visit) then
      outcome = {'ok', 'capped'}
    else
      outcome = {'ok', 'claimed'}
      for _, x in ipairs({claim, prompt_id, 'n', n + 1, 'n:' .. act, n_act + 1, 'lastp', ARGV[2]}) do
        set[#set + 1] = x
      end
    end
  end
  if #set > 0 then
    redis.call('HSET', KEYS[2], unpack(set))
  end
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[8]))
  if outcome[2] ~= 'claimed' then
    return outcome
  end

  local history_ttl = tonumber(ARGV[19])
  redis.call('ZADD', KEYS[4], ts, 'p|' .. act .. '|' .. prompt_id)
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ts - history_ttl)
  redis.call('EXPIRE', KEYS[4], history_ttl)
  if ARGV[16] ~= '' then
    -- Remember the suggestion: a purchase of this category within the window converts it.
    redis.call('HSET', KEYS[5], ARGV[16], ARGV[17] .. '|' .. prompt_id .. '|' .. ARGV[2] .. '|' .. ARGV[18])
    redis.call('EXPIRE', KEYS[5], tonumber(ARGV[20]))
  end
  if ARGV[21] and ARGV[21] ~= '' then
    redis.call('HSET', KEYS[6], prompt_id, ARGV[21] .. '\n' .. ARGV[22])
    redis.call('EXPIRE', KEYS[6], tonumber(ARGV[23]))
  end
  return outcome
end

local reply = event()
if since then
  if ARGV[26] == '1' then
    return {reply, member_state(KEYS[3], KEYS[2], KEYS[4], since)}
  end
  -- This script never writes the profile: the caller has it already.
  return {reply, {redis.call('HGETALL', KEYS[2]), redis.call('ZRANGEBYSCORE', KEYS[4], since, '+inf', 'WITHSCORES')}}
end
return reply
