// test/centrifuge-redis.test.ts again, with the Protobuf build of the SDK (test/centrifuge-helpers.ts, SDK_CODEC).
process.env.FANOUT_TEST_SDK = 'protobuf'
await import('../centrifuge-redis.test.js')
