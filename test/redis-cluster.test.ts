import t from 'tap'
import { Redis } from 'ioredis'
import { build, type Built, closed, connect, nextMessage, token, until } from './helpers.js'
import { clusterClient, randomPrefix, startCluster } from './redis-helpers.js'

t.test('on Redis Cluster, user channels use sharded pub/sub and spread over the shards', async (t) => {
  const ports = await startCluster(t)
  const prefix = randomPrefix()
  const a: Built = await build(t, { redis: clusterClient(t, ports), channelPrefix: prefix })
  const b: Built = await build(t, { redis: clusterClient(t, ports), channelPrefix: prefix })

  const users = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']
  const clients = new Map<string, Awaited<ReturnType<typeof connect>>>()
  for (const [index, user] of users.entries()) clients.set(user, await connect(t, (index % 2 === 0 ? a : b).wsUrl, token({ sub: user })))

  // Each user's channel is a shard channel on the node that owns its slot.
  const nodes = ports.map((port) => new Redis({ port, host: '127.0.0.1' }))
  t.teardown(() => { for (const node of nodes) node.disconnect() })
  const shardChannels = async (): Promise<string[][]> => await Promise.all(nodes.map(async (node) =>
    (await node.call('PUBSUB', 'SHARDCHANNELS', `${prefix}user:*`) as string[]).sort()))
  await until(async () => (await shardChannels()).flat().length === users.length, 'every user channel to be subscribed')
  const perNode = await shardChannels()
  t.same(perNode.flat().sort(), users.map((user) => `${prefix}user:${user}`).sort(), 'one shard channel per user')
  t.ok(perNode.filter((channels) => channels.length > 0).length >= 2, `spread over shards: ${perNode.map((c) => c.length).join('/')}`)

  // Delivery across instances, targeted and to everyone.
  await a.app.fanout.sendToUser('bob', 'sharded')
  t.equal((await nextMessage(clients.get('bob') as never)).data, 'sharded')
  const everyone = users.map(async (user) => await nextMessage(clients.get(user) as never))
  t.match(await b.app.fanout.broadcast('to all'), { instances: 2 })
  for (const message of await Promise.all(everyone)) t.equal(message.data, 'to all')
  const [connection] = [...b.app.fanout.connectionsOf('dave')]
  await a.app.fanout.sendTo(connection?.id as string, 'one connection')
  t.equal((await nextMessage(clients.get('dave') as never)).data, 'one connection')

  // The last connection of a user leaving unsubscribes the shard channel.
  const bob = clients.get('bob') as Awaited<ReturnType<typeof connect>>
  const gone = closed(bob)
  bob.close()
  await gone
  await until(async () => !(await shardChannels()).flat().includes(`${prefix}user:bob`), 'bob to be unsubscribed')
  t.pass('unsubscribed')
})
