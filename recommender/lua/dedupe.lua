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
