import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { request } from 'node:http'
import { dirname, join } from 'node:path'
import t from 'tap'
import { runExample } from './helpers.js'
import { sdk, subscription } from './centrifuge-helpers.js'
import { freePort } from './redis-helpers.js'

// The example's channels: its `chat` namespace as documented, the browser
// build of centrifuge-js it serves, its channels page and the development
// token route behind the page's getToken. (test/demo-browser.test.ts drives
// the page itself in Chromium.)

/** A request with headers fetch() would not let us set (Host). */
async function get (url: string, headers: Record<string, string> = {}): Promise<{ status: number, headers: Record<string, unknown>, body: string }> {
  return await new Promise((resolve, reject) => {
    const outgoing = request(url, { headers }, (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { text += chunk })
      response.on('end', () => { resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text }) })
    })
    outgoing.on('error', reject)
    outgoing.end()
  })
}

function claims (jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1] as string, 'base64url').toString()) as Record<string, unknown>
}

/** The configuration the server wrote into a page, or undefined. */
function pageConfig (html: string): Record<string, unknown> | undefined {
  const literal = /const config = (\{.*\})\n/.exec(html)?.[1]
  return literal === undefined ? undefined : JSON.parse(literal) as Record<string, unknown>
}

t.test('it serves the SDK\'s browser build from node_modules, read once, as JavaScript', async (t) => {
  const { base } = await runExample(t, '../example/server.ts', { PORT: '0', METRICS_PORT: String(await freePort()) })
  const served = await fetch(`${base}/vendor/centrifuge.js`)
  t.equal(served.status, 200)
  t.equal(served.headers.get('content-type'), 'text/javascript; charset=utf-8')
  const file = join(dirname(createRequire(import.meta.url).resolve('centrifuge')), '..', 'dist', 'centrifuge.js')
  t.ok(Buffer.from(await served.arrayBuffer()).equals(await readFile(file)), 'the file as the package ships it')
  const page = await (await fetch(`${base}/channels`)).text()
  t.match(page, '<script src="/vendor/centrifuge.js"></script>', 'the page loads it from this server')
  t.notMatch(page, /<script src="http/, 'and nothing from elsewhere')
})

t.test('the channels page carries a short-lived token for this machine only, and its token route answers this machine only', async (t) => {
  const { base, serviceToken } = await runExample(t, '../example/server.ts', { PORT: '0', METRICS_PORT: String(await freePort()) })
  const { port } = new URL(base)

  const page = await get(`${base}/channels`, { host: `localhost:${port}` })
  t.equal(page.status, 200)
  t.equal(page.headers['cache-control'], 'no-store', 'a page holding a token is not cached')
  const config = pageConfig(page.body)
  t.match(config, { user: 'demo-user', demo: true })
  const token = claims(config?.token as string)
  t.equal(token.sub, 'demo-user')
  t.equal((token.exp as number) - (token.iat as number), 600, 'valid for 10 minutes: the SDK refreshes it')
  t.equal(claims(pageConfig((await get(`${base}/channels?user=alice`, { host: `localhost:${port}` })).body)?.token as string).sub, 'alice', '?user= names the user')
  t.equal((await get(`${base}/channels?user=${encodeURIComponent('<b>')}`, { host: `localhost:${port}` })).status, 400, 'a user name is letters, digits, _ . -')
  const protobuf = await get(`${base}/channels?codec=protobuf`, { host: `localhost:${port}` })
  t.match(pageConfig(protobuf.body), { codec: 'protobuf', demo: true }, '?codec=protobuf: the page runs the Protobuf build')
  t.match(protobuf.body, '<script src="/vendor/centrifuge.protobuf.js"></script>')
  const script = await get(`${base}/vendor/centrifuge.protobuf.js`, { host: `localhost:${port}` })
  t.equal(script.status, 200)
  t.match(script.headers['content-type'], /^text\/javascript/)
  t.equal((await get(`${base}/channels?codec=xml`, { host: `localhost:${port}` })).status, 400, 'codec is json or protobuf')

  for (const host of [`attacker.example:${port}`, `127.0.0.1.nip.io:${port}`]) {
    const rebound = await get(`${base}/channels`, { host })
    t.same(pageConfig(rebound.body), { codec: 'json' }, `${host}: a page without a token`)
    t.notMatch(rebound.body, serviceToken)
    t.equal((await get(`${base}/demo/token`, { host })).status, 403, `${host}: no token from the route`)
  }
  t.equal((await get(`${base}/demo/token`, { host: `localhost:${port}`, origin: 'https://attacker.example' })).status, 403, 'nor for another site\'s page')

  const renewed = await get(`${base}/demo/token?user=bob`, { host: `127.0.0.1:${port}`, origin: `http://127.0.0.1:${port}` })
  t.equal(renewed.status, 200)
  t.equal(renewed.headers['cache-control'], 'no-store')
  const fresh = claims((JSON.parse(renewed.body) as { token: string }).token)
  t.equal(fresh.sub, 'bob')
  t.equal((fresh.exp as number) - (fresh.iat as number), 600)
})

t.test('the chat namespace, through the real SDK: history, recovery, presence, join and leave, publish; other namespaces refused', async (t) => {
  const { base } = await runExample(t, '../example/server.ts', { PORT: '0', METRICS_PORT: String(await freePort()) })
  const url = `${base.replace('http', 'ws')}/connection/websocket`
  const getToken = async (user: string): Promise<string> => ((await (await fetch(`${base}/demo/token?user=${user}`)).json()) as { token: string }).token
  const alice = sdk(t, url, { token: await getToken('alice') })
  const bob = sdk(t, url, { token: await getToken('bob') })
  alice.client.connect()
  bob.client.connect()

  const a = subscription(alice.client, 'chat:lobby', { joinLeave: true })
  a.sub.subscribe()
  const subscribed = await a.events.next('subscribed')
  t.equal(subscribed.recoverable, true, 'recovery')
  t.equal(subscribed.positioned, true)
  const joined = a.events.next('join')
  const b = subscription(bob.client, 'chat:lobby')
  b.sub.subscribe()
  await b.events.next('subscribed')
  t.equal((await joined).info.user, 'bob', 'join')
  const presence = await a.sub.presence()
  t.same(Object.values(presence.clients).map((info: any) => info.user).sort(), ['alice', 'bob'], 'presence')

  const received = a.events.next('publication')
  await b.sub.publish({ text: 'hi' })
  t.match(await received, { data: { text: 'hi' }, offset: 1, info: { user: 'bob' } }, 'any subscriber may publish')
  const history = await a.sub.history({ limit: 100 })
  t.same(history.publications.map((p: any) => p.data), [{ text: 'hi' }], 'history')
  const left = a.events.next('leave')
  b.sub.unsubscribe()
  t.equal((await left).info.user, 'bob', 'leave')

  const other = subscription(alice.client, 'elsewhere:x')
  other.sub.subscribe()
  t.equal((await other.events.next('unsubscribed')).code, 102, 'a namespace not configured is unknown')
  const news = subscription(alice.client, 'news')
  news.sub.subscribe()
  await news.events.next('subscribed')
  await t.rejects(news.sub.publish('x'), { code: 103 }, 'channels without a namespace: subscribe, not publish')
})
