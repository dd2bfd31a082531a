import { once } from 'node:events'
import SwaggerParser from '@apidevtools/swagger-parser'
import { request } from 'node:http'
import t, { type Test } from 'tap'
import { WebSocket } from 'ws'
import { closed, collect, nextMessage, runExample, until } from './helpers.js'
import { freePort } from './redis-helpers.js'
import { centClient, sdk, subscribed } from './centrifuge-helpers.js'

/** GET or POST with headers fetch() would not let us set (Host). */
async function get (url: string, headers: Record<string, string>, method = 'GET', body?: string): Promise<{ status: number, body: string }> {
  return await new Promise((resolve, reject) => {
    const outgoing = request(url, { method, headers }, (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { text += chunk })
      response.on('end', () => { resolve({ status: response.statusCode ?? 0, body: text }) })
    })
    outgoing.on('error', reject)
    outgoing.end(body)
  })
}

async function open (t: Test, base: string, userToken: string): Promise<WebSocket> {
  const ws = new WebSocket(`${base.replace('http', 'ws')}/ws`, ['fanout.v1', `bearer.${userToken}`])
  t.teardown(() => ws.terminate())
  collect(ws)
  await once(ws, 'open')
  return ws
}

/** `promise`, or a rejection naming `what` after `ms` (a lost signal would otherwise hang the test). */
async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`no ${what} within ${ms} ms`)) }, ms) })
  try {
    return await Promise.race([promise, late])
  } finally {
    clearTimeout(timer)
  }
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false
    throw err
  }
}

t.test('the example server prints working tokens, serves its page, and exits on SIGTERM after 1001 to clients', async (t) => {
  const metricsPort = await freePort()
  const { child, base, userToken, serviceToken } = await runExample(t, '../example/server.ts', { PORT: '0', METRICS_PORT: String(metricsPort) })
  t.pass('prints the address and both tokens')

  const page = await fetch(`${base}/`)
  t.equal(page.status, 200)
  const html = await page.text()
  t.match(html, /new WebSocket\(url, \['fanout.v1', 'bearer.' \+ token\]\)/, 'the page connects with the subprotocol token')
  t.match(html, userToken, 'the development page, asked for by a loopback name, carries a ready user token')
  t.notMatch(html, serviceToken, 'never the service token')
  t.notMatch(html, /authorization/i, 'the page sends no broadcast token')

  const ws = await open(t, base, userToken)
  const arrival = nextMessage(ws)
  const response = await fetch(`${base}/broadcast`, {
    method: 'POST',
    headers: { authorization: `Bearer ${serviceToken}`, 'content-type': 'application/json' },
    body: '{"data":{"text":"hello"}}'
  })
  t.equal(response.status, 202, 'the printed service token may broadcast')
  t.same((await arrival).data, { text: 'hello' })

  const closing = closed(ws)
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  t.equal((await closing).code, 1001, 'clients get going-away')
  const [code] = await exited as [number]
  t.equal(code, 0, 'the process exits by itself')
})

t.test('the development page and its demo broadcast answer this machine by a loopback name only', async (t) => {
  const metricsPort = await freePort()
  const { base, userToken, serviceToken } = await runExample(t, '../example/server.ts', { PORT: '0', METRICS_PORT: String(metricsPort) })
  const { port } = new URL(base)

  // DNS rebinding: a hostile site points its own name at 127.0.0.1; the browser sends that name.
  for (const host of [`attacker.example:${port}`, `localhost.attacker.example:${port}`, `127.0.0.1.nip.io:${port}`]) {
    const page = await get(`${base}/`, { host })
    t.equal(page.status, 200, `${host}: the page is served`)
    t.notMatch(page.body, userToken, `${host}: without a token`)
    t.notMatch(page.body, serviceToken)
    t.notMatch(page.body, /"demo":true/)
  }
  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `LOCALHOST:${port}`]) {
    t.match((await get(`${base}/`, { host })).body, userToken, `${host}: with the user token`)
  }

  const ws = await open(t, base, userToken)
  const arrival = nextMessage(ws)
  const demo = await get(`${base}/demo/broadcast`, { host: `localhost:${port}`, origin: `http://localhost:${port}`, 'content-type': 'application/json' }, 'POST', '{"text":"from the page"}')
  t.equal(demo.status, 202, 'the page\'s Broadcast button works without a token')
  t.same((await arrival).data, { text: 'from the page' })

  const refused = [
    ['a rebound name', { host: `attacker.example:${port}`, origin: `http://attacker.example:${port}` }],
    ['another site\'s page (cross-site request)', { host: `localhost:${port}`, origin: 'https://attacker.example' }]
  ] as const
  for (const [what, headers] of refused) {
    const answer = await get(`${base}/demo/broadcast`, { ...headers, 'content-type': 'application/json' }, 'POST', '{"text":"evil"}')
    t.equal(answer.status, 403, what)
  }
  const form = await get(`${base}/demo/broadcast`, { host: `localhost:${port}`, 'content-type': 'text/plain' }, 'POST', 'text=evil')
  t.equal(form.status, 400, 'a form post (no CORS preflight) does not match the body schema')
})

t.test('the example serves metrics on its internal port only', async (t) => {
  const metricsPort = await freePort()
  const { output, base } = await runExample(t, '../example/server.ts', { PORT: '0', METRICS_PORT: String(metricsPort) })
  t.match(output, `metrics (internal) http://127.0.0.1:${metricsPort}/metrics`, 'the banner says where')
  t.equal((await fetch(`${base}/metrics`)).status, 404, 'not on the public port')
  const internal = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
  t.equal(internal.status, 200)
  t.match(await internal.text(), /fanout_connections 0/)
  const ready = await fetch(`${base}/fanout/ready`)
  t.same(await ready.json(), { ready: true, backplane: 'up' }, 'readiness stays on the public port and tells no counts')
})

t.test('the example serves its HTTP API\'s OpenAPI document at /documentation/json and Swagger UI at /documentation', async (t) => {
  const metricsPort = await freePort()
  const { base, output } = await runExample(t, '../example/server.ts', { PORT: '0', METRICS_PORT: String(metricsPort) })
  t.match(output, `HTTP API (OpenAPI) ${base}/documentation`, 'the banner says where')

  const response = await fetch(`${base}/documentation/json`)
  t.equal(response.status, 200)
  const doc = await response.json() as { openapi: string, paths: Record<string, Record<string, { security?: unknown[] }>> }
  await t.resolves(SwaggerParser.validate(structuredClone(doc) as never), 'a valid OpenAPI document')
  t.same(Object.keys(doc.paths).sort(), ['/broadcast', '/connection/websocket', '/fanout/ready', '/ws'],
    'fastify-fanout\'s routes; not the example\'s pages (untagged), nor /metrics (on the internal port)')
  t.same(doc.paths['/broadcast']?.post?.security, [{ fanoutBearer: [] }])

  const ui = await fetch(`${base}/documentation`)
  t.equal(ui.status, 200)
  t.match(ui.headers.get('content-type'), /^text\/html/)
  const html = await ui.text()
  t.match(html, /swagger-ui/i, 'Swagger UI\'s page')
  const assets = [...html.matchAll(/(?:src|href)="([^"]+\.(?:js|css))"/g)].map((match) => match[1] as string)
  t.ok(assets.length > 0, `the page loads its scripts and styles (${assets.join(', ')})`)
  for (const asset of assets) {
    const served = await fetch(new URL(asset, `${base}/documentation`)) // as the browser resolves it from the page
    t.equal(served.status, 200, `${asset} is served`)
    await served.arrayBuffer()
  }
})

t.test('SIGTERM to `npm start` reaches the server: clients get 1001 and it exits by itself', async (t) => {
  const metricsPort = await freePort()
  const { child, pid, base, userToken } = await runExample(t, '../example/server.ts', { PORT: '0', METRICS_PORT: String(metricsPort) }, ['npm', 'run', 'start'])
  t.not(pid, child.pid, 'npm runs the server as a process of its own')
  t.teardown(() => { if (alive(pid)) process.kill(pid, 'SIGKILL') })

  const ws = await open(t, base, userToken)
  const closing = closed(ws)
  const exited = once(child, 'exit')
  child.kill('SIGTERM') // what `docker stop` sends to the container's main process
  t.equal((await within(closing, 10_000, 'close frame')).code, 1001, 'the client gets going-away')
  await within(exited, 10_000, 'exit of npm')
  await until(() => !alive(pid), 'the server process to exit', 10_000)
  t.pass('the server process exited; nothing is left behind')
})

t.test('the example logs no token, even at trace level, whatever a client sends', async (t) => {
  const metricsPort = await freePort()
  const { child, base, output, userToken, serviceToken } = await runExample(t, '../example/server.ts', { PORT: '0', METRICS_PORT: String(metricsPort), LOG_LEVEL: 'trace' })
  // The banner prints the tokens on purpose; what follows its curl line is log.
  let logged = output.slice(output.indexOf('\n', output.indexOf('curl -X POST')))
  child.stdout?.on('data', (chunk: string) => { logged += chunk })
  const ws = base.replace('http', 'ws')
  await fetch(`${base}/nowhere?token=${userToken}`)
  await fetch(`${base}/?token=${userToken}`)
  await fetch(`${base}/broadcast?token=${serviceToken}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"data":1}' })
  await fetch(`${base}/ws?token=${userToken}`, { method: 'OPTIONS' })
  const encoded = new WebSocket(`${ws}/ws?tok%65n=${userToken}`)
  await once(encoded, 'open')
  encoded.close()
  await once(encoded, 'close')
  await until(() => logged.includes('tok%65n=[redacted]'), 'the encoded upgrade to be logged, redacted')
  t.notOk(logged.includes(userToken), 'the user token is in no log line')
  t.notOk(logged.includes(serviceToken), 'the service token is in no log line')
  t.notOk(logged.includes(userToken.split('.')[2] as string), 'nor its signature alone')
})

t.test('the example serves Centrifugo\'s server API with API_KEY set, and not without it', async (t) => {
  const key = 'example-api-key-0123456789'
  const { output, base, userToken } = await runExample(t, '../example/server.ts', { PORT: '0', METRICS_PORT: String(await freePort()), API_KEY: key })
  t.match(output, `server API ${base}/api/<method>`, 'the banner says where')
  const { client, events } = sdk(t, `${base.replace('http', 'ws')}/connection/websocket`, { token: userToken })
  client.connect()
  const { events: chat } = await subscribed(client, 'chat:lobby')
  await events.next('connected')
  const published = await centClient(`${base}/api`, key).publish({ channel: 'chat:lobby', data: { text: 'from a service' } })
  t.equal(published.offset, 1)
  t.same((await chat.next('publication')).data, { text: 'from a service' })
  t.equal((await fetch(`${base}/api/publish`, { method: 'POST', headers: { 'x-api-key': 'wrong' }, body: '{}' })).status, 401)

  // Its document holds every method, with both ways in.
  const doc = await (await fetch(`${base}/documentation/json`)).json() as {
    paths: Record<string, { post?: { security?: unknown[], tags?: string[] } }>
    components: { securitySchemes: Record<string, unknown> }
  }
  await t.resolves(SwaggerParser.validate(structuredClone(doc) as never), 'a valid OpenAPI document')
  const methods = ['publish', 'broadcast', 'subscribe', 'unsubscribe', 'disconnect', 'history', 'history_remove', 'presence', 'presence_stats', 'channels', 'info']
  t.same(Object.keys(doc.paths).filter((path) => path.startsWith('/api')).sort(), [...methods.map((method) => `/api/${method}`), '/api', '/api/{method}'].sort())
  for (const method of methods) {
    t.same(doc.paths[`/api/${method}`]?.post?.security, [{ fanoutApiKey: [] }, { fanoutBearer: [] }], `${method}: the key or a token`)
    t.same(doc.paths[`/api/${method}`]?.post?.tags, ['Server API'])
  }
  t.match(doc.components.securitySchemes, { fanoutApiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' }, fanoutBearer: { type: 'http', scheme: 'bearer' } })

  const without = await runExample(t, '../example/server.ts', { PORT: '0', METRICS_PORT: String(await freePort()) })
  t.notMatch(without.output, 'server API')
  const plain = await (await fetch(`${without.base}/documentation/json`)).json() as { paths: Record<string, unknown>, components: { securitySchemes: Record<string, unknown> } }
  t.notOk(Object.keys(plain.paths).some((path) => path.startsWith('/api')), 'nor in the document')
  t.same(Object.keys(plain.components.securitySchemes), ['fanoutBearer'])
  t.equal((await fetch(`${without.base}/api/publish`, { method: 'POST', headers: { 'x-api-key': key }, body: '{}' })).status, 404, 'no API_KEY, no API')
})
