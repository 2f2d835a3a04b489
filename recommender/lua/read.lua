-- What the decision core needs about one member, in one reply (cheaper to send and parse
-- than three commands): the profile, the visit and the contact history since ARGV[1].
-- KEYS: 1 profile (hash), 2 visit (hash), 3 contacts (zset) -- one customer's slot
-- Returns {profile as a flat field/value list, visit likewise, contacts as member/score}
return member_state(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
