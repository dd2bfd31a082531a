-- Live clients and distinct users, both counted by Redis (HLEN is O(1)).
drop_due(now_ms())
return { redis.call('HLEN', KEYS[1]), redis.call('HLEN', KEYS[3]) }
