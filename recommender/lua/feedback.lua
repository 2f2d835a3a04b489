-- One feedback from a handheld, atomically: the first answer of each outcome counts; a
-- dismissal starts the action's cool-down in the customer's contact history.
-- KEYS: 1 the prompt's record (hash)
-- ARGV: 1 outcome, 2 ts
-- Returns {'unknown'} | {'duplicate'} | {'ok', kind, action, member, holdout, associate}
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'unknown'}
end
if redis.call('HSETNX', KEYS[1], 'fb:' .. ARGV[1], ARGV[2]) == 0 then
  return {'duplicate'}
end
local r = redis.call('HMGET', KEYS[1], 'kind', 'action', 'member', 'holdout', 'associate')
return {'ok', r[1] or '', r[2] or '', r[3] or '', r[4] or '0', r[5] or ''}
