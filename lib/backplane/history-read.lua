-- Reads a channel's position and, when asked, a range of its publications;
-- a stream that does not exist gets its epoch here, so every reader learns one.
-- KEYS: stream, meta (hash: e = epoch, s = top offset).
-- ARGV: epoch for a new stream, meta ttl (ms), the epoch the reader holds
-- ('' for any), 'forward', 'reverse' or '' for no publications, the range's
-- two ids in XRANGE's or XREVRANGE's order, count ('' for all).
local stream, meta = KEYS[1], KEYS[2]

local state = redis.call('hmget', meta, 'e', 's')
local epoch, top = state[1], state[2] or '0'
if not epoch then
  epoch, top = ARGV[1], '0'
  -- A stream that outlived its meta holds a lost epoch's offsets.
  redis.call('del', stream)
  redis.call('hset', meta, 'e', epoch, 's', '0')
  redis.call('pexpire', meta, ARGV[2])
end

local publications = {}
if ARGV[4] ~= '' and (ARGV[3] == '' or ARGV[3] == epoch) then
  local command = ARGV[4] == 'reverse' and 'xrevrange' or 'xrange'
  if ARGV[7] == '' then
    publications = redis.call(command, stream, ARGV[5], ARGV[6])
  else
    publications = redis.call(command, stream, ARGV[5], ARGV[6], 'COUNT', ARGV[7])
  end
end
return {top, epoch, publications}
