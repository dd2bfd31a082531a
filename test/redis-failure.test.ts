import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import Fastify from 'fastify'
import t from 'tap'
import fanout from '../lib/index.js'
import { broadcast, build, type Built, connect, nextMessage, sample, SECRET, token, until } from './helpers.js'
import { freePort, randomPrefix, startRedis } from './redis-helpers.js'

// A real garbage collection, so that heap figures show what is retained.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

t.test('Redis dies: local delivery goes on, the route says so, nothing queues; Redis returns: delivery resumes by itself', async (t) => {
  const redis = await startRedis(t)
  const prefix = randomPrefix()
  // backplaneGap 'keep': this test follows local delivery through the outage (redis-gap.test.ts covers 'close').
  const a: Built = await build(t, { redis: redis.url, channelPrefix: prefix, backplaneGap: 'keep' })
  const b: Built = await build(t, { redis: redis.url, channelPrefix: prefix, backplaneGap: 'keep' })
  const onA = await connect(t, a.wsUrl, token({ sub: 'ann' }))
  const onB = await connect(t, b.wsUrl, token({ sub: 'ben' }))

  await redis.kill()
  await until(() => !a.app.fanout.backplaneUp && !b.app.fanout.backplaneUp, 'both instances to see Redis down')

  // The route answers at once, with a status and a body that say what happened.
  const response = await broadcast(a.url, { data: 'during the outage' })
  t.equal(response.status, 503)
  t.match(await response.json(), { code: 'FST_FANOUT_BACKPLANE_DOWN', partial: true, delivered: 1, instances: 1, message: /this instance only/ })
  t.equal((await nextMessage(onA)).data, 'during the outage', "this instance's clients still get it")

  const readiness = await fetch(`${a.url}/fanout/ready`)
  t.equal(readiness.status, 503, 'load balancers see the instance as not ready')
  t.match(await readiness.json(), { ready: false, backplane: 'down' })

  // Posting on: each publish fails fast and nothing piles up.
  gc()
  const heapBefore = process.memoryUsage().heapUsed
  const payload = 'x'.repeat(1024)
  let slowest = 0
  for (let i = 0; i < 16_000; i++) {
    const started = performance.now()
    await a.app.fanout.sendToUser('nobody-here', payload)
    slowest = Math.max(slowest, performance.now() - started)
  }
  gc()
  const heapGrowth = process.memoryUsage().heapUsed - heapBefore
  t.ok(slowest < 1000, `the slowest of 16,000 publishes while down took ${slowest.toFixed(2)} ms: none waited for Redis`)
  t.ok(heapGrowth < 8 * 1024 * 1024, `the heap kept ${(heapGrowth / 1024).toFixed(0)} KiB after 16 MiB of messages: nothing queued`)

  const late = await connect(t, b.wsUrl, token({ sub: 'late' }))

  const restarted = Date.now()
  await redis.restart()
  await until(() => a.app.fanout.backplaneUp && b.app.fanout.backplaneUp, 'both instances to reconnect', 15_000)
  const recovery = Date.now() - restarted
  t.ok(recovery < 10_000, `both instances back within ${recovery} ms of Redis restarting`)

  // What was posted during the outage is not replayed to the other instance.
  await a.app.fanout.broadcast('after recovery')
  t.equal((await nextMessage(onB)).data, 'after recovery', 'cross-instance delivery resumed, nothing stale came first')
  t.equal((await nextMessage(onA)).data, 'after recovery')
  // User channels were resubscribed, including one for a user who connected while Redis was down.
  await a.app.fanout.sendToUser('ben', 'for ben')
  t.equal((await nextMessage(onB)).data, 'for ben')
  t.equal((await nextMessage(late)).data, 'after recovery')
  await a.app.fanout.sendToUser('late', 'for late')
  t.equal((await nextMessage(late)).data, 'for late')

  const text = await (await fetch(`${a.url}/metrics`)).text()
  t.equal(sample(text, 'fanout_backplane_local_only_total'), 16_001)
  t.equal(sample(text, 'fanout_backplane_state_changes_total', 'state="down"'), 1)
  t.equal(sample(text, 'fanout_backplane_state_changes_total', 'state="up"'), 2, 'up at start, up again after the restart')
  t.equal(sample(text, 'fanout_backplane_up'), 1)
})

t.test('an app whose Redis is gone still closes cleanly', async (t) => {
  const redis = await startRedis(t)
  const a: Built = await build(t, { redis: redis.url, channelPrefix: randomPrefix() })
  await connect(t, a.wsUrl)
  await redis.kill()
  await until(() => !a.app.fanout.backplaneUp, 'Redis down')
  const started = Date.now()
  await a.app.close()
  t.ok(Date.now() - started < 5000, 'close does not wait for Redis')
})

t.test('Redis unreachable at start: registration fails and nothing is left reconnecting', async (t) => {
  const app = Fastify({ pluginTimeout: 1000 })
  t.teardown(() => app.close())
  const closedPort = await freePort() // nothing listens there
  const error = await app.register(fanout, { jwt: { secret: SECRET }, redis: `redis://127.0.0.1:${closedPort}` }).ready().then(() => undefined, (err: unknown) => err)
  t.match(error, { code: 'FST_FANOUT_REDIS_UNREACHABLE', message: new RegExp(`Redis at redis://127\\.0\\.0\\.1:${closedPort} could not be reached within 500 ms: .*ECONNREFUSED`) })
  // If the client were still reconnecting, this test process would never exit and tap would time it out.
})

t.test('a wrong Redis password fails registration at once, naming Redis and not the password', async (t) => {
  const redis = await startRedis(t, ['--requirepass', 'right-password'])
  const app = Fastify()
  t.teardown(() => app.close())
  const started = Date.now()
  const error = await app.register(fanout, { jwt: { secret: SECRET }, redis: `redis://:wrong-password@127.0.0.1:${redis.port}` }).ready().then(() => undefined, (err: unknown) => err)
  t.match(error, { code: 'FST_FANOUT_REDIS_UNREACHABLE', message: /refused the connection: WRONGPASS/ })
  t.notMatch((error as Error).message, /wrong-password/, 'the URL is named without its credentials')
  t.ok(Date.now() - started < 2000, 'without waiting for a timeout')
})
