import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import t from 'tap'
import { WebSocket } from 'ws'
import { token } from './helpers.js'
import { buildCentrifuge, JSON_WIRE_ONLY, rawClient, sdk, subscribed, subscription } from './centrifuge-helpers.js'

// The Centrifugo client protocol endpoint, driven by the real centrifuge-js SDK.

const seconds = (n: number): number => Math.floor(Date.now() / 1000) + n

t.test('the SDK connects with the token in its connect command and receives user messages as message events', async (t) => {
  const built = await buildCentrifuge(t)
  const { client, events } = sdk(t, built.sdkUrl, { token: token({ sub: 'alice' }) })
  client.connect()
  const connected = await events.next('connected')
  t.equal(connected.transport, 'websocket')
  t.match(connected.client, /\./, 'the connection id is the client id')
  t.equal(built.app.fanout.size, 1)
  t.equal(built.app.fanout.connectionsOf('alice').size, 1)
  const message = events.next('message')
  await built.app.fanout.sendToUser('alice', { hello: 'sdk' })
  t.same((await message).data, { hello: 'sdk' })
  const broadcast = events.next('message')
  await built.app.fanout.broadcast([1, 2, 3])
  t.same((await broadcast).data, [1, 2, 3], 'a plain broadcast reaches SDK clients as a message push')
})

t.test('a connect without a token gets 101, which the SDK takes as final', async (t) => {
  const built = await buildCentrifuge(t)
  const { client, events } = sdk(t, built.sdkUrl)
  client.connect()
  const disconnected = await events.next('disconnected')
  t.equal(disconnected.code, 101)
  t.equal(built.app.fanout.size, 0)
})

t.test('an invalid token closes with 3500, and the SDK stops', async (t) => {
  const built = await buildCentrifuge(t)
  const { client, events } = sdk(t, built.sdkUrl, { token: token({ sub: 'alice' }, 'another-secret-that-is-long-enough-32b') })
  client.connect()
  const disconnected = await events.next('disconnected')
  t.equal(disconnected.code, 3500)
  t.equal(disconnected.reason, 'invalid token')
})

t.test('an expired token gets 109: the SDK calls getToken and connects with the new one', async (t) => {
  const built = await buildCentrifuge(t)
  let calls = 0
  const { client, events } = sdk(t, built.sdkUrl, {
    token: token({ sub: 'alice', exp: seconds(-60) }),
    getToken: async () => { calls++; return token({ sub: 'alice', exp: seconds(60) }) }
  })
  client.connect()
  const error = await events.next('error')
  t.equal(error.type, 'connect')
  t.equal(error.error.code, 109)
  const connected = await events.next('connected')
  t.ok(connected.client)
  t.equal(calls, 1)
})

t.test('a token with exp makes the SDK refresh it before it ends; the connection lives on', async (t) => {
  const built = await buildCentrifuge(t, { jwt: { secret: 'test-secret-that-is-long-enough-for-hs256', verify: { clockTolerance: 0 } }, centrifuge: { refreshGrace: 0 } })
  let refreshed = 0
  const { client, events } = sdk(t, built.sdkUrl, {
    token: token({ sub: 'alice', exp: seconds(2) }),
    getToken: async () => { refreshed++; return token({ sub: 'alice', exp: seconds(60) }) }
  })
  client.connect()
  await events.next('connected')
  await new Promise((resolve) => setTimeout(resolve, 3500))
  t.equal(refreshed, 1, 'getToken was called once, for the refresh')
  t.equal(events.all('connecting').length, 1, 'never reconnected (only the first connecting)')
  t.equal(built.app.fanout.size, 1)
})

t.test('a token not refreshed in time closes with 3005 and the SDK reconnects', async (t) => {
  const built = await buildCentrifuge(t, { jwt: { secret: 'test-secret-that-is-long-enough-for-hs256', verify: { clockTolerance: 0 } }, centrifuge: { refreshGrace: 0 } })
  const { client, events } = sdk(t, built.sdkUrl, {
    // Two seconds, not one: `exp` is whole seconds, and a token minted late in
    // a second would have expired before connect (109, then a getToken that
    // never answers: no connection at all).
    token: token({ sub: 'alice', exp: seconds(2) }),
    getToken: async () => await new Promise<string>(() => {}) // never answers
  })
  client.connect()
  await events.next('connected')
  const connecting = await events.next('connecting', 2)
  t.equal(connecting.code, 3005)
})

t.test('a socket that sends no connect is closed with 3502 (stale)', JSON_WIRE_ONLY, async (t) => {
  const built = await buildCentrifuge(t)
  const raw = await rawClient(t, built.sdkUrl)
  const [code, reason] = await raw.closed
  t.equal(code, 3502)
  t.equal(reason, 'stale')
})

t.test('pings: the server sends {} and the SDK answers; a client that does not answer is closed with 3012', JSON_WIRE_ONLY, async (t) => {
  const built = await buildCentrifuge(t)
  const { client, events } = sdk(t, built.sdkUrl, { token: token() })
  client.connect()
  await events.next('connected')
  const raw = await rawClient(t, built.sdkUrl)
  raw.ws.send(JSON.stringify({ id: 1, connect: { token: token({ sub: 'bob' }) } }))
  const reply = JSON.parse(await raw.next())
  t.equal(reply.connect.ping, 1)
  t.equal(reply.connect.pong, true)
  t.equal(await raw.next(), '{}', 'a ping')
  const [code, reason] = await raw.closed
  t.equal(code, 3012)
  t.equal(reason, 'no pong')
  t.equal(events.all('connecting').length, 1, 'the SDK answered every ping and stayed connected')
})

t.test('batches: connect and subscribe in one frame are answered in order; a frame that is not the protocol closes with 3501', JSON_WIRE_ONLY, async (t) => {
  const built = await buildCentrifuge(t)
  const raw = await rawClient(t, built.sdkUrl)
  raw.ws.send(JSON.stringify({ id: 1, connect: { token: token() } }) + '\n' + JSON.stringify({ id: 2, subscribe: { channel: 'news' } }) + '\n' + JSON.stringify({ id: 3, frobnicate: {} }))
  t.match(JSON.parse(await raw.next()), { id: 1, connect: {} })
  t.match(JSON.parse(await raw.next()), { id: 2, subscribe: {} })
  t.match(JSON.parse(await raw.next()), { id: 3, error: { code: 104 } })
  raw.ws.send(JSON.stringify({ id: 4, subscribe: { channel: 'map', type: 1 } }) + '\n' + JSON.stringify({ id: 5, publish: { channel: 'news', data: {}, type: 1 } }))
  t.match(JSON.parse(await raw.next()), { id: 4, error: { code: 108 } }, 'map subscriptions are not served')
  t.match(JSON.parse(await raw.next()), { id: 5, error: { code: 108 } }, 'nor map publications')
  raw.ws.send('not json')
  const [code] = await raw.closed
  t.equal(code, 3501)
})

t.test('commands before connect close with 3501', JSON_WIRE_ONLY, async (t) => {
  const built = await buildCentrifuge(t)
  const raw = await rawClient(t, built.sdkUrl)
  raw.ws.send(JSON.stringify({ id: 1, subscribe: { channel: 'news' } }))
  const [code] = await raw.closed
  t.equal(code, 3501)
})

t.test('subprotocols: centrifuge-json is echoed, centrifuge-protobuf is spoken, one neither of ours is refused with 400', JSON_WIRE_ONLY, async (t) => {
  const built = await buildCentrifuge(t)
  const json = await rawClient(t, built.sdkUrl, ['centrifuge-json'])
  t.equal(json.ws.protocol, 'centrifuge-json')
  const both = await rawClient(t, built.sdkUrl, ['centrifuge-protobuf', 'centrifuge-json'])
  t.equal(both.ws.protocol, 'centrifuge-json', 'JSON when a client offers both')
  const protobuf = await rawClient(t, built.sdkUrl, ['centrifuge-protobuf'])
  t.equal(protobuf.ws.protocol, 'centrifuge-protobuf')
  const refused = new WebSocket(built.sdkUrl, ['mqtt', 'wamp.2.json'])
  refused.on('error', () => {}) // ws reports the refused handshake when it is torn down below
  const [, response] = await once(refused, 'unexpected-response') as [unknown, IncomingMessage]
  t.equal(response.statusCode, 400)
  let body = ''
  for await (const chunk of response) body += String(chunk)
  t.match(JSON.parse(body), {
    code: 'FST_FANOUT_UNSUPPORTED_SUBPROTOCOL',
    message: 'None of the offered WebSocket subprotocols ("mqtt, wamp.2.json") is spoken here: offer centrifuge-json or centrifuge-protobuf, or none'
  })
  refused.terminate()
  t.match(await built.app.inject('/metrics').then((response) => response.body), /fanout_connections_rejected_total\{reason="protocol"\} 1/)
})

t.test('a user over maxConnectionsPerUser is closed with 3504 (final)', async (t) => {
  const built = await buildCentrifuge(t, { maxConnectionsPerUser: 1 })
  const first = sdk(t, built.sdkUrl, { token: token() })
  first.client.connect()
  await first.events.next('connected')
  const second = sdk(t, built.sdkUrl, { token: token() })
  second.client.connect()
  const disconnected = await second.events.next('disconnected')
  t.equal(disconnected.code, 3504)
})

t.test('shutdown closes SDK clients with 3001, which they reconnect after', async (t) => {
  const built = await buildCentrifuge(t)
  const { client, events } = sdk(t, built.sdkUrl, { token: token() })
  client.connect()
  await events.next('connected')
  const closing = built.app.close()
  const connecting = await events.next('connecting', events.events.length)
  t.equal(connecting.code, 3001)
  t.equal(connecting.reason, 'shutdown')
  await closing
  client.disconnect()
})

t.test('channels: subscribers get publications from clients and from the server, with the publisher in info', async (t) => {
  const built = await buildCentrifuge(t)
  const alice = sdk(t, built.sdkUrl, { token: token({ sub: 'alice', info: { name: 'Alice' } }) })
  const bob = sdk(t, built.sdkUrl, { token: token({ sub: 'bob' }) })
  alice.client.connect()
  bob.client.connect()
  const a = await subscribed(alice.client, 'chat:room')
  const b = await subscribed(bob.client, 'chat:room')
  const received = b.events.next('publication')
  await a.sub.publish({ text: 'hi' })
  const publication = await received
  t.same(publication.data, { text: 'hi' })
  t.equal(publication.info.user, 'alice')
  t.same(publication.info.connInfo, { name: 'Alice' })
  t.equal(publication.offset, 1)
  const fromServer = b.events.next('publication', b.events.events.length)
  const result = await built.app.fanout.publish('chat:room', { text: 'from the server' })
  t.equal(result.offset, 2)
  t.same((await fromServer).data, { text: 'from the server' })
})

t.test('subscribe errors: unknown namespace 102, token required 103, channel limit 106, publish not allowed 103', async (t) => {
  const built = await buildCentrifuge(t, { channels: { maxPerConnection: 2 } })
  const { client } = sdk(t, built.sdkUrl, { token: token() })
  client.connect()
  const unknown = subscription(client, 'nowhere:x')
  unknown.sub.subscribe()
  t.equal((await unknown.events.next('unsubscribed')).code, 102)
  const locked = subscription(client, 'private:x')
  locked.sub.subscribe()
  t.equal((await locked.events.next('unsubscribed')).code, 103)
  const one = subscription(client, 'news')
  const two = subscription(client, 'chat:a')
  const three = subscription(client, 'chat:b')
  one.sub.subscribe()
  two.sub.subscribe()
  await one.events.next('subscribed')
  await two.events.next('subscribed')
  three.sub.subscribe()
  t.equal((await three.events.next('unsubscribed')).code, 106)
  await t.rejects(one.sub.publish('x'), { code: 103 }, 'the default namespace does not let clients publish')
})

t.test('a subscription token admits to a token-only namespace; its user and channel must match', async (t) => {
  const built = await buildCentrifuge(t)
  const { client } = sdk(t, built.sdkUrl, { token: token({ sub: 'alice' }) })
  client.connect()
  await subscribed(client, 'private:x', { token: token({ sub: 'alice', channel: 'private:x' }) })
  const wrongUser = subscription(client, 'private:y', { token: token({ sub: 'bob', channel: 'private:y' }) })
  wrongUser.sub.subscribe()
  t.equal((await wrongUser.events.next('unsubscribed')).code, 103)
  const wrongChannel = subscription(client, 'private:z', { token: token({ sub: 'alice', channel: 'private:x' }) })
  wrongChannel.sub.subscribe()
  t.equal((await wrongChannel.events.next('unsubscribed')).code, 103)
})

t.test('recovery on the embedded backplane: a client that reconnects gets exactly what it missed', async (t) => {
  const built = await buildCentrifuge(t)
  const { client } = sdk(t, built.sdkUrl, { token: token() })
  client.connect()
  const { sub, events } = subscription(client, 'chat:room')
  sub.subscribe()
  const first = await events.next('subscribed')
  t.equal(first.recoverable, true)
  t.equal(first.positioned, true)
  await built.app.fanout.publish('chat:room', 'one')
  await events.next('publication')
  // Drop the transport: the SDK reconnects and resubscribes with recover.
  for (const connection of built.app.fanout.connections()) connection.close(3000, 'test reconnect')
  await events.next('subscribing', events.events.length)
  await built.app.fanout.publish('chat:room', 'two')
  await built.app.fanout.publish('chat:room', 'three')
  const again = await events.next('subscribed', events.events.length)
  t.equal(again.wasRecovering, true)
  t.equal(again.recovered, true)
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.same(events.all('publication').map((p) => [p.data, p.offset]), [['one', 1], ['two', 2], ['three', 3]], 'every publication once, in order')
})

t.test('presence, presence stats, join and leave', async (t) => {
  const built = await buildCentrifuge(t)
  const alice = sdk(t, built.sdkUrl, { token: token({ sub: 'alice' }) })
  const bob = sdk(t, built.sdkUrl, { token: token({ sub: 'bob' }) })
  alice.client.connect()
  bob.client.connect()
  const a = await subscribed(alice.client, 'chat:room', { joinLeave: true })
  const joined = a.events.next('join')
  const b = await subscribed(bob.client, 'chat:room')
  t.equal((await joined).info.user, 'bob')
  const presence = await a.sub.presence()
  t.same(Object.values(presence.clients).map((info: any) => info.user).sort(), ['alice', 'bob'])
  t.same(await a.sub.presenceStats(), { numClients: 2, numUsers: 2 })
  t.same(await built.app.fanout.presenceStats('chat:room'), { numClients: 2, numUsers: 2 })
  const left = a.events.next('leave')
  b.sub.unsubscribe()
  t.equal((await left).info.user, 'bob')
})

t.test('history from the SDK and from the decorator', async (t) => {
  const built = await buildCentrifuge(t)
  const { client } = sdk(t, built.sdkUrl, { token: token() })
  client.connect()
  const { sub } = await subscribed(client, 'chat:h')
  for (const n of [1, 2, 3]) await built.app.fanout.publish('chat:h', n)
  const history = await sub.history({ limit: 2, reverse: true })
  t.same(history.publications.map((p: any) => p.data), [3, 2])
  t.equal(history.offset, 3)
  const page = await built.app.fanout.history('chat:h', { limit: -1 })
  t.same(page.publications.map((p) => JSON.parse(String(p.data))), [1, 2, 3])
})

t.test('server-side subscriptions from the channels claim', async (t) => {
  const built = await buildCentrifuge(t)
  const { client, events } = sdk(t, built.sdkUrl, { token: token({ sub: 'alice', channels: ['chat:news'] }) })
  client.connect()
  const subscribed = await events.next('subscribed')
  t.equal(subscribed.channel, 'chat:news')
  const publication = events.next('publication')
  await built.app.fanout.publish('chat:news', 'server-side')
  t.equal((await publication).data, 'server-side')
  t.equal((await publication).channel, 'chat:news')
})

t.test('the /ws endpoint is unchanged next to it', async (t) => {
  const built = await buildCentrifuge(t)
  const { connect, nextMessage } = await import('./helpers.js')
  const ws = await connect(t, built.wsUrl)
  const { client, events } = sdk(t, built.sdkUrl, { token: token() })
  client.connect()
  await events.next('connected')
  const sdkMessage = events.next('message')
  await built.app.fanout.broadcast('both')
  t.equal((await nextMessage(ws)).data, 'both')
  t.equal((await sdkMessage).data, 'both')
  ws.close()
  await once(ws, 'close')
})

t.test('the app subscribes and unsubscribes a user on the server side; disconnectUser closes SDK clients with 3503', async (t) => {
  const built = await buildCentrifuge(t)
  const { client, events } = sdk(t, built.sdkUrl, { token: token({ sub: 'alice' }) })
  client.connect()
  await events.next('connected')
  const result = await built.app.fanout.subscribe('alice', 'chat:ops')
  t.equal(result.subscribed, 1)
  const subscribed = await events.next('subscribed')
  t.equal(subscribed.channel, 'chat:ops')
  const publication = events.next('publication')
  await built.app.fanout.publish('chat:ops', 'to server-side subscribers')
  t.equal((await publication).data, 'to server-side subscribers')
  const unsubscribed = events.next('unsubscribed')
  await built.app.fanout.unsubscribe('alice', 'chat:ops')
  t.equal((await unsubscribed).channel, 'chat:ops')
  await t.rejects(built.app.fanout.subscribe('alice', 'nowhere:x'), { code: 'FST_FANOUT_INVALID_ARGUMENT' })
  const disconnected = events.next('disconnected')
  await built.app.fanout.disconnectUser('alice')
  t.equal((await disconnected).code, 3503)
})

t.test('metrics: subscriptions, channels, publications, recoveries, command errors and SDK close codes', async (t) => {
  const built = await buildCentrifuge(t)
  const { sample } = await import('./helpers.js')
  const { client } = sdk(t, built.sdkUrl, { token: token() })
  client.connect()
  await subscribed(client, 'chat:m')
  const unknown = subscription(client, 'nowhere:m')
  unknown.sub.subscribe()
  await unknown.events.next('unsubscribed')
  await built.app.fanout.publish('chat:m', 1)
  await built.app.fanout.publish('news', 2)
  const text = await built.app.fanout.metricsRegistry.metrics()
  t.equal(sample(text, 'fanout_subscriptions'), 1)
  t.equal(sample(text, 'fanout_channels'), 1)
  t.equal(sample(text, 'fanout_channel_publications_total', 'history="true"'), 1)
  t.equal(sample(text, 'fanout_channel_publications_total', 'history="false"'), 1)
  t.equal(sample(text, 'fanout_command_errors_total', 'code="102"'), 1)
  const raw = await rawClient(t, built.sdkUrl)
  await raw.closed
  t.equal(sample(await built.app.fanout.metricsRegistry.metrics(), 'fanout_connections_rejected_total', 'reason="stale"'), 1, 'stale connections are counted as refused')
  client.disconnect()
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(sample(await built.app.fanout.metricsRegistry.metrics(), 'fanout_subscriptions'), 0, 'a closed connection\'s subscriptions end')
})

t.test('each endpoint holds its clients to its own frame limit: 64 KiB here, maxPayload (4 KiB) on /ws', async (t) => {
  const built = await buildCentrifuge(t)
  const { connect } = await import('./helpers.js')
  const { client } = sdk(t, built.sdkUrl, { token: token() })
  client.connect()
  const { sub, events } = await subscribed(client, 'chat:big')
  const published = events.next('publication')
  await sub.publish({ text: 'x'.repeat(20_000) })
  t.equal((await published).data.text.length, 20_000, 'a 20 KB publication passes on this endpoint')
  const ws = await connect(t, built.wsUrl)
  const closed = once(ws, 'close')
  ws.send('x'.repeat(5000))
  t.equal((await closed)[0], 1009, '/ws keeps its 4 KiB limit')
  const raw = await rawClient(t, built.sdkUrl)
  raw.ws.send('x'.repeat(70_000))
  t.equal((await raw.closed)[0], 1009, 'past 64 KiB: 1009')
})

t.test('commands piling up behind a slow one are bounded: past 1024 waiting, close 3013', JSON_WIRE_ONLY, async (t) => {
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const built = await buildCentrifuge(t, {
    inbound: false,
    channels: { namespaces: { slow: { subscribe: async () => { await gate; return true } } } }
  })
  t.teardown(release)
  const raw = await rawClient(t, built.sdkUrl)
  raw.ws.send(JSON.stringify({ id: 1, connect: { token: token() } }))
  t.match(JSON.parse(await raw.next()), { id: 1, connect: {} })
  raw.ws.send(JSON.stringify({ id: 2, subscribe: { channel: 'slow:x' } }))
  const batch = Array.from({ length: 200 }, (_, i) => JSON.stringify({ id: 3 + i, ping: {} })).join('\n')
  for (let i = 0; i < 6; i++) raw.ws.send(batch)
  const [code, reason] = await raw.closed
  t.equal(code, 3013)
  t.equal(reason, 'too many requests')
})
