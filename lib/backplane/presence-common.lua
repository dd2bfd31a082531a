-- Prepended to every presence script (one script each, so each runs atomically).
-- KEYS[1]: hash client id -> entry, KEYS[2]: sorted set client id -> deadline (ms),
-- KEYS[3]: hash user -> number of entries. All three share one hash tag, so
-- they live on one node, and one deadline (PEXPIRE), so they vanish together.
-- An entry is the client's info as JSON, a newline, then its user id: JSON
-- text holds no raw newline, so the first one ends the JSON whatever the
-- user id holds, and the user is found without decoding the JSON.

-- The server's clock, in ms: every instance reads the same one, so a deadline
-- means the same thing whichever instance wrote it or reads it.
local function now_ms ()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local function user_of (entry)
  return string.sub(entry, string.find(entry, '\n', 1, true) + 1)
end

local function uncount (user)
  if redis.call('HINCRBY', KEYS[3], user, -1) <= 0 then
    redis.call('HDEL', KEYS[3], user)
  end
end

-- Removes the entries due by `now` (deadline <= now), with their user counts.
local function drop_due (now)
  local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
  if #due == 0 then return end
  for i = 1, #due do
    local entry = redis.call('HGET', KEYS[1], due[i])
    if entry then
      redis.call('HDEL', KEYS[1], due[i])
      uncount(user_of(entry))
    end
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
end
