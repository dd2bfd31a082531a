import type { Socket } from 'node:net'
import t, { type Test } from 'tap'
import type { WebSocket } from 'ws'
import { encodeHeader } from '../lib/backplane/codec.js'
import { RedisHistory } from '../lib/backplane/redis-history.js'
import { SECRET, token, until } from './helpers.js'
import { buildCentrifuge, rawClient, sdk, subscribed, subscription, wire, type Recorder } from './centrifuge-helpers.js'
import { inspector, randomPrefix, startRedis } from './redis-helpers.js'

// Centrifugo client-protocol behaviour that test/centrifuge.test.ts does not
// reach: channel permissions ($ private, # user-limited), stream positions
// (flag 2, since, holes), token refresh of subscriptions, RPC and send hooks,
// and the endpoint's limits as the client sees them (close codes).

const seconds = (n: number): number => Math.floor(Date.now() / 1000) + n

/** A test JWT setup where `exp` means exactly `exp`: no tolerance, no grace. */
const exact = { jwt: { secret: SECRET, verify: { clockTolerance: 0 } }, centrifuge: { connectTimeout: 500, refreshGrace: 0 } }

/** A raw client that has sent `connect` and read its reply. */
async function connected (t: Test, url: string, jwt = token()): Promise<Awaited<ReturnType<typeof rawClient>>> {
  const raw = await rawClient(t, url)
  raw.ws.send(JSON.stringify({ id: 1, connect: { token: jwt } }))
  const reply = JSON.parse(await raw.next())
  if (reply.connect === undefined) throw new Error(`connect failed: ${JSON.stringify(reply)}`)
  return raw
}

/** The next line that is a reply (not a ping or a push). */
async function nextReply (raw: Awaited<ReturnType<typeof rawClient>>): Promise<any> {
  for (;;) {
    const line = JSON.parse(await raw.next())
    if (line.id !== undefined) return line
  }
}

/** How a subscription attempt ended: subscribed, or unsubscribed with its code. */
async function outcome (events: Recorder): Promise<'subscribed' | number> {
  const from = events.events.length
  return await Promise.race([
    events.next('subscribed', from).then(() => 'subscribed' as const),
    events.next('unsubscribed', from).then((ctx) => ctx.code as number)
  ])
}

function tcp (ws: WebSocket): Socket {
  return (ws as unknown as { _socket: Socket })._socket
}

t.test('$ private channels: only a subscription token admits, whatever the namespace allows', async (t) => {
  const built = await buildCentrifuge(t)
  const { client } = sdk(t, built.sdkUrl, { token: token({ sub: 'alice' }) })
  client.connect()
  // The default namespace and chat both let any user subscribe, but not with the private prefix.
  for (const channel of ['$secret', '$chat:x']) {
    const denied = subscription(client, channel)
    denied.sub.subscribe()
    t.equal(await outcome(denied.events), 103, `${channel} without a token`)
  }
  const admitted = subscription(client, '$chat:y', { token: token({ sub: 'alice', channel: '$chat:y' }) })
  admitted.sub.subscribe()
  t.equal(await outcome(admitted.events), 'subscribed', 'with its token')
  const otherChannel = subscription(client, '$chat:z', { token: token({ sub: 'alice', channel: '$chat:y' }) })
  otherChannel.sub.subscribe()
  t.equal(await outcome(otherChannel.events), 103, "another channel's token")
})

t.test('user-limited channels: the users after # subscribe without a token; others get 103 unless a token admits them', async (t) => {
  const built = await buildCentrifuge(t, {
    channels: { default: { userLimited: true }, namespaces: { dialog: { userLimited: true }, locked: { userLimited: true, subscribe: 'token' } } }
  })
  const alice = sdk(t, built.sdkUrl, { token: token({ sub: 'alice' }) })
  const carol = sdk(t, built.sdkUrl, { token: token({ sub: 'carol' }) })
  alice.client.connect()
  carol.client.connect()

  const mine = subscription(alice.client, 'dialog#alice,bob')
  mine.sub.subscribe()
  t.equal(await outcome(mine.events), 'subscribed', 'alice, listed, subscribes')
  const theirs = subscription(carol.client, 'dialog#alice,bob')
  theirs.sub.subscribe()
  t.equal(await outcome(theirs.events), 103, 'carol, not listed, gets 103')

  const locked = subscription(alice.client, 'locked:room#bob,alice')
  locked.sub.subscribe()
  t.equal(await outcome(locked.events), 'subscribed', "a listed user needs no token even where the namespace's subscribe is 'token'")
  const lockedOut = subscription(carol.client, 'locked:room#bob,alice')
  lockedOut.sub.subscribe()
  t.equal(await outcome(lockedOut.events), 103, 'nor does anyone else get in there without one')

  const invited = subscription(carol.client, 'dialog:x#alice,bob', { token: token({ sub: 'carol', channel: 'dialog:x#alice,bob' }) })
  invited.sub.subscribe()
  t.equal(await outcome(invited.events), 'subscribed', 'a valid subscription token admits a user who is not listed')

  const plain = subscription(carol.client, 'chat:room#alice')
  plain.sub.subscribe()
  t.equal(await outcome(plain.events), 'subscribed', '# limits nothing in a namespace that is not user-limited')
  const namespaced = subscription(carol.client, 'dialog:y#alice')
  namespaced.sub.subscribe()
  t.equal(await outcome(namespaced.events), 103, 'the same rule in a user-limited namespace')
})

t.test('getState (flag 2): an unrecoverable position is error 112, and the SDK loads its state again', async (t) => {
  const built = await buildCentrifuge(t)
  const first = await built.app.fanout.publish('chat:state', 'one')
  const recorded = wire()
  const { client } = sdk(t, built.sdkUrl, { token: token(), websocket: recorded.WebSocket })
  client.connect()
  const positions = [{ offset: 0, epoch: 'lost-epoch' }, { offset: 1, epoch: first.epoch as string }]
  let calls = 0
  const { sub, events } = subscription(client, 'chat:state', { getState: async () => positions[calls++] as { offset: number, epoch: string } })
  sub.subscribe()
  const subscribed = await events.next('subscribed')
  t.equal(calls, 2, 'getState ran again after 112')
  t.equal(subscribed.wasRecovering, true)
  t.equal(subscribed.recovered, true, 'recovered from the position of the second getState')
  t.same(subscribed.streamPosition, { offset: 1, epoch: first.epoch })
  const subscribes = recorded.sent.flatMap((frame) => frame.split('\n')).map((line) => JSON.parse(line)).filter((command) => command.subscribe !== undefined)
  t.match(subscribes[0], { subscribe: { channel: 'chat:state', recover: true, epoch: 'lost-epoch', flag: 3 } }, 'flag 3: compaction and reject-unrecovered')
  const refused = recorded.lines().map((line) => JSON.parse(line)).find((reply) => reply.id === subscribes[0].id)
  t.same(refused.error, { code: 112, message: 'unrecoverable position' })

  // Without getState (no flag 2) the same position is answered, unrecovered.
  const plain = subscription(client, 'chat:state2', { since: { offset: 5, epoch: 'lost-epoch' } })
  plain.sub.subscribe()
  const unrecovered = await plain.events.next('subscribed')
  t.equal(unrecovered.wasRecovering, true)
  t.equal(unrecovered.recovered, false)
  t.not(unrecovered.streamPosition.epoch, 'lost-epoch')
})

t.test('subscription tokens with exp: sub_refresh through getToken keeps one; one not refreshed gets unsubscribe 2501 and the SDK subscribes again', async (t) => {
  const built = await buildCentrifuge(t, exact)
  const recorded = wire()
  const { client } = sdk(t, built.sdkUrl, { token: token({ sub: 'alice' }), websocket: recorded.WebSocket })
  client.connect()
  // Two seconds: a token minted late in a second with exp one second on could
  // already have expired at subscribe (109), which this test is not about.
  const exp = seconds(2)

  const refreshedCalls: unknown[] = []
  const refreshed = subscription(client, 'private:a', {
    token: token({ sub: 'alice', channel: 'private:a', exp }),
    getToken: async (ctx) => { refreshedCalls.push(ctx); return token({ sub: 'alice', channel: 'private:a', exp: seconds(60) }) }
  })
  let lapsedCalls = 0
  const lapsed = subscription(client, 'private:b', {
    token: token({ sub: 'alice', channel: 'private:b', exp }),
    getToken: async () => {
      // The refresh never answers; the token asked for after 109 does.
      if (lapsedCalls++ === 0) return await new Promise<string>(() => {})
      return token({ sub: 'alice', channel: 'private:b', exp: seconds(60) })
    }
  })
  refreshed.sub.subscribe()
  lapsed.sub.subscribe()
  // From 0: both replies may come in one frame, before either wait starts.
  await refreshed.events.next('subscribed', 0)
  await lapsed.events.next('subscribed', 0)
  const afterFirst = lapsed.events.events.findIndex(([name]) => name === 'subscribed') + 1

  const resubscribing = await lapsed.events.next('subscribing', afterFirst)
  t.equal(resubscribing.code, 2501)
  t.equal(resubscribing.reason, 'subscription expired')
  await lapsed.events.next('subscribed', afterFirst)
  t.equal(lapsedCalls, 2, 'the SDK got a new token after the old one was refused (109)')
  const lines = recorded.lines().map((line) => JSON.parse(line))
  t.ok(lines.some((line) => line.push?.channel === 'private:b' && line.push.unsubscribe?.code === 2501), 'the unsubscribe push')
  t.ok(lines.some((line) => line.error?.code === 109), 'the expired token was answered 109')

  t.same(refreshedCalls, [{ channel: 'private:a' }], 'getToken got the channel')
  const commands = recorded.sent.flatMap((frame) => frame.split('\n')).map((line) => JSON.parse(line))
  t.ok(commands.some((command) => command.sub_refresh?.channel === 'private:a'), 'sub_refresh was sent')
  t.same(refreshed.events.all('subscribing').length, 1, 'the refreshed subscription outlived its first token, never resubscribing')
  t.notOk(lines.some((line) => line.push?.channel === 'private:a' && line.push.unsubscribe !== undefined))
})

t.test('rpc without onRpc and an unknown method get 104', async (t) => {
  const built = await buildCentrifuge(t)
  const { client } = sdk(t, built.sdkUrl, { token: token() })
  client.connect()
  await t.rejects(client.rpc('anything', {}), { code: 104, message: 'method not found' })
  const raw = await connected(t, built.sdkUrl)
  raw.ws.send(JSON.stringify({ id: 7, frobnicate: { channel: 'x' }, extra: 1 }))
  t.same(await nextReply(raw), { id: 7, error: { code: 104, message: 'method not found' } })
})

t.test('onRpc answers rpc (an error with a code of 400-1999 is that error, any other failure a temporary 100); onSend receives send', async (t) => {
  let sent: (value: [string, unknown]) => void
  const received = new Promise<[string, unknown]>((resolve) => { sent = resolve })
  const built = await buildCentrifuge(t, {
    centrifuge: {
      onRpc: async (connection, method, data) => {
        if (method === 'fail') throw new Error('rpc handler failed')
        if (method === 'refuse') throw Object.assign(new Error('no such order'), { code: 404 })
        if (method === 'nothing') return undefined
        return { user: connection.userId, method, data }
      },
      onSend: (connection, data) => { sent([connection.userId, data]) }
    }
  })
  const { client } = sdk(t, built.sdkUrl, { token: token({ sub: 'alice' }) })
  client.connect()
  t.same(await client.rpc('echo', { n: [1, 2] }), { data: { user: 'alice', method: 'echo', data: { n: [1, 2] } } })
  t.same(await client.rpc('nothing', null), { data: undefined })
  await t.rejects(client.rpc('fail', {}), { code: 100, temporary: true })
  await t.rejects(client.rpc('refuse', {}), { code: 404, message: 'no such order', temporary: false }, 'an application error code reaches the client')
  await client.send({ hello: 'server' })
  t.same(await received, ['alice', { hello: 'server' }])
})

t.test('history: since with another epoch is 112; history and presence where the namespace keeps none are 108', async (t) => {
  const built = await buildCentrifuge(t)
  const { client } = sdk(t, built.sdkUrl, { token: token() })
  client.connect()
  const chat = await subscribed(client, 'chat:h')
  const first = await built.app.fanout.publish('chat:h', 1)
  await built.app.fanout.publish('chat:h', 2)
  await t.rejects(chat.sub.history({ limit: 10, since: { offset: 0, epoch: 'another' } }), { code: 112 })
  const since = await chat.sub.history({ limit: 10, since: { offset: 1, epoch: first.epoch as string } })
  t.same(since.publications.map((p: any) => p.data), [2], 'the right epoch: what came after the offset')

  const news = await subscribed(client, 'news')
  await t.rejects(news.sub.history({ limit: 1 }), { code: 108 })
  await t.rejects(news.sub.presence(), { code: 108 })
  await t.rejects(news.sub.presenceStats(), { code: 108 })
  await t.rejects(client.history('chat:other', { limit: 1 }), { code: 103 }, 'history of a channel not subscribed')
  await t.rejects(client.presence('nowhere:x'), { code: 102 }, 'an unknown namespace')
})

t.test('a client publication larger than centrifuge.maxPayload: ws closes with 1009, which the SDK takes as final', async (t) => {
  const built = await buildCentrifuge(t, { centrifuge: { connectTimeout: 500, maxPayload: 4096 } })
  const { client, events } = sdk(t, built.sdkUrl, { token: token() })
  client.connect()
  const { sub } = await subscribed(client, 'chat:big')
  const publishing = sub.publish('x'.repeat(5000))
  const disconnected = await events.next('disconnected')
  t.same(disconnected, { code: 3, reason: 'message size limit exceeded' })
  await t.rejects(publishing)
  await until(() => built.app.fanout.size === 0, 'the server to drop the connection')
})

t.test('raw answers: 105 for a second subscribe, {} for unsubscribing what is not subscribed, 3500 for a refresh as another user', async (t) => {
  const built = await buildCentrifuge(t)
  const raw = await connected(t, built.sdkUrl, token({ sub: 'alice' }))
  raw.ws.send([
    JSON.stringify({ id: 2, subscribe: { channel: 'news' } }),
    JSON.stringify({ id: 3, subscribe: { channel: 'news' } }),
    JSON.stringify({ id: 4, unsubscribe: { channel: 'never' } }),
    JSON.stringify({ id: 5, refresh: { token: token({ sub: 'mallory' }) } })
  ].join('\n'))
  t.same(await nextReply(raw), { id: 2, subscribe: {} })
  t.same(await nextReply(raw), { id: 3, error: { code: 105, message: 'already subscribed' } })
  t.same(await nextReply(raw), { id: 4, unsubscribe: {} })
  t.same(await raw.closed, [3500, 'invalid token'])
})

t.test('the inbound budget: a flood of commands closes with 3013, a code the SDK reconnects after', async (t) => {
  // closeTimeout: the server stops reading a flooder, so its socket goes when the close handshake times out.
  const built = await buildCentrifuge(t, { inbound: { messages: 20, bytes: 65536 }, closeTimeout: 200 })
  const raw = await connected(t, built.sdkUrl)
  for (let id = 2; id < 100 && raw.ws.readyState === raw.ws.OPEN; id++) raw.ws.send(JSON.stringify({ id, ping: {} }))
  t.same(await raw.closed, [3013, 'too many requests'])
})

t.test('a message left unfinished for messageTimeout closes with 3501', async (t) => {
  // Pings every 250 ms make housekeeping tick that often; the client's own pings keep it alive.
  const built = await buildCentrifuge(t, { messageTimeout: 200, heartbeatInterval: 250 })
  const raw = await connected(t, built.sdkUrl)
  raw.ws.send('{"id":2,"ping"', { fin: false })
  const keepAlive = setInterval(() => { raw.ws.ping() }, 50)
  t.teardown(() => { clearInterval(keepAlive) })
  const started = Date.now()
  t.same(await raw.closed, [3501, 'bad request'])
  t.ok(Date.now() - started < 2000, `closed after ${Date.now() - started} ms`)
})

const BOUND = 64 * 1024
const MESSAGE = 'x'.repeat(16 * 1024)

/** A raw subscriber of `channel` that stops reading; publishes until the server gives up on it. */
async function stall (t: Test, built: Awaited<ReturnType<typeof buildCentrifuge>>, channel: string): Promise<Awaited<ReturnType<typeof rawClient>>> {
  const raw = await connected(t, built.sdkUrl)
  raw.ws.send(JSON.stringify({ id: 2, subscribe: { channel } }))
  t.match(await nextReply(raw), { id: 2, subscribe: {} })
  tcp(raw.ws).pause()
  let dropped = 0
  for (let sent = 0; dropped === 0 && sent < 4000; sent++) {
    dropped = (await built.app.fanout.publish(channel, MESSAGE)).dropped ?? 0
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(dropped, 1, 'a publication did not fit')
  tcp(raw.ws).resume()
  return raw
}

t.test('a slow consumer is closed with 3008', async (t) => {
  const built = await buildCentrifuge(t, { maxBufferedBytes: BOUND })
  const raw = await stall(t, built, 'news')
  t.same(await raw.closed, [3008, 'slow'])
})

t.test("with slowConsumer: 'drop', a positioned subscriber that misses a publication is closed with 3010", async (t) => {
  const built = await buildCentrifuge(t, { maxBufferedBytes: BOUND, slowConsumer: 'drop' })
  const raw = await stall(t, built, 'chat:slow')
  t.same(await raw.closed, [3010, 'insufficient state'])
})

t.test('a hole in the offsets of a positioned channel closes with 3010; the SDK comes back and recovers it from history', async (t) => {
  const redis = await startRedis(t)
  const prefix = randomPrefix()
  const built = await buildCentrifuge(t, { redis: redis.url, channelPrefix: prefix })
  const { client, events: clientEvents } = sdk(t, built.sdkUrl, { token: token() })
  client.connect()
  const { events } = await subscribed(client, 'chat:gap')
  const one = events.next('publication')
  await built.app.fanout.publish('chat:gap', 'one')
  t.equal((await one).offset, 1)

  // Offset 2 goes into the channel's history, as the publish script does, but
  // to a Pub/Sub channel no instance listens to: lost on the way, as Redis
  // Pub/Sub may lose a message. Offset 3 then arrives with a hole before it.
  const history = new RedisHistory(inspector(t, redis.port), prefix)
  const lost = await history.publish({
    channel: 'chat:gap',
    pubsubChannel: prefix + 'nowhere',
    sharded: false,
    header: encodeHeader({ id: 'lost', data: Buffer.from('"two"'), channel: 'chat:gap' }, true),
    data: '"two"',
    limits: { size: 100, ttl: 300_000, metaTtl: 2_592_000_000 }
  })
  t.equal(lost.position.offset, 2)
  t.equal(lost.receivers, 0)
  const reconnecting = clientEvents.next('connecting', clientEvents.events.length)
  const again = events.next('subscribed', events.events.length)
  await built.app.fanout.publish('chat:gap', 'three')
  t.match(await reconnecting, { code: 3010, reason: 'insufficient state' })

  t.equal((await again).wasRecovering, true)
  t.equal((await again).recovered, true)
  await until(() => events.all('publication').length === 3, 'the recovered publications')
  t.same(events.all('publication').map((p) => [p.data, p.offset]), [['one', 1], ['two', 2], ['three', 3]])
})
