-- Appends a publication to a channel's stream and publishes it in one step,
-- so that the offset subscribers see is always the one history keeps.
-- KEYS: stream, meta (hash: e = epoch, s = top offset).
-- ARGV: pub/sub channel, '1' for SPUBLISH, message header (a JSON object's
-- text without its closing brace), data, info ('' for none), epoch for a new
-- stream, size, ttl (ms), meta ttl (ms), the data's field name: 'd' for JSON
-- text, 'x' for bytes in base64.
local stream, meta = KEYS[1], KEYS[2]

local epoch = redis.call('hget', meta, 'e')
if not epoch then
  -- A stream that outlived its meta holds a lost epoch's offsets.
  epoch = ARGV[6]
  redis.call('del', stream)
  redis.call('hset', meta, 'e', epoch)
end

-- %d rather than tostring: Lua writes numbers past 1e14 with an exponent.
local offset = string.format('%d', redis.call('hincrby', meta, 's', 1))
redis.call('xadd', stream, 'MAXLEN', ARGV[7], offset .. '-0', ARGV[10], ARGV[4], 'i', ARGV[5])
redis.call('pexpire', stream, ARGV[8])
redis.call('pexpire', meta, ARGV[9])

local message = ARGV[3] .. ',"o":' .. offset .. ',"e":"' .. epoch .. '"}\n' .. ARGV[4]
local receivers
if ARGV[2] == '1' then
  receivers = redis.call('spublish', ARGV[1], message)
else
  receivers = redis.call('publish', ARGV[1], message)
end
return {offset, epoch, receivers}
