import t, { type Test } from 'tap'
import type { WebSocket } from 'ws'
import { broadcast, build, connect, messages, nextMessage, serviceToken, token } from './helpers.js'

/** Resolves true if `ws` receives a message within a short grace period. */
async function receivesNothing (t: Test, ws: WebSocket, url: string): Promise<void> {
  // A marker to everyone after the message under test: frames on one socket
  // arrive in order, so seeing the marker first proves nothing else came.
  const next = nextMessage(ws)
  await broadcast(url, { data: 'marker' })
  t.equal((await next).data, 'marker', 'got nothing before the marker')
}

t.test('a broadcast reaches every client as {type, id, data} with the exact data', async (t) => {
  const { url, wsUrl } = await build(t)
  const clients = await Promise.all([connect(t, wsUrl, token({ sub: 'a' })), connect(t, wsUrl, token({ sub: 'b' })), connect(t, wsUrl, token({ sub: 'b' }))])
  const data = { text: 'héllo', n: 1.5, list: [1, null, true], nested: { deep: ['x'] } }
  const pending = clients.map(nextMessage)
  const response = await broadcast(url, { data })
  t.equal(response.status, 202)
  const summary = await response.json() as { id: string, delivered: number, dropped: number }
  t.equal(summary.delivered, 3)
  t.equal(summary.dropped, 0)
  for (const message of await Promise.all(pending)) {
    t.same(message, { type: 'message', id: summary.id, data })
  }
})

t.test('any JSON value is valid data, null included', async (t) => {
  const { url, wsUrl } = await build(t)
  const ws = await connect(t, wsUrl)
  for (const data of [null, 0, 'text', [], false]) {
    const next = nextMessage(ws)
    t.equal((await broadcast(url, { data })).status, 202)
    t.same((await next).data, data)
  }
})

t.test('users narrows a broadcast to those users; except skips users', async (t) => {
  const { url, wsUrl } = await build(t)
  const alice = await connect(t, wsUrl, token({ sub: 'alice' }))
  const alice2 = await connect(t, wsUrl, token({ sub: 'alice' }))
  const bob = await connect(t, wsUrl, token({ sub: 'bob' }))
  const carol = await connect(t, wsUrl, token({ sub: 'carol' }))

  const toAlice = [nextMessage(alice), nextMessage(alice2)]
  const res = await broadcast(url, { data: 'for alice', users: ['alice', 'alice', 'nobody'] })
  t.equal((await res.json() as { delivered: number }).delivered, 2, 'a user named twice gets one copy')
  for (const m of await Promise.all(toAlice)) t.equal(m.data, 'for alice')
  await receivesNothing(t, bob, url)
  await nextMessage(alice) // the marker
  await nextMessage(alice2)
  await nextMessage(carol)

  const notBob = [nextMessage(alice), nextMessage(carol)]
  const res2 = await broadcast(url, { data: 'not bob', except: ['bob'] })
  t.equal((await res2.json() as { delivered: number }).delivered, 3)
  for (const m of await Promise.all(notBob)) t.equal(m.data, 'not bob')
  await receivesNothing(t, bob, url)

  const res3 = await broadcast(url, { data: 'x', users: ['alice'], except: ['alice'] })
  t.equal((await res3.json() as { delivered: number }).delivered, 0, 'except wins over users')

  const single = nextMessage(bob)
  const res4 = await broadcast(url, { data: 'just bob', users: 'bob' })
  t.equal((await res4.json() as { delivered: number }).delivered, 1, 'a single string is a list of one')
  t.equal((await single).data, 'just bob')
})

t.test('messages from one publisher arrive in the order they were posted', async (t) => {
  const { app, wsUrl } = await build(t)
  const ws = await connect(t, wsUrl)
  const all = messages<number>(ws, 500)
  for (let i = 0; i < 500; i++) await app.fanout.broadcast(i)
  t.same((await all).map((m) => m.data), Array.from({ length: 500 }, (_, i) => i))
})

t.test('the broadcast route refuses what it cannot trust or parse', async (t) => {
  const { url } = await build(t, { bodyLimit: 1024 })

  const anonymous = await fetch(`${url}/broadcast`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"data":1}' })
  t.equal(anonymous.status, 401)
  t.equal((await anonymous.json() as { code: string }).code, 'FST_FANOUT_TOKEN_MISSING')

  const userToken = await broadcast(url, { data: 1 }, token({ sub: 'alice' }))
  t.equal(userToken.status, 403, 'a token without the scope')
  t.equal((await userToken.json() as { code: string }).code, 'FST_FANOUT_SCOPE_FORBIDDEN')
  t.match(userToken.headers.get('www-authenticate'), /insufficient_scope/)

  t.equal((await broadcast(url, { data: 1 }, serviceToken('read broadcastx'))).status, 403, 'scope names match whole words')
  t.equal((await broadcast(url, { data: 1 }, serviceToken('read broadcast write'))).status, 202, 'space-separated scopes')
  t.equal((await broadcast(url, { data: 1 }, token({ sub: 's', scope: ['broadcast'] }))).status, 202, 'array scopes')

  const badJson = await broadcast(url, '{"data":')
  t.equal(badJson.status, 400, 'malformed JSON')
  t.equal((await badJson.json() as { code: string }).code, 'FST_ERR_CTP_INVALID_JSON_BODY')

  const notJson = await fetch(`${url}/broadcast`, { method: 'POST', headers: { authorization: `Bearer ${serviceToken()}`, 'content-type': 'application/xml' }, body: '<data/>' })
  t.equal(notJson.status, 415)
  t.equal((await notJson.json() as { code: string }).code, 'FST_ERR_CTP_INVALID_MEDIA_TYPE')

  for (const [body, why] of [
    [{}, /data/],
    [{ data: 1, user: ['alice'] }, /property name|allowed values/],
    [{ data: 1, users: { id: 'alice' } }, /users/],
    [{ data: 1, except: [{}] }, /except/],
    [{ data: 1, users: [''] }, /users/],
    [[1, 2], /object/]
  ] as const) {
    const res = await broadcast(url, body)
    t.equal(res.status, 400, `${JSON.stringify(body)} is refused`)
    const answer = await res.json() as { code: string, message: string }
    t.equal(answer.code, 'FST_FANOUT_INVALID_BROADCAST')
    t.match(answer.message, why)
  }

  const big = await broadcast(url, { data: 'x'.repeat(2000) })
  t.equal(big.status, 413)
  t.equal((await big.json() as { code: string }).code, 'FST_ERR_CTP_BODY_TOO_LARGE')
})

t.test('scope and broadcast path are configurable; the route can be turned off', async (t) => {
  const { url } = await build(t, { broadcastScope: 'fanout:publish', broadcastPath: '/publish' })
  const res = await fetch(`${url}/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${serviceToken('fanout:publish')}`, 'content-type': 'application/json' },
    body: '{"data":1}'
  })
  t.equal(res.status, 202)
  const off = await build(t, { broadcastPath: false })
  t.equal((await broadcast(off.url, { data: 1 })).status, 404)
})

t.test('decorator: sendTo, sendToUser, broadcast, disconnectUser', async (t) => {
  const { app, wsUrl } = await build(t)
  const alice = await connect(t, wsUrl, token({ sub: 'alice' }))
  const bob = await connect(t, wsUrl, token({ sub: 'bob' }))
  const [aliceConnection] = [...app.fanout.connectionsOf('alice')]
  t.ok(aliceConnection)
  if (aliceConnection === undefined) return

  let next = nextMessage(alice)
  t.match(await app.fanout.sendTo(aliceConnection.id, { direct: true }), { delivered: 1, dropped: 0 })
  t.same((await next).data, { direct: true })

  next = nextMessage(bob)
  t.match(await app.fanout.sendToUser('bob', 'to bob'), { delivered: 1 })
  t.equal((await next).data, 'to bob')

  next = nextMessage(bob)
  t.match(await app.fanout.broadcast('all but alice', { except: ['alice'] }), { delivered: 1 })
  t.equal((await next).data, 'all but alice')

  next = nextMessage(alice)
  t.equal(aliceConnection.send('via connection'), true)
  t.equal((await next).data, 'via connection')

  t.match(await app.fanout.sendTo('no-such-connection', 1), { delivered: 0 })
  await t.rejects(app.fanout.broadcast(undefined), { code: 'FST_FANOUT_INVALID_MESSAGE' })
  await t.rejects(app.fanout.broadcast(10n), { code: 'FST_FANOUT_INVALID_MESSAGE' })
  await t.rejects(app.fanout.disconnectUser('alice', 1006), { code: 'FST_FANOUT_INVALID_CLOSE_CODE' })
  await t.rejects(app.fanout.disconnectUser('alice', 4000, 'x'.repeat(124)), { code: 'FST_FANOUT_INVALID_CLOSE_REASON' })
  t.throws(() => aliceConnection.close(4000, 'é'.repeat(62)), { code: 'FST_FANOUT_INVALID_CLOSE_REASON' }, '124 bytes of UTF-8, from a connection too')

  const closing = new Promise<[number, string]>((resolve) => alice.once('close', (code, reason) => resolve([code, reason.toString()])))
  t.match(await app.fanout.disconnectUser('alice', 4403, 'banned'), { disconnected: 1, instances: 1 })
  t.same(await closing, [4403, 'banned'])
  t.match(await app.fanout.disconnectUser('nobody'), { disconnected: 0 })
})

t.test('data nested deeper than MAX_DATA_DEPTH is a 400, never a 500', async (t) => {
  const { MAX_DATA_DEPTH } = await import('../lib/index.js')
  const { url, wsUrl } = await build(t)
  const ws = await connect(t, wsUrl)
  const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth)

  const next = nextMessage(ws)
  t.equal((await broadcast(url, `{"data":${nested(MAX_DATA_DEPTH)}}`)).status, 202, `${MAX_DATA_DEPTH} levels are fine`)
  t.equal(JSON.stringify((await next).data), nested(MAX_DATA_DEPTH))

  // 10,000 levels used to be a 500: JSON.parse takes any depth, but
  // JSON.stringify, writing the frame, ran out of stack.
  for (const depth of [MAX_DATA_DEPTH + 1, 10_000, 200_000]) {
    const response = await broadcast(url, `{"data":${nested(depth)}}`)
    t.equal(response.status, 400, `${depth} levels: 400`)
    const answer = await response.json() as { code: string, message: string }
    t.equal(answer.code, 'FST_FANOUT_INVALID_BROADCAST')
    t.match(answer.message, `data is nested deeper than ${MAX_DATA_DEPTH} levels`)
  }
  const objects = '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000)
  t.equal((await broadcast(url, `{"data":${objects}}`)).status, 400, 'objects count as arrays do')
  await receivesNothing(t, ws, url)
})

t.test('decorator: arguments are checked as the route checks its body', async (t) => {
  const { MAX_USER_ID_LENGTH } = await import('../lib/index.js')
  const { app, url, wsUrl } = await build(t)
  const a = await connect(t, wsUrl, token({ sub: 'a' })) // the user 'alice' as a string would have reached
  const bad: Array<[string, () => Promise<unknown>, RegExp]> = [
    ['users as a string', async () => await app.fanout.broadcast('x', { users: 'alice' as unknown as string[] }), /`target.users` must be an array of user ids, got "alice"/],
    ['except as a string', async () => await app.fanout.broadcast('x', { except: 'bob' as unknown as string[] }), /`target.except` must be an array/],
    ['a list as the target', async () => await app.fanout.broadcast('x', ['alice'] as never), /`target` must be an object/],
    ['a null target', async () => await app.fanout.broadcast('x', null as never), /`target` must be an object/],
    ['a misspelt target', async () => await app.fanout.broadcast('x', { user: ['alice'] } as never), /unknown property "user"/],
    ['an empty id', async () => await app.fanout.broadcast('x', { users: [''] }), /`target.users\[0\]` must not be empty/],
    ['a numeric id in a list', async () => await app.fanout.broadcast('x', { users: ['b', 7 as unknown as string] }), /`target.users\[1\]` must be a string, got number 7/],
    ['an id too long', async () => await app.fanout.broadcast('x', { users: ['x'.repeat(MAX_USER_ID_LENGTH + 1)] }), /at most 512 characters/],
    ['too many ids', async () => await app.fanout.broadcast('x', { users: Array.from({ length: 10_001 }, (_, i) => `u${i}`) }), /at most 10000 user ids, got 10001/],
    ['sendToUser with a number', async () => await app.fanout.sendToUser(42 as unknown as string, 'x'), /`userId` must be a string, got number 42/],
    ['sendToUser with nothing', async () => await app.fanout.sendToUser(undefined as unknown as string, 'x'), /`userId` must be a string, got undefined/],
    ['sendTo with a number', async () => await app.fanout.sendTo(1 as unknown as string, 'x'), /`connectionId` must be a string, got number/]
  ]
  for (const [name, call, message] of bad) {
    const pending = call()
    t.type(pending, Promise, `${name}: a promise, not a synchronous throw`)
    const error = await pending.then(() => undefined, (err: unknown) => err)
    t.match(error, { code: 'FST_FANOUT_INVALID_ARGUMENT', message }, `${name}: rejected`)
    t.ok(error instanceof TypeError, `${name}: a TypeError`)
  }
  await t.rejects(app.fanout.disconnectUser(42 as unknown as string), { code: 'FST_FANOUT_INVALID_ARGUMENT' })
  await receivesNothing(t, a, url)

  t.match(await app.fanout.broadcast('x', { users: Array.from({ length: 10_000 }, (_, i) => `u${i}`) }), { delivered: 0 }, '10,000 ids are fine')
  t.match(await app.fanout.broadcast('x', { users: ['x'.repeat(MAX_USER_ID_LENGTH)] }), { delivered: 0 })
})

t.test('a body value with no JSON form (from an app\'s own parser) is a 400, not a 500', async (t) => {
  const Fastify = (await import('fastify')).default
  const fanout = (await import('../lib/index.js')).default
  const { SECRET } = await import('./helpers.js')
  const app = Fastify()
  t.teardown(() => app.close())
  // An app that reads big integers as BigInt, as some JSON parsers do.
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    done(null, JSON.parse(body as string, (_key, value: unknown) => typeof value === 'number' && !Number.isSafeInteger(value) && Number.isInteger(value) ? BigInt(value) : value))
  })
  await app.register(fanout, { jwt: { secret: SECRET } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const response = await broadcast(`http://127.0.0.1:${port}`, '{"data":{"id":9007199254740993}}')
  t.equal(response.status, 400)
  const answer = await response.json() as { code: string, message: string }
  t.equal(answer.code, 'FST_FANOUT_INVALID_BROADCAST')
  t.match(answer.message, /JSON-serializable.*BigInt/)
})
