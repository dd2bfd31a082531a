// Type tests: this file must compile (`npm test` runs tsc first), and each
// line marked as an expected error must stay an error.
import t from 'tap'
import Fastify from 'fastify'
import fanout, { OPENAPI_API_KEY_SCHEME, OPENAPI_BEARER_SCHEME, type BackplaneGapPolicy, type ChannelDeliveryResult, clusterMetrics, type ClusterMetricsOptions, type ChannelsOptions, type ClientInfo, CloseCode, type DeliveryResult, type DisconnectResult, type FanoutConnection, type FanoutOptions, type HistoryPage, type InboundBudget, type MessageFrame, type NamespaceOptions, type PresenceStats, type ServerApiOptions, type StreamPosition } from '../lib/index.js'
import { SECRET } from './helpers.js'

t.test('the decorator is typed through declaration merging', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const options: FanoutOptions = { jwt: { secret: SECRET }, slowConsumer: 'drop', compression: { threshold: 512 } }
  await app.register(fanout, options)
  await app.ready()

  const result: DeliveryResult = await app.fanout.broadcast({ any: 'json' }, { users: ['a'], except: ['b'] })
  const size: number = app.fanout.size
  const connections: ReadonlySet<FanoutConnection> = app.fanout.connectionsOf('a')
  const frame: MessageFrame<{ n: number }> = { type: 'message', id: 'x', data: { n: 1 } }
  const code: number = CloseCode.SLOW_CONSUMER
  t.same([result.delivered, size, connections.size, frame.data.n, code], [0, 0, 0, 1, 4008])

  // @ts-expect-error slowConsumer takes 'close' or 'drop'
  const bad: FanoutOptions = { jwt: { secret: SECRET }, slowConsumer: 'block' }
  // @ts-expect-error jwt is required
  const missing: FanoutOptions = {}
  // @ts-expect-error users is a list of ids (from JavaScript: a rejected promise)
  await t.rejects(app.fanout.broadcast(1, { users: 'a' }), { code: 'FST_FANOUT_INVALID_ARGUMENT' })
  t.ok(bad !== undefined && missing !== undefined)
})

t.test('hardening options and results are typed', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const inbound: InboundBudget = { messages: 10 }
  const gap: BackplaneGapPolicy = 'keep'
  await app.register(fanout, { jwt: { secret: SECRET }, inbound, messageTimeout: 5000, backplaneGap: gap })
  await app.ready()
  const result: DisconnectResult = await app.fanout.disconnectUser('nobody', CloseCode.TOKEN_EXPIRED, 'bye')
  t.same([result.disconnected, result.instances], [0, 1])
  // @ts-expect-error backplaneGap takes 'close' or 'keep'
  const bad: FanoutOptions = { jwt: { secret: SECRET }, backplaneGap: 'ignore' }
  // @ts-expect-error disconnectUser resolves with a result, not a number
  const count: number = await app.fanout.disconnectUser('nobody')
  t.ok(bad !== undefined && count !== undefined)
})

t.test('channel options and results are typed', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const chat: NamespaceOptions = { historySize: 10, historyTtl: 60_000, recovery: true, presence: true, publish: async (connection, channel, data) => connection.userId !== '' && channel !== '' && data !== undefined }
  const channels: ChannelsOptions = { namespaces: { chat }, maxPerConnection: 10 }
  await app.register(fanout, { jwt: { secret: SECRET }, centrifuge: { connectTimeout: 5000, onRpc: (connection, method) => ({ user: connection.userId, method }) }, channels })
  await app.ready()
  const published: ChannelDeliveryResult = await app.fanout.publish('chat:a', { text: 'hi' })
  const page: HistoryPage = await app.fanout.history('chat:a', { limit: -1 })
  const position: StreamPosition = page.position
  const clients: Record<string, ClientInfo> = await app.fanout.presence('chat:a')
  const stats: PresenceStats = await app.fanout.presenceStats('chat:a')
  t.same([published.offset, position.offset, Object.keys(clients).length, stats.numUsers], [1, 1, 0, 0])
  // @ts-expect-error subscribe takes 'user', 'token' or a function
  const badRule: NamespaceOptions = { subscribe: 'anyone' }
  // @ts-expect-error history resolves with a page, not a list
  const list: unknown[] = await app.fanout.history('chat:a')
  t.ok(badRule !== undefined && list !== undefined)
})

t.test('the server API option is typed', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const serverApi: ServerApiOptions = { key: 'a-key', prefix: '/centrifugo' }
  await app.register(fanout, { jwt: { secret: SECRET }, serverApi, broadcastPath: false })
  await app.ready()
  t.equal((await app.inject({ method: 'POST', url: '/centrifugo/info', headers: { 'x-api-key': 'a-key' } })).statusCode, 200)
  // @ts-expect-error the key is a string
  const bad: FanoutOptions = { jwt: { secret: SECRET }, serverApi: { key: 42 } }
  // @ts-expect-error serverApi takes a boolean or settings
  const wrong: FanoutOptions = { jwt: { secret: SECRET }, serverApi: 'on' }
  t.ok(bad !== undefined && wrong !== undefined)
  // The OpenAPI security schemes' names, for an app that defines its own under them.
  const schemes: ['fanoutApiKey', 'fanoutBearer'] = [OPENAPI_API_KEY_SCHEME, OPENAPI_BEARER_SCHEME]
  t.same(schemes, ['fanoutApiKey', 'fanoutBearer'])
})

t.test('cluster metrics options are typed', async (t) => {
  const worker: FanoutOptions = { jwt: { secret: SECRET }, metrics: { cluster: true } }
  const options: ClusterMetricsOptions = { path: '/machine', timeout: 500 }
  // @ts-expect-error the timeout is a number of milliseconds
  const badTimeout: ClusterMetricsOptions = { timeout: '1s' }
  // @ts-expect-error metrics.cluster is a boolean
  const badCluster: FanoutOptions = { jwt: { secret: SECRET }, metrics: { cluster: 'yes' } }
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(clusterMetrics, options)
  t.ok(worker !== undefined && badTimeout !== undefined && badCluster !== undefined)
})
