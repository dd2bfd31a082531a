import t, { type Test } from 'tap'
import type { WebSocket } from 'ws'
import { Redis } from 'ioredis'
import { broadcast, build, type Built, closed, connect, messages, nextMessage, sample, token, until } from './helpers.js'
import { inspector, randomPrefix, startRedis } from './redis-helpers.js'

/** `count` instances joined by one Redis, each with its own port. */
async function instances (t: Test, redisUrl: string, count: number, prefix = randomPrefix()): Promise<Built[]> {
  const built: Built[] = []
  for (let i = 0; i < count; i++) built.push(await build(t, { redis: redisUrl, channelPrefix: prefix }))
  return built
}

/** Proves a client got nothing more: a marker to everyone arrives next. */
async function nothingElse (t: Test, clients: WebSocket[], via: Built): Promise<void> {
  const next = clients.map(nextMessage)
  await via.app.fanout.broadcast('marker')
  for (const message of await Promise.all(next)) t.equal(message.data, 'marker', 'nothing else arrived before the marker')
}

t.test('a broadcast posted to one instance reaches every client on every instance exactly once', async (t) => {
  const redis = await startRedis(t)
  const [a, b, c] = await instances(t, redis.url, 3) as [Built, Built, Built]
  const clients = [
    await connect(t, a.wsUrl, token({ sub: 'u1' })), await connect(t, a.wsUrl, token({ sub: 'u2' })),
    await connect(t, b.wsUrl, token({ sub: 'u3' })), await connect(t, b.wsUrl, token({ sub: 'u1' })),
    await connect(t, c.wsUrl, token({ sub: 'u4' })), await connect(t, c.wsUrl, token({ sub: 'u5' }))
  ]
  const response = await broadcast(a.url, { data: { hello: 'everyone' } })
  t.equal(response.status, 202)
  const summary = await response.json() as { id: string, instances: number }
  t.equal(summary.instances, 3, 'Redis handed it to three instances')
  for (const message of await Promise.all(clients.map(nextMessage))) t.same(message, { type: 'message', id: summary.id, data: { hello: 'everyone' } })
  await nothingElse(t, clients, c)
})

t.test('a user-targeted message reaches only that user, on whatever instance they are', async (t) => {
  const redis = await startRedis(t)
  const [a, b, c] = await instances(t, redis.url, 3) as [Built, Built, Built]
  const aliceOnA = await connect(t, a.wsUrl, token({ sub: 'alice' }))
  const aliceOnC = await connect(t, c.wsUrl, token({ sub: 'alice' }))
  const bobOnB = await connect(t, b.wsUrl, token({ sub: 'bob' }))
  const carolOnC = await connect(t, c.wsUrl, token({ sub: 'carol' }))

  const response = await broadcast(b.url, { data: 'for alice', users: ['alice'] })
  t.equal((await response.json() as { instances: number }).instances, 2, 'only the two instances holding alice got it')
  for (const message of await Promise.all([nextMessage(aliceOnA), nextMessage(aliceOnC)])) t.equal(message.data, 'for alice')

  t.match(await a.app.fanout.sendToUser('bob', 'for bob'), { instances: 1 })
  t.equal((await nextMessage(bobOnB)).data, 'for bob')

  await a.app.fanout.broadcast('not carol', { except: ['carol'] })
  for (const message of await Promise.all([nextMessage(aliceOnA), nextMessage(aliceOnC), nextMessage(bobOnB)])) t.equal(message.data, 'not carol')

  const [carolConnection] = [...c.app.fanout.connectionsOf('carol')]
  t.match(await a.app.fanout.sendTo(carolConnection?.id as string, 'to one connection'), { instances: 1 })
  t.equal((await nextMessage(carolOnC)).data, 'to one connection')

  t.match(await a.app.fanout.sendToUser('nobody', 'lost'), { instances: 0 }, 'a user connected nowhere reaches no instance')
  await nothingElse(t, [aliceOnA, aliceOnC, bobOnB, carolOnC], b)
})

t.test('many users in one message go out once, filtered by each instance', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await instances(t, redis.url, 2) as [Built, Built]
  const userOnB = await connect(t, b.wsUrl, token({ sub: 'user-70' }))
  const otherOnB = await connect(t, b.wsUrl, token({ sub: 'outsider' }))
  const users = Array.from({ length: 100 }, (_, i) => `user-${i}`)
  t.match(await a.app.fanout.broadcast('many', { users }), { instances: 2 })
  t.equal((await nextMessage(userOnB)).data, 'many')
  await nothingElse(t, [userOnB, otherOnB], a)
})

t.test('1,000 messages from one publisher arrive in the order they were posted', async (t) => {
  const redis = await startRedis(t)
  const [a, b, c] = await instances(t, redis.url, 3) as [Built, Built, Built]
  const onB = await connect(t, b.wsUrl, token({ sub: 'reader' }))
  const onC = await connect(t, c.wsUrl, token({ sub: 'reader' }))
  const all = [messages<number>(onB, 1000), messages<number>(onC, 1000)]
  // Posted without waiting for each other: order is the order of the calls.
  await Promise.all(Array.from({ length: 1000 }, async (_, i) => await (i % 2 === 0
    ? a.app.fanout.broadcast(i)
    : a.app.fanout.sendToUser('reader', i))))
  const expected = Array.from({ length: 1000 }, (_, i) => i)
  for (const received of await Promise.all(all)) t.same(received.map((m) => m.data), expected)
})

t.test('a user channel is subscribed with the first connection and unsubscribed after the last', async (t) => {
  const redis = await startRedis(t)
  const prefix = randomPrefix()
  const [a] = await instances(t, redis.url, 1, prefix) as [Built]
  const inspect = inspector(t, redis.port)
  const userChannels = async (): Promise<string[]> => (await inspect.pubsub('CHANNELS', `${prefix}user:*`) as string[]).sort()

  t.same(await userChannels(), [])
  const first = await connect(t, a.wsUrl, token({ sub: 'dora' }))
  await until(async () => (await userChannels()).length === 1, 'the subscription')
  t.same(await userChannels(), [`${prefix}user:dora`])
  const second = await connect(t, a.wsUrl, token({ sub: 'dora' }))
  const third = await connect(t, a.wsUrl, token({ sub: 'eve' }))
  await until(async () => (await userChannels()).length === 2, 'the second user')
  t.same(await userChannels(), [`${prefix}user:dora`, `${prefix}user:eve`])

  for (const ws of [first, third]) { const gone = closed(ws); ws.close(); await gone }
  await until(async () => (await userChannels()).length === 1, 'eve to be unsubscribed')
  t.same(await userChannels(), [`${prefix}user:dora`], 'dora still has a connection')
  const gone = closed(second); second.close(); await gone
  await until(async () => (await userChannels()).length === 0, 'dora to be unsubscribed')
  t.pass('no user channel left')

  const everyone = await inspect.pubsub('CHANNELS', `${prefix}*`) as string[]
  t.same(everyone.filter((channel) => channel.endsWith('all')), [`${prefix}all`], 'the everyone-channel stays')
})

t.test('malformed or foreign messages on our channels are counted and dropped', async (t) => {
  const redis = await startRedis(t)
  const prefix = randomPrefix()
  const [a] = await instances(t, redis.url, 1, prefix) as [Built]
  const ws = await connect(t, a.wsUrl)
  const inspect = inspector(t, redis.port)
  for (const junk of ['not json', '{"v":2}\n{"type":"message"}', '{"v":1,"id":"x"}\n{}', '{"v":2,"id":"x"}\n1\n2', '{"v":2,"id":"x","u":[1]}\n{}', '\n', Buffer.from([0x7b, 0x22, 0xff])]) {
    await inspect.publish(`${prefix}all`, junk)
  }
  await inspect.publish(`${prefix}all`, Buffer.concat([Buffer.from('{"v":2,"id":"x"}\n{'), Buffer.from([0xc3, 0x28]), Buffer.from('}')]))
  await a.app.fanout.broadcast('still fine')
  t.equal((await nextMessage(ws)).data, 'still fine', 'the next real message arrives; nothing bad was written')
  const text = await a.app.fanout.metricsRegistry.metrics()
  t.equal(sample(text, 'fanout_backplane_invalid_total'), 8)
})

t.test('an ioredis client given to the plugin is used and left open', async (t) => {
  const redis = await startRedis(t)
  const client = new Redis({ port: redis.port, host: '127.0.0.1' })
  t.teardown(() => { client.disconnect() })
  const built = await build(t, { redis: client, channelPrefix: randomPrefix() })
  const ws = await connect(t, built.wsUrl)
  await built.app.fanout.broadcast('via your client')
  t.equal((await nextMessage(ws)).data, 'via your client')
  await built.app.close()
  t.equal(client.status, 'ready', 'not closed by the plugin')
  t.equal(await client.ping(), 'PONG')
})

t.test('an app client made with lazyConnect is connected by the plugin', async (t) => {
  const redis = await startRedis(t)
  const client = new Redis({ port: redis.port, host: '127.0.0.1', lazyConnect: true })
  t.teardown(() => { client.disconnect() })
  const built = await build(t, { redis: client, channelPrefix: randomPrefix() })
  const ws = await connect(t, built.wsUrl)
  await built.app.fanout.broadcast('lazily connected')
  t.equal((await nextMessage(ws)).data, 'lazily connected')
})

t.test('readiness and metrics follow the backplane', async (t) => {
  const redis = await startRedis(t)
  const [a] = await instances(t, redis.url, 1) as [Built]
  const ready = await fetch(`${a.url}/fanout/ready`)
  t.equal(ready.status, 200)
  t.match(await ready.json(), { ready: true, backplane: 'up' })
  t.equal(a.app.fanout.backplaneUp, true)
  const text = await (await fetch(`${a.url}/metrics`)).text()
  t.equal(sample(text, 'fanout_backplane_up'), 1)
})
