import t, { type Test } from 'tap'
import type { FanoutOptions } from '../lib/index.js'
import { token, until } from './helpers.js'
import { buildCentrifuge, restartCentrifuge, sdk, subscribed } from './centrifuge-helpers.js'
import { randomPrefix, startRedis } from './redis-helpers.js'

// Channels across instances joined by a real Redis, with the real SDK.

async function instances (t: Test, redisUrl: string, count: number, options: Partial<FanoutOptions> = {}): Promise<Array<Awaited<ReturnType<typeof buildCentrifuge>>>> {
  const prefix = randomPrefix()
  const built = []
  for (let i = 0; i < count; i++) built.push(await buildCentrifuge(t, { redis: redisUrl, channelPrefix: prefix, ...options }))
  return built
}

t.test('a publication on one instance reaches subscribers on another, with its offset', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await instances(t, redis.url, 2)
  const alice = sdk(t, a!.sdkUrl, { token: token({ sub: 'alice' }) })
  const bob = sdk(t, b!.sdkUrl, { token: token({ sub: 'bob' }) })
  alice.client.connect()
  bob.client.connect()
  const sa = await subscribed(alice.client, 'chat:x')
  const sb = await subscribed(bob.client, 'chat:x')
  const received = sb.events.next('publication')
  await sa.sub.publish({ n: 1 })
  const publication = await received
  t.same(publication.data, { n: 1 })
  t.equal(publication.offset, 1)
  const result = await a!.app.fanout.publish('chat:x', { n: 2 })
  t.equal(result.offset, 2)
  t.equal(typeof result.epoch, 'string')
  const presence = await b!.app.fanout.presenceStats('chat:x')
  t.same(presence, { numClients: 2, numUsers: 2 }, 'presence across instances')
})

t.test('recovery with Redis: a client whose instance restarts gets exactly what it missed, published on another instance meanwhile', async (t) => {
  const redis = await startRedis(t)
  const prefix = randomPrefix()
  const [a, b] = await instances(t, redis.url, 2, { channelPrefix: prefix })
  const { client } = sdk(t, a!.sdkUrl, { token: token() })
  client.connect()
  const { events } = await subscribed(client, 'chat:r')
  await b!.app.fanout.publish('chat:r', 'one')
  await events.next('publication')
  const again = events.next('subscribed', events.events.length)
  // The SDK reconnects to the same URL, where the instance comes back (a new process, nothing in memory).
  await restartCentrifuge(t, a!, { redis: redis.url, channelPrefix: prefix }, async () => {
    for (const n of ['two', 'three', 'four']) await b!.app.fanout.publish('chat:r', n)
  })
  t.equal((await again).recovered, true)
  t.equal((await again).wasRecovering, true)
  await until(() => events.all('publication').length === 4, 'the recovered publications')
  t.same(events.all('publication').map((p) => [p.data, p.offset]), [['one', 1], ['two', 2], ['three', 3], ['four', 4]])
})

t.test('Redis restarts: SDK clients are closed once, with 3010, when the subscription is back, and learn they could not recover', async (t) => {
  const redis = await startRedis(t)
  const [a] = await instances(t, redis.url, 1)
  const { client, events } = sdk(t, a!.sdkUrl, { token: token() })
  client.connect()
  const { events: subEvents } = await subscribed(client, 'chat:gap')
  await a!.app.fanout.publish('chat:gap', 'before')
  await subEvents.next('publication')
  const from = events.events.length
  await redis.kill()
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.equal(events.all('connecting').length, 1, 'not closed while Redis is down')
  await redis.restart()
  const connecting = await events.next('connecting', from)
  t.equal(connecting.code, 3010)
  const again = await subEvents.next('subscribed', subEvents.events.length)
  t.equal(again.wasRecovering, true)
  t.equal(again.recovered, false, 'the stream was lost with Redis: a new epoch')
  t.equal(events.all('connecting').length, 2, 'one reconnect')
})
