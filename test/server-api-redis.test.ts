import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import type { FanoutOptions } from '../lib/index.js'
import { token, until } from './helpers.js'
import { buildCentrifuge, centClient, sdk, subscribed, type Cent } from './centrifuge-helpers.js'
import { clusterClient, randomPrefix, startCluster, startRedis } from './redis-helpers.js'

// The server API on instances joined by one Redis (each test starts its
// own): a call on one instance acts on every instance's connections, and
// `channels` and `info` ask every instance.

const KEY = 'redis-api-key-0123456789'

async function instance (t: Test, redis: FanoutOptions['redis'], prefix: string): Promise<Awaited<ReturnType<typeof buildCentrifuge>> & { cent: Cent }> {
  const built = await buildCentrifuge(t, { redis, channelPrefix: prefix, serverApi: { key: KEY }, channels: { namespaces: { plain: {} } } })
  return { ...built, cent: centClient(`${built.url}/api`, KEY) }
}

async function post (url: string, method: string, body: unknown): Promise<any> {
  const response = await fetch(`${url}/api/${method}`, { method: 'POST', headers: { 'x-api-key': KEY }, body: JSON.stringify(body) })
  return await response.json()
}

t.test('two instances on one Redis: publish, subscribe, unsubscribe and disconnect through A reach the clients of B', async (t) => {
  const redis = await startRedis(t)
  const prefix = randomPrefix()
  const [a, b] = await Promise.all([instance(t, redis.url, prefix), instance(t, redis.url, prefix)])
  const onB = sdk(t, b.sdkUrl, { token: token({ sub: 'alice' }) })
  onB.client.connect()
  const aliceId = (await onB.events.next('connected')).client
  const { events } = await subscribed(onB.client, 'chat:1')

  const published = await a.cent.publish({ channel: 'chat:1', data: { from: 'A' } }) as { offset: number, epoch: string }
  t.equal(published.offset, 1)
  const publication = await events.next('publication')
  t.same(publication.data, { from: 'A' })
  t.equal(publication.offset, 1, 'the offset Redis gave it')
  t.same(await b.cent.getHistory({ channel: 'chat:1', limit: 5 }), { publications: [{ data: { from: 'A' }, offset: 1 }], offset: 1, epoch: published.epoch }, 'history on B')

  const broadcast = await a.cent.broadcast({ channels: ['chat:1', 'plain:2'], data: 'both' }) as { responses: any[] }
  t.equal(broadcast.responses[0].result.offset, 2)
  t.equal((await events.next('publication')).data, 'both')

  await a.cent.subscribe({ user: 'alice', channel: 'plain:srv' })
  t.equal((await onB.events.next('subscribed')).channel, 'plain:srv', 'server-side subscription on B')
  await a.cent.publish({ channel: 'plain:srv', data: 'srv' })
  t.equal((await onB.events.next('publication')).data, 'srv')
  await a.cent.unsubscribe({ user: 'alice', channel: 'plain:srv', client: aliceId })
  t.equal((await onB.events.next('unsubscribed')).channel, 'plain:srv', 'one connection, found on its instance')

  t.same(await a.cent.getPresenceStats({ channel: 'chat:1' }), { num_clients: 1, num_users: 1 }, 'presence of B, asked on A')
  await a.cent.disconnect({ user: 'alice', disconnect: { code: 4500, reason: 'bye' } })
  t.same(await onB.events.next('disconnected'), { code: 4500, reason: 'bye' })
})

t.test('channels and info ask every instance; an instance that does not answer fails the call instead of shrinking the answer', async (t) => {
  const redis = await startRedis(t)
  const prefix = randomPrefix()
  const [a, b] = await Promise.all([instance(t, redis.url, prefix), instance(t, redis.url, prefix)])
  const onA = sdk(t, a.sdkUrl, { token: token({ sub: 'alice' }) })
  const onB = sdk(t, b.sdkUrl, { token: token({ sub: 'bob' }) })
  onA.client.connect()
  onB.client.connect()
  await subscribed(onA.client, 'chat:shared')
  await subscribed(onB.client, 'chat:shared')
  await subscribed(onB.client, 'plain:b-only')

  t.same(await a.cent.getChannels(), { channels: { 'chat:shared': { num_clients: 2 }, 'plain:b-only': { num_clients: 1 } } }, 'summed over instances')
  t.same(await a.cent.getChannels({ pattern: 'plain:*' }), { channels: { 'plain:b-only': { num_clients: 1 } } })
  const info = await b.cent.getInfo() as { nodes: Array<{ uid: string, num_clients: number, num_subs: number }> }
  t.equal(info.nodes.length, 2)
  t.same(info.nodes.map((node) => [node.num_clients, node.num_subs]).sort(), [[1, 1], [1, 2]])
  t.not(info.nodes[0]?.uid, info.nodes[1]?.uid)

  // A third instance joins, then leaves: the count follows.
  const third = await buildCentrifuge(t, { redis: redis.url, channelPrefix: prefix, serverApi: { key: KEY } })
  t.equal((await post(a.url, 'info', {})).result.nodes.length, 3, 'three instances')
  await third.app.close()
  t.equal((await post(a.url, 'info', {})).result.nodes.length, 2, 'a closed instance is not asked')
  // Something that hears the questions but never answers (a hung instance).
  const silent = new Redis(redis.url)
  t.teardown(() => { silent.disconnect() })
  await silent.subscribe(prefix + 'all')
  const started = Date.now()
  const timedOut = await post(a.url, 'channels', {})
  t.equal(timedOut.error?.code, 100)
  t.match(timedOut.error?.message, /internal server error: Could not ask every instance: 2 of 3 instances answered within 3000 ms/)
  t.ok(Date.now() - started >= 2900, 'after the survey timeout')
})

t.test('with Redis down, calls that would reach this instance only answer 100 instead of a partial success', async (t) => {
  const redis = await startRedis(t)
  const prefix = randomPrefix()
  const a = await instance(t, redis.url, prefix)
  await redis.kill()
  await until(() => !a.app.fanout.backplaneUp, 'the backplane down')
  for (const [method, body, message] of [
    ['publish', { channel: 'plain:1', data: 1 }, /Redis is unreachable: delivered to this instance's subscribers only/],
    ['publish', { channel: 'chat:1', data: 1 }, /nothing was published/],
    ['subscribe', { user: 'alice', channel: 'plain:1' }, /Redis is unreachable: subscribed on this instance only/],
    ['disconnect', { user: 'alice' }, /Redis is unreachable: disconnected on this instance only/],
    ['channels', {}, /Could not ask every instance: Redis is unreachable/],
    ['info', {}, /Could not ask every instance/],
    ['history', { channel: 'chat:1' }, /history failed/],
    ['presence', { channel: 'chat:1' }, /presence failed/]
  ] as const) {
    const reply = await post(a.url, method, body)
    t.equal(reply.error?.code, 100, `${method} ${JSON.stringify(body)}`)
    t.match(reply.error?.message, message)
  }
  const broadcast = await post(a.url, 'broadcast', { channels: ['plain:1', 'nope:1'], data: 1 })
  t.equal(broadcast.result.responses[0].error.code, 100, 'broadcast: each channel says so')
  t.equal(broadcast.result.responses[1].error.code, 102)
})

t.test('on a Redis Cluster: publish through one instance, channels and info from both', async (t) => {
  const ports = await startCluster(t)
  const prefix = randomPrefix()
  const [a, b] = await Promise.all([instance(t, clusterClient(t, ports), prefix), instance(t, clusterClient(t, ports), prefix)])
  const onB = sdk(t, b.sdkUrl, { token: token({ sub: 'alice' }) })
  onB.client.connect()
  const { events } = await subscribed(onB.client, 'chat:c')
  const published = await a.cent.publish({ channel: 'chat:c', data: 'sharded' }) as { offset: number }
  t.equal(published.offset, 1)
  t.equal((await events.next('publication')).data, 'sharded')
  t.same(await a.cent.getChannels(), { channels: { 'chat:c': { num_clients: 1 } } })
  t.equal((await a.cent.getInfo() as { nodes: unknown[] }).nodes.length, 2)
})
