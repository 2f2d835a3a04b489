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
