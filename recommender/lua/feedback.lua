-- One feedback from a handheld, atomically: only the associate who holds the prompt (or a
-- manager) may answer it, and a prompt gets one outcome. 'accepted' may come before the
-- closing answer ('dismissed' or 'done'); the first closing answer wins, a different one
-- after it is refused. The same answer again (a repeated tap, or the same feedback seen by
-- another replica of a share group) is a duplicate. A dismissal's cool-down is written by
-- the recommender only for an 'ok' reply.
-- KEYS: 1 the prompt's record (hash)
-- ARGV: 1 outcome, 2 ts, 3 sender (associate), 4 '1' if the sender is a manager, 5 feedback event id
-- Returns {'unknown'} | {'duplicate', verdict} | {'refused', reason}
--       | {'ok', kind, action, member, holdout, associate}
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'unknown'}
end
local seen = 'ev:' .. ARGV[5]
local before = redis.call('HGET', KEYS[1], seen)
if before then
  return {'duplicate', before}
end
local function verdict(v)
  redis.call('HSET', KEYS[1], seen, v)
  return v
end
local r = redis.call('HMGET', KEYS[1], 'kind', 'action', 'member', 'holdout', 'associate', 'outcome')
if ARGV[3] ~= (r[5] or '') and ARGV[4] ~= '1' then
  return {'refused', verdict('not_holder')}
end
local outcome = ARGV[1]
local closed = r[6]
if closed then
  if closed == outcome then
    return {'duplicate', verdict('ok')}
  end
  return {'refused', verdict('answered')}
end
if outcome == 'accepted' then
  if redis.call('HSETNX', KEYS[1], 'fb:accepted', ARGV[2]) == 0 then
    return {'duplicate', verdict('ok')}
  end
else
  redis.call('HSET', KEYS[1], 'outcome', outcome, 'fb:' .. outcome, ARGV[2])
end
verdict('ok')
return {'ok', r[1] or '', r[2] or '', r[3] or '', r[4] or '0', r[5] or ''}
