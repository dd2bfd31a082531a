import { once } from 'node:events'
import t from 'tap'
import { Socket } from 'node:net'
import { WebSocket } from 'ws'
import { decodeEnvelope } from '../lib/backplane/codec.js'
import { token, until } from './helpers.js'
import { buildCentrifuge, rawClient, sdk, subscribed, subscription } from './centrifuge-helpers.js'
import { inspector, randomPrefix, startRedis } from './redis-helpers.js'

// Defects a review of the Centrifugo endpoint found, each with the test that failed before its fix.

t.test('a socket whose connect failed, or that only sent a pong, is still stale after connectTimeout and counts against maxConnections', async (t) => {
  const built = await buildCentrifuge(t, { maxConnections: 3 })
  const pong = await rawClient(t, built.sdkUrl)
  pong.ws.send('{}')
  const anonymous = await rawClient(t, built.sdkUrl)
  anonymous.ws.send(JSON.stringify({ id: 1, connect: {} }))
  t.match(JSON.parse(await anonymous.next()), { id: 1, error: { code: 101 } })
  await rawClient(t, built.sdkUrl)
  const fourth = new WebSocket(built.sdkUrl)
  const [, response] = await once(fourth, 'unexpected-response') as [unknown, { statusCode: number, destroy: () => void }]
  response.destroy() // ws leaves a refused handshake's response to whoever listens for it
  t.equal(response.statusCode, 503, 'three unidentified sockets fill an instance of three')
  t.equal((await pong.closed)[0], 3502)
  t.equal((await anonymous.closed)[0], 3502)
})

t.test('a client that asks for replies and does not read them is closed as a slow consumer, not buffered without end', async (t) => {
  const built = await buildCentrifuge(t, { maxBufferedBytes: 64 * 1024, inbound: false })
  for (let i = 0; i < 100; i++) await built.app.fanout.publish('chat:big', 'x'.repeat(1000))
  const socket = new Socket()
  t.teardown(() => { socket.destroy() })
  const { port } = new URL(built.sdkUrl)
  socket.connect(Number(port), '127.0.0.1')
  await once(socket, 'connect')
  socket.write('GET /connection/websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
  await once(socket, 'data')
  socket.pause() // reads nothing more
  const { clientFrame } = await import('./frames.js')
  const history = Array.from({ length: 200 }, (_, i) => JSON.stringify({ id: 3 + i, history: { channel: 'chat:big', limit: -1 } })).join('\n')
  socket.write(clientFrame(JSON.stringify({ id: 1, connect: { token: token() } }) + '\n' + JSON.stringify({ id: 2, subscribe: { channel: 'chat:big' } })))
  for (let i = 0; i < 5; i++) socket.write(clientFrame(history))
  await until(() => built.app.fanout.size === 1, 'the connection to be identified')
  await until(() => built.app.fanout.size === 0, 'the connection to be closed', 10_000)
  const { sample } = await import('./helpers.js')
  t.ok((sample(await built.app.fanout.metricsRegistry.metrics(), 'fanout_disconnects_total', 'code="3008"') ?? 0) >= 1, 'closed with 3008')
})

t.test('an async onSend that rejects is logged, and the connection goes on', async (t) => {
  const built = await buildCentrifuge(t, { centrifuge: { onSend: async () => { throw new Error('app failure') } } })
  const { client, events } = sdk(t, built.sdkUrl, { token: token() })
  client.connect()
  await events.next('connected')
  await client.send({ n: 1 })
  t.same(await client.rpc('x', {}).catch((err: { code: number }) => err.code), 104, 'the next command is answered')
  t.equal(built.app.fanout.size, 1)
})

t.test('joinLeave without presence announces joins and leaves', async (t) => {
  const built = await buildCentrifuge(t, { channels: { namespaces: { room: { joinLeave: true, forcePushJoinLeave: true } } } })
  const alice = sdk(t, built.sdkUrl, { token: token({ sub: 'alice' }) })
  const bob = sdk(t, built.sdkUrl, { token: token({ sub: 'bob' }) })
  alice.client.connect()
  bob.client.connect()
  const mine = await subscribed(alice.client, 'room:1')
  const joined = mine.events.next('join')
  const theirs = await subscribed(bob.client, 'room:1')
  t.equal((await joined).info.user, 'bob')
  const left = mine.events.next('leave')
  theirs.sub.unsubscribe()
  t.equal((await left).info.user, 'bob')
})

t.test('a hook that never settles is answered with a temporary 100 after hookTimeout; later commands go on', async (t) => {
  const built = await buildCentrifuge(t, {
    centrifuge: { hookTimeout: 200 },
    channels: { namespaces: { hung: { subscribe: async () => await new Promise<boolean>(() => {}) } } }
  })
  const { client } = sdk(t, built.sdkUrl, { token: token() })
  client.connect()
  const hung = subscription(client, 'hung:x')
  hung.sub.subscribe()
  const error = await hung.events.next('error')
  t.equal(error.error.code, 100)
  t.equal(error.error.temporary, true)
  await subscribed(client, 'chat:after')
  hung.sub.unsubscribe()
})

t.test('connection.close() without a code closes SDK clients with 3503', async (t) => {
  const built = await buildCentrifuge(t)
  const { client, events } = sdk(t, built.sdkUrl, { token: token() })
  client.connect()
  await events.next('connected')
  for (const connection of built.app.fanout.connections()) connection.close()
  t.equal((await events.next('disconnected')).code, 3503)
})

t.test('subscribing to fresh channel names leaves streams that live historyTtl, not historyMetaTtl', async (t) => {
  const redis = await startRedis(t)
  const prefix = randomPrefix()
  const built = await buildCentrifuge(t, { redis: redis.url, channelPrefix: prefix })
  const { client } = sdk(t, built.sdkUrl, { token: token() })
  client.connect()
  await subscribed(client, 'chat:fresh')
  const inspect = inspector(t, redis.port)
  const ttl = await inspect.pttl(`${prefix}history-meta:{c:chat:fresh}`)
  t.ok(ttl > 0 && ttl <= 300_000, `read-created meta lives historyTtl (${ttl} ms)`)
  await built.app.fanout.publish('chat:fresh', 1)
  t.ok(await inspect.pttl(`${prefix}history-meta:{c:chat:fresh}`) > 300_000, 'the first publication gives it historyMetaTtl')
})

t.test('the codec refuses envelopes a protocol could not write: join/leave without info, offsets below 1', async (t) => {
  t.equal(decodeEnvelope(Buffer.from('{"v":2,"id":"x","ch":"c","p":"join"}\n')), null)
  t.equal(decodeEnvelope(Buffer.from('{"v":2,"id":"x","ch":"c","o":0,"e":"e"}\n1')), null)
  t.equal(decodeEnvelope(Buffer.from('{"v":2,"id":"x","ch":"c","o":-3,"e":"e"}\n1')), null)
  t.ok(decodeEnvelope(Buffer.from('{"v":2,"id":"x","ch":"c","o":1,"e":"e"}\n1')))
})

t.test('a channel SUBSCRIBE that Redis refuses fails the subscribe (temporary) and is sent again, instead of leaving the instance deaf', async (t) => {
  const redis = await startRedis(t)
  const prefix = randomPrefix()
  const inspect = inspector(t, redis.port)
  // Allowed every channel of the plugin but those of channels: SUBSCRIBE chat:x is refused (NOPERM).
  await inspect.call('ACL', 'SETUSER', 'app', 'on', '>app-password', '~*', '+@all', 'resetchannels', `&${prefix}all`, `&${prefix}instance:*`, `&${prefix}user:*`)
  const built = await buildCentrifuge(t, { redis: `redis://app:app-password@127.0.0.1:${redis.port}`, channelPrefix: prefix })
  const { client } = sdk(t, built.sdkUrl, { token: token() })
  client.connect()
  const { sub, events } = subscription(client, 'chat:x')
  sub.subscribe()
  const error = await events.next('error')
  t.equal(error.error.code, 100, 'a temporary error: the SDK tries again')
  await inspect.call('ACL', 'SETUSER', 'app', 'allchannels')
  await events.next('subscribed')
  const received = events.next('publication')
  await built.app.fanout.publish('chat:x', 'heard')
  t.equal((await received).data, 'heard', 'the instance receives the channel')
})
