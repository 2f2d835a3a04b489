-- Shared prelude: remember the last `window` event ids of one customer (or lane) in a
-- sorted set scored by event time. Returns true if `event_id` was seen before.
local function seen_before(key, event_id, ts, window, ttl)
  if redis.call('ZADD', key, 'NX', ts, event_id) == 0 then
    return true
  end
  if redis.call('ZCARD', key) > window then
    redis.call('ZREMRANGEBYRANK', key, 0, -window - 1)
  end
  redis.call('EXPIRE', key, ttl)
  return false
end

-- The prompt `event_id` claimed that the broker has not confirmed yet (its unsent copy in
-- the hash `key`), as {key, prompt id, topic\npayload}; {} if none. An event whose batch
-- ran here but whose reply was lost (a timeout, a reset) comes again as a duplicate: the
-- caller publishes this prompt then, once.
local function unsent_for(key, event_id)
  local needle = '"cause_event_id":"' .. event_id .. '"'
  local entries = redis.call('HGETALL', key)
  for i = 1, #entries, 2 do
    if string.find(entries[i + 1], needle, 1, true) then
      return {key, entries[i], entries[i + 1]}
    end
  end
  return {}
end

-- What the decision core reads about one member: {profile as a flat field/value list,
-- visit likewise, contact history since `since` as member/score}.
local function member_state(profile, visit, contacts, since)
  return {
    redis.call('HGETALL', profile),
    redis.call('HGETALL', visit),
    redis.call('ZRANGEBYSCORE', contacts, since, '+inf', 'WITHSCORES'),
  }
end

-- A digest of such a state, as recommender/member_cache.py digest() computes it: per part
-- its length, \1, its values joined by NUL, \1; SHA-1 in hex.
local function state_digest(s)
  return redis.sha1hex(#s[1] .. '\1' .. table.concat(s[1], '\0') .. '\1' .. #s[2] .. '\1'
    .. table.concat(s[2], '\0') .. '\1' .. #s[3] .. '\1' .. table.concat(s[3], '\0') .. '\1')
end
