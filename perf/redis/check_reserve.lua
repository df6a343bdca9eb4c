-- check_reserve.lua - pay-later authorize as a team without authd would
-- write it: Redis + one Lua script, run with EVALSHA (atomic: Redis runs
-- one script at a time).
--
-- It does the work the engine does for a pay-later authorization:
--   1. idempotency: a request id already seen gets its first answer back,
--      marked duplicate, and changes nothing;
--   2. limit check: available = limit - outstanding - holds (int64 fen);
--   3. reserve: holds += amount when available >= amount;
--   4. remember the answer (and the amount held, for a later capture or
--      void) under the request id, kept for the retention period.
-- Not done here (the engine does them): hold expiry (needs a sweeper),
-- temporary quota, velocity and the other rules, the lending ceiling.
--
-- KEYS[1]  u:<user id>      hash: limit, outstanding, holds (fen)
-- KEYS[2]  r:<gw>:<req id>  the remembered answer "approved:available:reason:amount"
-- ARGV[1]  amount_fen       integer > 0
-- ARGV[2]  retain_s         seconds to remember the answer (engine: 7 days)
--
-- Returns {approved, available_fen, reason, duplicate}:
--   approved 1/0; available_fen after the hold (approved) or as found
--   (declined); reason 0 approved, 1 insufficient credit, 2 unknown user,
--   3 bad amount (not remembered: the engine answers MALFORMED and keeps
--   nothing); duplicate 1 when the answer is a replay.
--
-- Money: Lua 5.1 numbers are doubles, exact for integers below 2^53 fen
-- (9e13 yuan); HINCRBY does the stored arithmetic in int64.

local seen = redis.call('GET', KEYS[2])
if seen then
	local a, avail, reason = string.match(seen, '^(%d):(%-?%d+):(%d):')
	return {tonumber(a), tonumber(avail), tonumber(reason), 1}
end

local amount = tonumber(ARGV[1])
if not amount or amount <= 0 or amount ~= math.floor(amount) then
	return {0, 0, 3, 0}
end

local approved, avail, reason = 0, 0, 2
local u = redis.call('HMGET', KEYS[1], 'limit', 'outstanding', 'holds')
if u[1] then
	avail = tonumber(u[1]) - tonumber(u[2] or 0) - tonumber(u[3] or 0)
	if avail >= amount then
		redis.call('HINCRBY', KEYS[1], 'holds', amount)
		approved, avail, reason = 1, avail - amount, 0
	else
		reason = 1
	end
end

redis.call('SET', KEYS[2],
	   string.format('%d:%d:%d:%d', approved, avail, reason,
			 approved * amount),
	   'EX', ARGV[2])
return {approved, avail, reason, 0}
