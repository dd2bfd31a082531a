import Fastify from 'fastify'
import t, { type Test } from 'tap'
import fanout, { type FanoutOptions } from '../lib/index.js'
import { compileChannelPattern } from '../lib/http/server-api/channel-pattern.js'
import { SECRET, serviceToken, token, until, sample } from './helpers.js'
import { buildCentrifuge, centClient, sdk, subscribed, type Cent } from './centrifuge-helpers.js'

// Centrifugo's HTTP server API on one instance (embedded backplane), driven
// by cent.js, the npm library services use with Centrifugo, and by raw
// fetch for what cent.js hides (it keeps only `result`, and throws with the
// error object as its message). Real centrifuge-js clients see the effects.

const KEY = 'test-api-key-0123456789'

const NAMESPACES: NonNullable<FanoutOptions['channels']>['namespaces'] = {
  plain: {},
  silent: { historySize: 10, historyTtl: 60_000 }
}

async function buildApi (t: Test, options: Partial<FanoutOptions> = {}): Promise<Awaited<ReturnType<typeof buildCentrifuge>> & { cent: Cent, call: (method: string, body: unknown, headers?: Record<string, string>) => Promise<{ status: number, body: any }> }> {
  const built = await buildCentrifuge(t, { serverApi: { key: KEY }, ...options, channels: { namespaces: NAMESPACES, ...options.channels } })
  const cent = centClient(`${built.url}/api`, KEY)
  async function call (method: string, body: unknown, headers: Record<string, string> = { 'x-api-key': KEY, 'content-type': 'application/json' }): Promise<{ status: number, body: any }> {
    const response = await fetch(`${built.url}/api/${method}`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) })
    const text = await response.text()
    return { status: response.status, body: text === '' ? undefined : JSON.parse(text) }
  }
  return { ...built, cent, call }
}

/**
 * cent.js's rejection on an API error: it throws CentException with the
 * `error` object as the message, which Error turns into "[object Object]"
 * (cent.js 6.1.0: the code does not survive; raw calls read it).
 */
async function centRefuses (t: Test, promise: Promise<unknown>, what: string): Promise<void> {
  await t.rejects(promise, { message: '[object Object]' }, what)
}

t.test('off by default: no /api routes', async (t) => {
  const built = await buildCentrifuge(t)
  const response = await fetch(`${built.url}/api/publish`, { method: 'POST', body: '{}', headers: { 'x-api-key': KEY } })
  t.equal(response.status, 404)
})

t.test('publish through cent.js reaches an SDK subscriber, with its offset; history holds it', async (t) => {
  const { cent, sdkUrl } = await buildApi(t)
  const { client } = sdk(t, sdkUrl, { token: token({ sub: 'alice' }) })
  client.connect()
  const { events } = await subscribed(client, 'chat:1')
  const published = await cent.publish({ channel: 'chat:1', data: { text: 'hi' } }) as { offset: number, epoch: string }
  t.equal(published.offset, 1)
  t.type(published.epoch, 'string')
  const publication = await events.next('publication')
  t.same(publication.data, { text: 'hi' })
  t.equal(publication.offset, 1)
  const history = await cent.getHistory({ channel: 'chat:1', limit: 10 }) as { publications: Array<{ data: unknown, offset: number }>, offset: number, epoch: string }
  t.same(history, { publications: [{ data: { text: 'hi' }, offset: 1 }], offset: 1, epoch: published.epoch })
})

t.test('publish: skip_history, b64data, a channel without history, and what cannot be honoured', async (t) => {
  const { cent, call, sdkUrl } = await buildApi(t)
  const { client } = sdk(t, sdkUrl, { token: token({ sub: 'alice' }) })
  client.connect()
  const { events } = await subscribed(client, 'chat:2')
  const onPlain = await subscribed(client, 'plain:1')

  t.same(await cent.publish({ channel: 'chat:2', data: { n: 1 }, skip_history: true }), {}, 'no offset: not kept')
  t.same((await events.next('publication')).data, { n: 1 }, 'delivered all the same')
  t.same(await cent.getHistory({ channel: 'chat:2', limit: 10 }), { epoch: (await cent.getHistory({ channel: 'chat:2' }) as { epoch: string }).epoch }, 'history is empty')

  const b64 = Buffer.from(JSON.stringify({ binary: 'as json' })).toString('base64')
  t.same(await cent.publish({ channel: 'plain:1', b64data: b64 }), {}, 'a channel without history: no position')
  t.same((await onPlain.events.next('publication')).data, { binary: 'as json' }, 'b64data arrives decoded')
  t.same(await cent.publish({ channel: 'plain:1', data: 1, delta: true }), {}, 'delta is a hint: ignored')
  t.equal((await onPlain.events.next('publication')).data, 1)

  const refusals: Array<[unknown, number, RegExp]> = [
    [{ channel: 'plain:1', b64data: '!!!' }, 107, /b64data is not base64/],
    [{ channel: 'plain:1', b64data: b64, data: 1 }, 107, /not both/],
    [{ channel: 'plain:1' }, 107, /`data` is required/],
    [{ channel: 'plain:1', data: nested(101) }, 107, /nested deeper than 100/],
    [{ channel: 'plain:1', data: 1, tags: { a: 'b' } }, 108, /`tags` of publish is not supported/],
    [{ channel: 'plain:1', data: 1, idempotency_key: 'k' }, 108, /`idempotency_key`/],
    [{ channel: 'plain:1', data: 1, version: 3 }, 108, /`version`/],
    [{ channel: 'plain:1', data: 1, version_epoch: 'e' }, 108, /`version_epoch`/],
    [{ channel: 'nope:1', data: 1 }, 102, /unknown channel: "nope:1": namespace "nope" is not configured/],
    [{ channel: '', data: 1 }, 107, /channel is empty/],
    [{ data: 1 }, 107, /the body needs `channel`/],
    [{ channel: 'plain:1', data: 1, chanel: 'x' }, 107, /unknown field `chanel`/]
  ]
  for (const [body, code, message] of refusals) {
    const { status, body: reply } = await call('publish', body)
    t.equal(status, 200, `${JSON.stringify(body).slice(0, 80)}: HTTP 200, as Centrifugo answers`)
    t.equal(reply.error?.code, code)
    t.match(reply.error?.message, message)
    t.notOk('result' in reply)
  }
  // Unset and zero values ask for nothing.
  t.same((await call('publish', { channel: 'plain:1', data: 2, tags: {}, idempotency_key: '', version: 0, version_epoch: '', skip_history: false })).body, { result: {} })
  await centRefuses(t, cent.publish({ channel: 'nope:1', data: 1 }), 'cent.js throws on an API error')
})

t.test('broadcast: each channel its own response, in order', async (t) => {
  const { cent, sdkUrl } = await buildApi(t)
  const { client } = sdk(t, sdkUrl, { token: token({ sub: 'alice' }) })
  client.connect()
  const a = await subscribed(client, 'chat:a')
  const b = await subscribed(client, 'plain:b')
  const result = await cent.broadcast({ channels: ['chat:a', 'nope:x', 'plain:b'], data: { all: true } }) as { responses: any[] }
  t.equal(result.responses.length, 3)
  t.equal(result.responses[0].result.offset, 1)
  t.equal(result.responses[1].error.code, 102)
  t.same(result.responses[2], { result: {} })
  t.same((await a.events.next('publication')).data, { all: true })
  t.same((await b.events.next('publication')).data, { all: true })
  await centRefuses(t, cent.broadcast({ channels: [], data: 1 }), 'no channels: 107')
})

t.test('subscribe and unsubscribe: server-side subscriptions of a user\'s connections, or of one of them', async (t) => {
  const { cent, call, sdkUrl } = await buildApi(t)
  const first = sdk(t, sdkUrl, { token: token({ sub: 'alice' }) })
  const second = sdk(t, sdkUrl, { token: token({ sub: 'alice' }) })
  first.client.connect()
  second.client.connect()
  await first.events.next('connected')
  const secondId = (await second.events.next('connected')).client

  t.same(await cent.subscribe({ user: 'alice', channel: 'chat:srv' }), {})
  t.equal((await first.events.next('subscribed')).channel, 'chat:srv')
  t.equal((await second.events.next('subscribed')).channel, 'chat:srv')
  await cent.publish({ channel: 'chat:srv', data: 'to both' })
  t.equal((await first.events.next('publication')).data, 'to both')
  t.equal((await second.events.next('publication')).data, 'to both')

  t.same(await cent.unsubscribe({ user: 'alice', channel: 'chat:srv', client: secondId }), {}, 'one connection only')
  t.equal((await second.events.next('unsubscribed')).channel, 'chat:srv')
  await cent.publish({ channel: 'chat:srv', data: 'to the first' })
  t.equal((await first.events.next('publication')).data, 'to the first')
  t.equal(first.events.all('unsubscribed').length, 0, 'the other connection kept its subscription')

  t.same(await cent.subscribe({ user: 'alice', channel: 'plain:one', client: secondId }), {})
  t.equal((await second.events.next('subscribed')).channel, 'plain:one')
  t.same(await cent.unsubscribe({ user: 'alice', channel: 'chat:srv' }), {})
  t.equal((await first.events.next('unsubscribed')).channel, 'chat:srv')
  t.notOk(first.events.all('subscribed').some((ctx) => ctx.channel === 'plain:one'), 'client targets one connection')

  const refusals: Array<[string, unknown, number, RegExp]> = [
    ['subscribe', { user: 'alice', channel: 'nope:1' }, 102, /unknown channel/],
    ['subscribe', { user: '', channel: 'chat:1' }, 107, /`user` must not be empty/],
    ['subscribe', { channel: 'chat:1' }, 107, /needs `user`/],
    ['subscribe', { user: 'alice', channel: 'chat:1', info: { a: 1 } }, 108, /`info` of subscribe/],
    ['subscribe', { user: 'alice', channel: 'chat:1', b64info: 'eA==' }, 108, /`b64info`/],
    ['subscribe', { user: 'alice', channel: 'chat:1', data: {} }, 108, /`data` of subscribe/],
    ['subscribe', { user: 'alice', channel: 'chat:1', b64data: 'eA==' }, 108, /`b64data` of subscribe/],
    ['subscribe', { user: 'alice', channel: 'chat:1', session: 's' }, 108, /`session`/],
    ['subscribe', { user: 'alice', channel: 'chat:1', recover_since: { offset: 1, epoch: 'e' } }, 108, /`recover_since`/],
    ['subscribe', { user: 'alice', channel: 'chat:1', expire_at: 1 }, 108, /`expire_at`/],
    ['subscribe', { user: 'alice', channel: 'chat:1', override: { presence: { value: true } } }, 108, /`override`/],
    ['unsubscribe', { user: 'alice', channel: 'nope:1' }, 102, /unknown channel/],
    ['unsubscribe', { user: 'alice', channel: 'chat:1', session: 's' }, 108, /`session` of unsubscribe/],
    ['unsubscribe', { user: 'alice' }, 107, /needs `channel`/]
  ]
  for (const [method, body, code, message] of refusals) {
    const { status, body: reply } = await call(method, body)
    t.equal(status, 200)
    t.equal(reply.error?.code, code, `${method} ${JSON.stringify(body)}`)
    t.match(reply.error?.message, message)
  }
})

t.test('disconnect: every connection of a user with 3503, a code and reason of the caller\'s, or one connection', async (t) => {
  const { cent, call, sdkUrl } = await buildApi(t)
  const alice = sdk(t, sdkUrl, { token: token({ sub: 'alice' }) })
  const bob1 = sdk(t, sdkUrl, { token: token({ sub: 'bob' }) })
  const bob2 = sdk(t, sdkUrl, { token: token({ sub: 'bob' }) })
  for (const { client } of [alice, bob1, bob2]) client.connect()
  await alice.events.next('connected')
  const bob1Id = (await bob1.events.next('connected')).client
  await bob2.events.next('connected')

  t.same(await cent.disconnect({ user: 'alice' }), {})
  t.same(await alice.events.next('disconnected'), { code: 3503, reason: 'force disconnect' }, 'Centrifugo\'s default: terminal')

  t.same(await cent.disconnect({ user: 'bob', client: bob1Id, disconnect: { code: 4501, reason: 'banned' } }), {})
  t.same(await bob1.events.next('disconnected'), { code: 4501, reason: 'banned' })
  t.equal(bob2.client.state, 'connected', 'the other connection of the user stays')

  const refusals: Array<[unknown, number, RegExp]> = [
    [{ user: 'bob', disconnect: { code: 2000, reason: 'x' } }, 107, /disconnect.code 2000/],
    [{ user: 'bob', disconnect: { code: 4000, reason: 'x'.repeat(124) } }, 107, /longer than 123 bytes/],
    [{ user: 'bob', disconnect: { code: 4000 } }, 107, /`disconnect` needs `reason`/],
    [{ user: 'bob', whitelist: ['x'] }, 108, /`whitelist`/],
    [{ user: 'bob', session: 's' }, 108, /`session` of disconnect/],
    [{}, 107, /needs `user`/]
  ]
  for (const [body, code, message] of refusals) {
    const { body: reply } = await call('disconnect', body)
    t.equal(reply.error?.code, code, JSON.stringify(body))
    t.match(reply.error?.message, message)
  }
  t.equal(bob2.client.state, 'connected', 'nothing refused closed anything')
  t.same(await cent.disconnect({ user: 'nobody' }), {}, 'a user with no connection: nothing to do, as in Centrifugo')
})

t.test('history: limit, since, reverse, 112 for another epoch; history_remove keeps the position', async (t) => {
  const { cent, call } = await buildApi(t)
  for (let n = 1; n <= 4; n++) await cent.publish({ channel: 'chat:h', data: { n } })
  const top = await cent.getHistory({ channel: 'chat:h' }) as { offset: number, epoch: string }
  t.equal(top.offset, 4, 'no limit: the position only')
  t.notOk('publications' in top)
  const since = await cent.getHistory({ channel: 'chat:h', limit: 10, since: { offset: 2, epoch: top.epoch } }) as { publications: Array<{ offset: number }> }
  t.same(since.publications.map((p) => p.offset), [3, 4])
  const reversed = await cent.getHistory({ channel: 'chat:h', limit: 2, reverse: true }) as { publications: Array<{ offset: number }> }
  t.same(reversed.publications.map((p) => p.offset), [4, 3])
  const all = await cent.getHistory({ channel: 'chat:h', limit: -1 }) as { publications: unknown[] }
  t.equal(all.publications.length, 4, 'limit -1: all kept')
  const other = await call('history', { channel: 'chat:h', limit: 10, since: { offset: 1, epoch: 'another' } })
  t.equal(other.body.error.code, 112)
  t.match(other.body.error.message, /unrecoverable position/)

  t.same(await cent.removeHistory({ channel: 'chat:h' }), {})
  t.same(await cent.getHistory({ channel: 'chat:h', limit: 10 }), { offset: 4, epoch: top.epoch }, 'publications gone, position kept')

  for (const [method, body, code] of [
    ['history', { channel: 'plain:1' }, 108],
    ['history_remove', { channel: 'plain:1' }, 108],
    ['history', { channel: 'nope:1' }, 102],
    ['history_remove', { channel: 'nope:1' }, 102],
    ['history', { channel: 'chat:h', limit: -2 }, 107]
  ] as const) {
    t.equal((await call(method, body)).body.error?.code, code, `${method} ${JSON.stringify(body)}`)
  }
  t.equal((await call('history', { channel: 'chat:h', limit: '5' })).status, 400, 'a limit of the wrong type is not decoded')
})

t.test('presence and presence_stats: the SDK\'s subscribers, by client id', async (t) => {
  const { cent, call, sdkUrl } = await buildApi(t)
  const { client, events } = sdk(t, sdkUrl, { token: token({ sub: 'alice' }) })
  client.connect()
  const clientId = (await events.next('connected')).client
  await subscribed(client, 'chat:p')
  const presence = await cent.getPresence({ channel: 'chat:p' }) as { presence: Record<string, unknown> }
  t.same(presence, { presence: { [clientId]: { user: 'alice', client: clientId } } })
  t.same(await cent.getPresenceStats({ channel: 'chat:p' }), { num_clients: 1, num_users: 1 })
  t.same((await call('presence', { channel: 'chat:empty' })).body, { result: { presence: {} } })
  t.same((await call('presence_stats', { channel: 'chat:empty' })).body, { result: { num_clients: 0, num_users: 0 } }, 'zeros are written, as Centrifugo writes them')
  for (const method of ['presence', 'presence_stats']) {
    t.equal((await call(method, { channel: 'plain:1' })).body.error?.code, 108, `${method} without presence`)
    t.match((await call(method, { channel: 'plain:1' })).body.error?.message, /without presence/)
    t.equal((await call(method, { channel: 'nope:1' })).body.error?.code, 102)
  }
})

t.test('channels and info: this instance\'s subscriptions and counts (embedded backplane: the only instance)', async (t) => {
  const { cent, call, sdkUrl, app } = await buildApi(t)
  const { client } = sdk(t, sdkUrl, { token: token({ sub: 'alice' }) })
  const other = sdk(t, sdkUrl, { token: token({ sub: 'bob' }) })
  client.connect()
  other.client.connect()
  await subscribed(client, 'chat:x')
  await subscribed(other.client, 'chat:x')
  await subscribed(client, 'plain:y')
  t.same(await cent.getChannels(), { channels: { 'chat:x': { num_clients: 2 }, 'plain:y': { num_clients: 1 } } })
  t.same(await cent.getChannels({ pattern: 'chat:*' }), { channels: { 'chat:x': { num_clients: 2 } } })
  t.same(await cent.getChannels({ pattern: '{plain,other}:?' }), { channels: { 'plain:y': { num_clients: 1 } } })
  const bad = await call('channels', { pattern: 'chat:[' })
  t.equal(bad.body.error.code, 107)
  t.match(bad.body.error.message, /not a pattern: a `\[` is not closed/)
  const info = await cent.getInfo() as { nodes: any[] }
  t.equal(info.nodes.length, 1)
  t.match(info.nodes[0], { num_clients: 2, num_users: 2, num_channels: 2, num_subs: 3, uptime: Number, uid: String, name: String })
  t.equal(app.fanout.size, 2)
  const bare = await fetch(`${app.listeningOrigin}/api/info`, { method: 'POST', headers: { 'x-api-key': KEY } })
  t.equal((await bare.json() as { result: { nodes: unknown[] } }).result.nodes.length, 1, 'no body at all is an empty request')
})

t.test('requests Centrifugo would not decode: 400 with FST_FANOUT_INVALID_API_REQUEST; too large: 413; any content type is JSON', async (t) => {
  const { call, url } = await buildApi(t, { bodyLimit: 1024 })
  const cases: Array<[string, RegExp]> = [
    ['{"channel": "chat:1", "data": ', /the body is not JSON/],
    ['[1, 2]', /the body must be object/],
    ['"text"', /the body must be object/],
    ['{"channel": 5, "data": 1}', /`channel` must be string/],
    ['{"channel": "chat:1", "data": 1, "skip_history": "yes"}', /`skip_history` must be boolean/],
    ['{"__proto__": {"x": 1}, "channel": "chat:1", "data": 1}', /forbidden prototype property/]
  ]
  for (const [body, message] of cases) {
    const { status, body: reply } = await call('publish', body)
    t.equal(status, 400, body)
    t.equal(reply.code, 'FST_FANOUT_INVALID_API_REQUEST')
    t.match(reply.message, message)
  }
  const large = await call('publish', JSON.stringify({ channel: 'chat:1', data: 'x'.repeat(2000) }))
  t.equal(large.status, 413)
  t.equal(large.body.code, 'FST_ERR_CTP_BODY_TOO_LARGE')
  // curl -d sends application/x-www-form-urlencoded: Centrifugo reads JSON anyway.
  const form = await fetch(`${url}/api/publish`, { method: 'POST', headers: { 'x-api-key': KEY, 'content-type': 'application/x-www-form-urlencoded' }, body: '{"channel":"plain:1","data":1}' })
  t.same(await form.json(), { result: {} })
  const none = await fetch(`${url}/api/publish`, { method: 'POST', headers: { 'x-api-key': KEY }, body: Buffer.from('{"channel":"plain:1","data":1}') })
  t.same(await none.json(), { result: {} }, 'no content type at all')
})

t.test('a method the API does not have: Centrifugo\'s 104, naming the methods there are', async (t) => {
  const { call, url } = await buildApi(t)
  const unknown = await call('frobnicate', {})
  t.equal(unknown.status, 200)
  t.equal(unknown.body.error.code, 104)
  t.match(unknown.body.error.message, /not found: no method "frobnicate": the methods are publish, broadcast/)
  const refresh = await call('refresh', { user: 'alice' })
  t.equal(refresh.body.error.code, 104)
  t.match(refresh.body.error.message, /Centrifugo's refresh is not supported here/)
  const cent = centClient(`${url}/api`, KEY)
  await centRefuses(t, cent.refresh({ user: 'alice' }), 'cent.js\'s refresh is refused')
  const single = await fetch(`${url}/api`, { method: 'POST', headers: { 'x-api-key': KEY }, body: '{"method":"publish","params":{}}' })
  t.equal((await single.json() as { error: { code: number } }).error.code, 104, 'the single-endpoint form is not served')
  t.equal((await call('frobnicate', {}, {})).status, 401, 'unknown methods need credentials too')
})

t.test('authentication: the key in X-API-Key or Authorization: apikey, or a JWT with the broadcast scope', async (t) => {
  const { call, app } = await buildApi(t)
  const body = { channel: 'plain:1', data: 1 }
  const ok = { result: {} }
  t.same((await call('publish', body, { 'x-api-key': KEY })).body, ok, 'X-API-Key')
  t.same((await call('publish', body, { authorization: `apikey ${KEY}` })).body, ok, 'Authorization: apikey')
  t.same((await call('publish', body, { authorization: `ApiKey  ${KEY} ` })).body, ok, 'the scheme in any case')
  t.same((await call('publish', body, { authorization: `Bearer ${serviceToken()}` })).body, ok, 'a service JWT')

  const refused: Array<[Record<string, string>, number, string, RegExp]> = [
    [{}, 401, 'FST_FANOUT_API_CREDENTIALS_MISSING', /No credentials: send the API key in `X-API-Key/],
    [{ 'x-api-key': 'wrong' }, 401, 'FST_FANOUT_API_KEY_INVALID', /X-API-Key does not match serverApi.key/],
    [{ 'x-api-key': KEY.slice(0, -1) }, 401, 'FST_FANOUT_API_KEY_INVALID', /does not match/],
    [{ authorization: 'apikey wrong' }, 401, 'FST_FANOUT_API_KEY_INVALID', /the key of `Authorization: apikey` does not match/],
    [{ authorization: `apikey ${KEY} extra` }, 401, 'FST_FANOUT_API_KEY_INVALID', /not `apikey <key>`/],
    [{ authorization: 'Basic dTpw' }, 401, 'FST_FANOUT_API_CREDENTIALS_MISSING', /No credentials/],
    [{ authorization: `Bearer ${token({ sub: 'alice' })}` }, 403, 'FST_FANOUT_SCOPE_FORBIDDEN', /lacks the `broadcast` scope/],
    [{ authorization: `Bearer ${token({ sub: 'svc', scope: 'broadcast' }, 'another-secret-long-enough-for-hs256')}` }, 401, 'FST_FANOUT_TOKEN_INVALID', /Invalid token/]
  ]
  for (const [headers, status, code, message] of refused) {
    const { status: got, body: reply } = await call('publish', body, headers)
    t.equal(got, status, JSON.stringify(headers))
    t.equal(reply.code, code)
    t.match(reply.message, message)
  }
  const query = await fetch(`${app.listeningOrigin}/api/publish?api_key=${KEY}`, { method: 'POST', body: JSON.stringify(body) })
  t.equal(query.status, 401)
  t.match((await query.json() as { message: string }).message, /api_key query parameter is not accepted/)

  // Fastify's error reply has `error: 'Unauthorized'`, which cent.js throws as its message.
  await t.rejects(centClient(`${app.listeningOrigin}/api`, 'wrong').publish(body), { message: 'Unauthorized' }, 'cent.js with a wrong key throws')

  const metrics = await app.fanout.metricsRegistry.metrics()
  t.equal(sample(metrics, 'fanout_server_api_calls_total', 'method="publish",outcome="ok"'), 4)
  t.equal(sample(metrics, 'fanout_server_api_calls_total', 'method="publish",outcome="unauthorized"'), 10)
})

t.test('serverApi: true takes Bearer JWTs only, and says so to an API key', async (t) => {
  const built = await buildCentrifuge(t, { serverApi: true, channels: { namespaces: NAMESPACES } })
  const post = async (headers: Record<string, string>): Promise<Response> => await fetch(`${built.url}/api/publish`, { method: 'POST', headers, body: '{"channel":"plain:1","data":1}' })
  t.same(await (await post({ authorization: `Bearer ${serviceToken()}` })).json(), { result: {} })
  const keyed = await post({ 'x-api-key': KEY })
  t.equal(keyed.status, 401)
  t.match((await keyed.json() as { message: string }).message, /this server takes no API key \(serverApi.key is not set\)/)
})

t.test('a 401 names the schemes that would do in WWW-Authenticate (RFC 7235)', async (t) => {
  const keyed = await buildApi(t)
  const cases: Array<[Record<string, string>, string]> = [
    [{}, 'apikey, Bearer'],
    [{ 'x-api-key': 'wrong' }, 'apikey, Bearer'],
    [{ authorization: 'apikey' }, 'apikey, Bearer'],
    [{ authorization: 'Bearer not.a.token' }, 'Bearer error="invalid_token"']
  ]
  for (const [headers, challenge] of cases) {
    const response = await fetch(`${keyed.url}/api/info`, { method: 'POST', headers, body: '{}' })
    t.equal(response.status, 401, JSON.stringify(headers))
    t.equal(response.headers.get('www-authenticate'), challenge, JSON.stringify(headers))
  }
  const query = await fetch(`${keyed.url}/api/info?api_key=${KEY}`, { method: 'POST', body: '{}' })
  t.equal(query.headers.get('www-authenticate'), 'apikey, Bearer', 'the key in the query string')

  const tokensOnly = await buildCentrifuge(t, { serverApi: true })
  for (const headers of [{}, { 'x-api-key': KEY }] as Array<Record<string, string>>) {
    const response = await fetch(`${tokensOnly.url}/api/info`, { method: 'POST', headers, body: '{}' })
    t.equal(response.headers.get('www-authenticate'), 'Bearer', `without serverApi.key: ${JSON.stringify(headers)}`)
  }
})

t.test('the API answers under its prefix, and the metrics count each method and outcome', async (t) => {
  const { app, call } = await buildApi(t, { serverApi: { key: KEY, prefix: '/centrifugo/api' } })
  t.equal((await call('publish', { channel: 'plain:1', data: 1 })).status, 404, 'not under /api')
  const response = await fetch(`${app.listeningOrigin}/centrifugo/api/publish`, { method: 'POST', headers: { 'x-api-key': KEY }, body: '{"channel":"nope:1","data":1}' })
  t.equal((await response.json() as { error: { code: number } }).error.code, 102)
  await until(async () => sample(await app.fanout.metricsRegistry.metrics(), 'fanout_server_api_calls_total', 'method="publish",outcome="102"') === 1, 'the call counted')
})

t.test('options: serverApi is checked at register time', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ key: '' }, /`serverApi.key` must be a non-empty string of visible ASCII characters \(no spaces\), got an empty string/],
    [{ key: 'has space' }, /serverApi.key.*got a string with spaces/],
    [{ key: 42 }, /serverApi.key.*got 42/],
    [{ keys: 'x' }, /`serverApi.keys` is unknown; did you mean `serverApi.key`\?/],
    [{ prefix: 'api' }, /`serverApi.prefix` must be a path starting with '\/'/],
    [{ prefix: '/api/' }, /`serverApi.prefix` must not end with '\/'/],
    [{ prefix: '' }, /`serverApi.prefix` must be a path/],
    ['yes', /`serverApi` must be false, true or \{ key, prefix \}/]
  ]
  const register = async (options: Partial<FanoutOptions>): Promise<void> => {
    const app = Fastify()
    try {
      await app.register(fanout, { jwt: { secret: SECRET }, ...options })
      await app.ready()
    } finally {
      await app.close()
    }
  }
  for (const [serverApi, message] of cases) {
    await t.rejects(register({ serverApi: serverApi as FanoutOptions['serverApi'] }), { code: 'FST_FANOUT_INVALID_OPTION', message }, JSON.stringify(serverApi))
  }
  await t.rejects(register({ broadcastPath: '/api/broadcast', serverApi: true }), {
    message: /`serverApi.prefix` puts the API's `broadcast` method on `broadcastPath` \(\/api\/broadcast\)/
  })
  await t.rejects(register({ serverApi: { prefix: '/' } }), { message: /puts the API's `broadcast` method on `broadcastPath` \(\/broadcast\)/ }, 'at the root, the default broadcastPath is the API\'s broadcast')
  const root = Fastify()
  t.teardown(() => root.close())
  await root.register(fanout, { jwt: { secret: SECRET }, broadcastPath: '/fanout/broadcast', serverApi: { prefix: '/', key: KEY } })
  root.post('/custom/:id', async () => ({ mine: true }))
  const published = await root.inject({ method: 'POST', url: '/publish', headers: { 'x-api-key': KEY }, payload: { channel: 'news', data: 1 } })
  t.same(published.json(), { result: {} }, 'at the root: /publish')
  t.same((await root.inject({ method: 'POST', url: '/custom/1' })).json(), { mine: true }, 'and no catch-all takes the app\'s routes')
})

t.test('channel patterns: the syntax Centrifugo matches them with', async (t) => {
  const matches = (pattern: string, channel: string): boolean => {
    const matcher = compileChannelPattern(pattern)
    if (typeof matcher !== 'function') throw new Error(matcher.problem)
    return matcher(channel)
  }
  t.ok(matches('chat:*', 'chat:a/b'), '* crosses any character')
  t.ok(matches('*', ''))
  t.ok(matches('a?c', 'a/c'))
  t.notOk(matches('a?c', 'ac'))
  t.ok(matches('[!a]x', 'bx'))
  t.notOk(matches('[!a]x', 'ax'))
  t.ok(matches('[a-c]', 'b'))
  t.notOk(matches('[a-c]', 'd'))
  t.ok(matches('{a,b{c,d}}:1', 'bd:1'), 'nested alternatives')
  t.ok(matches('a\\*', 'a*'))
  t.notOk(matches('a\\*', 'ab'))
  t.ok(matches('!x', '!x'), 'a leading ! is itself')
  t.ok(matches('+(a)|.^$', '+(a)|.^$'), 'regex characters are themselves')
  t.ok(matches('[-]', '-'))
  t.ok(matches('ü?', 'üé'))
  t.ok(matches('*{a,b}*x', 'zzbzzx'))
  t.notOk(matches('*{a,b}*x', 'zzczzx'))
  // Every instance runs the pattern over every channel it holds: a pattern
  // that makes a backtracking matcher run for hours must finish at once here.
  t.notOk(matches('*a'.repeat(40) + 'b', 'a'.repeat(500)), 'no catastrophic backtracking')
  t.ok(matches('*a'.repeat(40), 'a'.repeat(500)))
  for (const [pattern, problem] of [['[a', /`\[` is not closed/], ['{a,b', /`\{` is not closed/], ['a\\', /lone/], ['[z-a]', /runs backwards/], ['[]', /`\[\]` holds nothing/], ['*'.repeat(513), /longer than 512/]] as const) {
    const compiled = compileChannelPattern(pattern)
    t.match(typeof compiled === 'function' ? '' : compiled.problem, problem, pattern)
  }
})

function nested (depth: number): unknown {
  let value: unknown = 1
  for (let i = 0; i < depth; i++) value = [value]
  return value
}
