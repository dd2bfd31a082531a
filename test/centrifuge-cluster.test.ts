import t from 'tap'
import { token, until } from './helpers.js'
import { buildCentrifuge, sdk, subscribed, subscription } from './centrifuge-helpers.js'
import { clusterClient, randomPrefix, startCluster } from './redis-helpers.js'

t.test('on Redis Cluster, channels are shard channels; history, recovery and presence work across instances', async (t) => {
  const ports = await startCluster(t)
  const prefix = randomPrefix()
  const a = await buildCentrifuge(t, { redis: clusterClient(t, ports), channelPrefix: prefix })
  const b = await buildCentrifuge(t, { redis: clusterClient(t, ports), channelPrefix: prefix })
  const alice = sdk(t, a.sdkUrl, { token: token({ sub: 'alice' }) })
  const bob = sdk(t, b.sdkUrl, { token: token({ sub: 'bob' }) })
  alice.client.connect()
  bob.client.connect()
  const channels = ['chat:one', 'chat:two', 'chat:three', 'chat:four']
  const subs = channels.map((channel) => subscription(bob.client, channel))
  for (const { sub } of subs) sub.subscribe()
  for (const { events } of subs) await events.next('subscribed')
  const own = await subscribed(alice.client, 'chat:one')

  for (const [i, channel] of channels.entries()) {
    const received = subs[i]!.events.next('publication')
    const result = await a.app.fanout.publish(channel, { n: i })
    t.equal(result.offset, 1, `${channel}: offset from its shard's stream`)
    t.same((await received).data, { n: i })
  }
  const fromClient = subs[0]!.events.next('publication', subs[0]!.events.events.length)
  await own.sub.publish('from alice')
  t.equal((await fromClient).data, 'from alice')
  t.same(await a.app.fanout.presenceStats('chat:one'), { numClients: 2, numUsers: 2 })
  const page = await b.app.fanout.history('chat:one', { limit: -1 })
  t.same(page.publications.map((p) => JSON.parse(String(p.data))), [{ n: 0 }, 'from alice'])

  // A reconnect recovers from the shard's stream.
  const from = subs[1]!.events.events.length
  for (const connection of b.app.fanout.connections()) connection.close(3000, 'test reconnect')
  await subs[1]!.events.next('subscribing', from)
  await a.app.fanout.publish('chat:two', 'missed')
  const again = await subs[1]!.events.next('subscribed', from)
  t.equal(again.recovered, true)
  await until(async () => subs[1]!.events.all('publication').length === 2, 'the missed publication')
  t.same(subs[1]!.events.all('publication').map((p) => p.data), [{ n: 1 }, 'missed'])
})
