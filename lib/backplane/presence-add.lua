-- Adds or refreshes one entry. ARGV[1]: client id, ARGV[2]: entry, ARGV[3]: ttl (ms).
local now = now_ms()
-- Also here, not only in reads: a channel nobody reads must not pile up dead entries.
drop_due(now)
local ttl = tonumber(ARGV[3])
local user = user_of(ARGV[2])
local previous = redis.call('HGET', KEYS[1], ARGV[1])
if not previous then
  redis.call('HINCRBY', KEYS[3], user, 1)
else
  local was = user_of(previous)
  if was ~= user then
    uncount(was)
    redis.call('HINCRBY', KEYS[3], user, 1)
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
-- The keys outlive their longest-lived entry: a short ttl never cuts a longer one short.
local keep = math.max(ttl, redis.call('PTTL', KEYS[2]))
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], keep) end
