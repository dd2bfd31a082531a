-- Removes one entry, if there is one. ARGV[1]: client id.
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if entry then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  uncount(user_of(entry))
end
