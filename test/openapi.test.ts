import { randomBytes } from 'node:crypto'
import { request, type IncomingHttpHeaders } from 'node:http'
import type { Socket } from 'node:net'
import { Writable } from 'node:stream'
import SwaggerParser from '@apidevtools/swagger-parser'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { Ajv, type ValidateFunction } from 'ajv'
import { Ajv2020 } from 'ajv/dist/2020.js'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import t, { type Test } from 'tap'
import type { WebSocket } from 'ws'
import fanout, { type FanoutOptions, OPENAPI_API_KEY_SCHEME, OPENAPI_BEARER_SCHEME } from '../lib/index.js'
import { SERVER_API_METHODS } from '../lib/http/server-api/methods.js'
import { sdk as centrifugeClient, subscribed } from './centrifuge-helpers.js'
import { build, connect, SECRET, serviceToken, token, until } from './helpers.js'
import { randomPrefix, startRedis } from './redis-helpers.js'

// The document @fastify/swagger makes of fastify-fanout's routes is checked
// twice: as a document (valid OpenAPI 3.0 and 3.1, every operation with its
// security and refusals), and against the server: every status documented
// for fastify-fanout's operations is provoked on a real server, and the
// answer's body validated against the schema documented for that status,
// closed (a property the server sends and the document does not name fails),
// so the document and the behaviour cannot drift apart.
//
// Validator: @apidevtools/swagger-parser, the one @fastify/swagger's own
// tests use: it checks a document against the official OpenAPI 2.0, 3.0 and
// 3.1 JSON Schemas and then what those schemas cannot say (unique
// operationIds, path parameters that match the path ...), and resolves `$ref`s.

type Schema = Record<string, unknown>
interface Response { description: string, headers?: Record<string, unknown>, content?: Record<string, { schema?: Schema }> }
interface Operation {
  operationId?: string
  summary?: string
  tags?: string[]
  security?: Array<Record<string, string[]>>
  requestBody?: { content: Record<string, { schema: Schema & { example?: unknown } }> }
  responses: Record<string, Response>
}
interface Document {
  openapi: string
  security?: Array<Record<string, string[]>>
  components?: { securitySchemes?: Record<string, Schema> }
  paths: Record<string, Record<string, Operation>>
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']

/** Every operation of a document, with its path and method. */
function operations (doc: Document): Array<{ path: string, method: string, operation: Operation }> {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).filter(([method]) => METHODS.includes(method)).map(([method, operation]) => ({ path, method, operation })))
}

/** An app with @fastify/swagger (and @fastify/swagger-ui) registered before fastify-fanout, listening. */
async function documented (t: Test, options: Partial<FanoutOptions> = {}, swaggerOptions: Record<string, unknown> = { openapi: { info: { title: 'test', version: '1.0.0' } } },
  serverOptions: FastifyServerOptions = {}, routes: (app: FastifyInstance) => void = () => {}): Promise<{ app: FastifyInstance, url: string }> {
  const app = Fastify(serverOptions)
  t.teardown(() => app.close())
  await app.register(swagger, swaggerOptions)
  await app.register(swaggerUi, { routePrefix: '/documentation' })
  await app.register(fanout, { jwt: { secret: SECRET }, ...options })
  routes(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  return { app, url: `http://127.0.0.1:${port}` }
}

async function fetchDocument (url: string): Promise<Document> {
  const response = await fetch(`${url}/documentation/json`)
  if (response.status !== 200) throw new Error(`/documentation/json answered ${response.status}`)
  return await response.json() as Document
}

interface Answer { status: number, headers: IncomingHttpHeaders, text: string }

/** One HTTP request over a fresh connection; a 101 is answered by closing the upgraded socket at once. */
async function send (url: string, { method = 'GET', headers = {}, body }: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const outgoing = request(url, { method, headers, agent: false }, (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { text += chunk })
      response.on('end', () => { resolve({ status: response.statusCode ?? 0, headers: response.headers, text }) })
    })
    outgoing.on('upgrade', (response, socket: Socket) => {
      socket.destroy()
      resolve({ status: response.statusCode ?? 0, headers: response.headers, text: '' })
    })
    outgoing.on('error', reject)
    outgoing.end(body)
  })
}

/** The headers of a WebSocket upgrade request, with `extra`. */
function upgrade (extra: Record<string, string> = {}): Record<string, string> {
  return { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64'), ...extra }
}

const bearer = (jwt: string): Record<string, string> => ({ authorization: `Bearer ${jwt}` })
const KEY = 'openapi-test-api-key-0123456789'
const keyed: Record<string, string> = { 'x-api-key': KEY }
const json = { 'content-type': 'application/json' }
const expired = (): string => token({ sub: 'alice', exp: Math.floor(Date.now() / 1000) - 3600 })

/**
 * `schema` closed: every object schema that names its properties and says
 * nothing of others refuses others, so a member the server sends and the
 * document leaves out fails validation.
 */
function closed (schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closed)
  if (schema === null || typeof schema !== 'object') return schema
  const copy: Schema = Object.fromEntries(Object.entries(schema).map(([key, value]) => [key, key === 'enum' || key === 'example' ? value : closed(value)]))
  if (copy.properties !== undefined && copy.additionalProperties === undefined) copy.additionalProperties = false
  return copy
}

/** Compiles a documented schema: OpenAPI 3.0's dialect (draft 4-ish, `nullable`, `example`) or 3.1's (JSON Schema 2020-12). */
function compiler (version: string): (schema: Schema) => ValidateFunction {
  const options = { strict: true, allErrors: true, keywords: ['example', 'x-response-description'] }
  const ajv = version.startsWith('3.0') ? new Ajv(options) : new Ajv2020(options)
  return (schema) => ajv.compile(schema)
}

/** Every value of a member named `code` in `value`, however deep (Fastify's are strings, Centrifugo's numbers). */
function codesIn (value: unknown, into = new Set<string>()): Set<string> {
  if (Array.isArray(value)) {
    for (const item of value) codesIn(item, into)
  } else if (value !== null && typeof value === 'object') {
    for (const [key, member] of Object.entries(value)) {
      if (key === 'code' && (typeof member === 'string' || typeof member === 'number')) into.add(String(member))
      else codesIn(member, into)
    }
  }
  return into
}

/** Every code a documented schema lists (`enum` of a property named `code`), however deep. */
function documentedCodes (schema: unknown, into = new Set<string>()): Set<string> {
  if (Array.isArray(schema)) {
    for (const item of schema) documentedCodes(item, into)
  } else if (schema !== null && typeof schema === 'object') {
    const properties = (schema as Schema).properties as Record<string, Schema> | undefined
    for (const code of (properties?.code?.enum as Array<string | number> | undefined) ?? []) into.add(String(code))
    for (const member of Object.values(schema)) documentedCodes(member, into)
  }
  return into
}

// The server API's operations: one per method, `POST /api` (Centrifugo's
// single endpoint, not served) and `POST /api/{method}` (the methods it does
// not have), called here as `/api/batch`.
const API_PATHS = [...SERVER_API_METHODS.map((method) => `/api/${method}`), '/api', '/api/{method}']
const apiUrl = (path: string): string => path === '/api/{method}' ? '/api/batch' : path

t.test('the document is valid OpenAPI 3.0 and 3.1; every operation has security, schemes that exist, and its refusals', async (t) => {
  for (const version of ['3.0.3', '3.1.0']) {
    const { url } = await documented(t, { centrifuge: true, serverApi: { key: KEY } }, { openapi: { openapi: version, info: { title: 'test', version: '1.0.0' } } })
    const doc = await fetchDocument(url)
    t.equal(doc.openapi, version)
    await t.resolves(SwaggerParser.validate(structuredClone(doc) as never), `${version}: valid for swagger-parser`)
    t.match(doc.components?.securitySchemes?.fanoutBearer, { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: String })
    t.match(doc.components?.securitySchemes?.fanoutApiKey, { type: 'apiKey', in: 'header', name: 'X-API-Key', description: String })

    const compile = compiler(version)
    const found = operations(doc)
    const expected = [['/broadcast', 'post'], ['/ws', 'get'], ['/connection/websocket', 'get'], ['/fanout/ready', 'get'], ['/metrics', 'get'], ...API_PATHS.map((path) => [path, 'post'])]
    t.equal(found.length, expected.length, `${version}: fastify-fanout's operations, and no other`)
    for (const [path, method] of expected) {
      t.ok(found.some((entry) => entry.path === path && entry.method === method), `${version}: ${method.toUpperCase()} ${path} is documented`)
    }
    t.notOk(found.some((entry) => entry.path.startsWith('/documentation')), 'swagger-ui hides its own routes')
    // Every operation, fastify-fanout's and any other route's the plugin adds.
    for (const { path, method, operation } of found) {
      const name = `${version} ${method.toUpperCase()} ${path}`
      t.ok(operation.summary !== undefined && operation.summary !== '', `${name}: a summary`)
      t.ok((operation.tags ?? []).length > 0, `${name}: tags`)
      t.ok(Array.isArray(operation.security), `${name}: its own security (an empty list when it needs no token)`)
      for (const requirement of operation.security ?? []) {
        for (const scheme of Object.keys(requirement)) t.ok(doc.components?.securitySchemes?.[scheme] !== undefined, `${name}: scheme ${scheme} is defined`)
      }
      if ((operation.security ?? []).length > 0) {
        t.ok(operation.responses['401']?.headers?.['WWW-Authenticate'] !== undefined, `${name}: needs a token, so documents 401 with WWW-Authenticate`)
      }
      if (operation.requestBody !== undefined) {
        // An operation that takes any media type (`*/*`) refuses none: no 415.
        const anyMedia = '*/*' in operation.requestBody.content
        for (const status of anyMedia ? ['400', '413'] : ['400', '413', '415']) t.ok(operation.responses[status] !== undefined, `${name}: reads a body, so documents ${status}`)
        for (const [media, { schema }] of Object.entries(operation.requestBody.content)) {
          if (schema.example === undefined) continue
          const validate = compile(schema)
          t.ok(validate(schema.example), `${name} ${media}: the example body matches its schema ${JSON.stringify(validate.errors ?? [])}`)
        }
      }
      t.ok(Object.keys(operation.responses).some((status) => status >= '400'), `${name}: documents its refusals`)
      for (const [status, response] of Object.entries(operation.responses)) {
        t.ok(response.description !== '' && response.description !== 'Default Response', `${name} ${status}: described`)
        for (const [media, { schema }] of Object.entries(response.content ?? {})) {
          t.ok(schema !== undefined, `${name} ${status} ${media}: a schema`)
          t.doesNotThrow(() => compile(closed(schema) as Schema), `${name} ${status} ${media}: the schema compiles (Ajv, strict)`)
        }
      }
    }
  }
})

// What each status documented for fastify-fanout's operations was provoked by.
const provoked = new Map<string, Set<string>>()

/**
 * Checks a real answer against the document: the status is documented for
 * the operation, the answer's media type is the documented one, its body
 * matches the schema (closed), the documented headers are sent, and its
 * code is documented (listed, or named in the description).
 */
function conforms (t: Test, doc: Document, path: string, method: string, answer: Answer, status: number, what: string): void {
  const name = `${method.toUpperCase()} ${path} ${status} (${what})`
  t.equal(answer.status, status, `${name}: status`)
  const response = doc.paths[path]?.[method]?.responses[String(status)]
  if (response === undefined) {
    t.fail(`${name}: not documented`)
    return
  }
  const key = `${method} ${path} ${status}`
  const seen = provoked.get(key) ?? new Set<string>()
  provoked.set(key, seen)
  seen.add(`status:${status}`)
  for (const header of Object.keys(response.headers ?? {})) t.ok(answer.headers[header.toLowerCase()] !== undefined, `${name}: sends ${header}`)
  if (response.content === undefined) {
    t.equal(answer.text, '', `${name}: no body`)
    return
  }
  const media = (answer.headers['content-type'] ?? '').split(';')[0]?.trim() ?? ''
  const documentedMedia = response.content[media]
  t.ok(documentedMedia !== undefined, `${name}: ${media} is documented (${Object.keys(response.content).join(', ')})`)
  if (documentedMedia?.schema === undefined) return
  const body: unknown = media === 'application/json' ? JSON.parse(answer.text) : answer.text
  const validate = compiler(doc.openapi)(closed(documentedMedia.schema) as Schema)
  t.ok(validate(body), `${name}: the body matches the documented schema ${JSON.stringify(validate.errors ?? [])} ${answer.text.slice(0, 300)}`)
  const listed = documentedCodes(documentedMedia.schema)
  for (const code of codesIn(body)) {
    seen.add(code)
    t.ok(listed.has(code) || response.description.includes(code), `${name}: its code ${code} is documented`)
  }
}

t.test('every status documented for fastify-fanout\'s routes is what a real server answers, and the other way round', async (t) => {
  const channels = { namespaces: { chat: { historySize: 10, historyTtl: 60_000, presence: true } } }
  const serverApi = { key: KEY }
  const { app, url } = await documented(t, { centrifuge: true, bodyLimit: 1024, channels, serverApi })
  const doc = await fetchDocument(url)
  const check = (path: string, method: string, answer: Answer, status: number, what: string): void => { conforms(t, doc, path, method, answer, status, what) }
  const post = async (base: string, body: string, headers: Record<string, string> = { ...json, ...bearer(serviceToken()) }): Promise<Answer> =>
    await send(`${base}/broadcast`, { method: 'POST', headers, body })

  // POST /broadcast
  check('/broadcast', 'post', await post(url, '{"data":{"text":"hi"}}'), 202, 'to every client')
  check('/broadcast', 'post', await post(url, '{"data":1,"channel":"chat:a"}'), 202, 'to a channel with history')
  check('/broadcast', 'post', await post(url, '{"data":1,"channels":["chat:a","news"]}'), 202, 'to channels')
  check('/broadcast', 'post', await post(url, '{"data":1,"user":["alice"]}'), 400, 'an unknown member')
  check('/broadcast', 'post', await post(url, '{"data":'), 400, 'not JSON')
  check('/broadcast', 'post', await post(url, ''), 400, 'an empty body')
  check('/broadcast', 'post', await post(url, '{"data":1}', json), 401, 'no token')
  check('/broadcast', 'post', await post(url, '{"data":1}', { ...json, ...bearer('not.a.token') }), 401, 'a malformed token')
  check('/broadcast', 'post', await post(url, '{"data":1}', { ...json, ...bearer(expired()) }), 401, 'an expired token')
  check('/broadcast', 'post', await post(url, '{"data":1}', { ...json, ...bearer(token()) }), 403, 'a token without the scope')
  check('/broadcast', 'post', await post(url, JSON.stringify({ data: 'x'.repeat(2000) })), 413, 'over bodyLimit')
  check('/broadcast', 'post', await post(url, '<data/>', { 'content-type': 'application/xml', ...bearer(serviceToken()) }), 415, 'XML')

  // The WebSocket endpoints' HTTP answers
  const ws = '/ws'
  const sdk = '/connection/websocket'
  check(ws, 'get', await send(url + ws, { headers: upgrade(bearer(token())) }), 101, 'a token in the header')
  check(ws, 'get', await send(`${url}${ws}?token=${token()}`, { headers: upgrade({ 'sec-websocket-key': 'short' }) }), 400, 'a malformed Sec-WebSocket-Key')
  check(ws, 'get', await send(url + ws, { headers: upgrade() }), 401, 'no token')
  check(ws, 'get', await send(url + ws, { headers: upgrade(bearer('not.a.token')) }), 401, 'a malformed token')
  check(ws, 'get', await send(url + ws, { headers: upgrade(bearer(expired())) }), 401, 'an expired token')
  check(ws, 'get', await send(url + ws, { headers: upgrade({ ...bearer(token()), origin: 'https://evil.example' }) }), 403, 'a foreign Origin')
  check(ws, 'get', await send(url + ws, { headers: bearer(token()) }), 426, 'a plain GET')
  check(sdk, 'get', await send(url + sdk, { headers: upgrade({ 'sec-websocket-protocol': 'centrifuge-json' }) }), 101, 'the SDK\'s upgrade')
  check(sdk, 'get', await send(url + sdk, { headers: upgrade({ 'sec-websocket-version': '7' }) }), 400, 'a WebSocket version ws does not speak')
  check(sdk, 'get', await send(url + sdk, { headers: upgrade({ 'sec-websocket-protocol': 'mqtt' }) }), 400, 'a subprotocol it does not speak')
  check(sdk, 'get', await send(url + sdk, { headers: upgrade({ 'sec-websocket-protocol': 'centrifuge-protobuf' }) }), 101, 'the Protobuf SDK\'s upgrade')
  check(sdk, 'get', await send(url + sdk, { headers: upgrade({ origin: 'https://evil.example' }) }), 403, 'a foreign Origin')
  check(sdk, 'get', await send(url + sdk), 426, 'a plain GET')

  check('/fanout/ready', 'get', await send(`${url}/fanout/ready`), 200, 'ready')
  check('/metrics', 'get', await send(`${url}/metrics`), 200, 'scraped')
  await until(() => app.fanout.size === 0, 'the upgraded sockets to be gone')

  // The server API: each method's result and each Centrifugo error it
  // lists (HTTP 200 either way), then the refusals before a method runs.
  const api = async (base: string, path: string, body: string, headers: Record<string, string> = keyed): Promise<Answer> =>
    await send(base + apiUrl(path), { method: 'POST', headers, body })
  /** A 200 on `path`, checked against the document, and its `result` or error `code`. */
  const called = async (path: string, body: unknown, expected: 'result' | number, what: string, base = url, headers = keyed): Promise<any> => {
    const answer = await api(base, path, JSON.stringify(body), headers)
    check(path, 'post', answer, 200, what)
    const reply = JSON.parse(answer.text)
    if (expected === 'result') t.ok(reply.result !== undefined, `${path} (${what}): a result ${answer.text.slice(0, 300)}`)
    else t.equal(reply.error?.code, expected, `${path} (${what}): error ${expected}`)
    return reply
  }
  // A subscriber, so that presence, channels and info have something to say.
  const { client } = centrifugeClient(t, `${url.replace('http', 'ws')}/connection/websocket`, { token: token({ sub: 'alice' }) })
  client.connect()
  await subscribed(client, 'chat:a')
  await called('/api/publish', { channel: 'chat:a', data: { text: 'hi' } }, 'result', 'a channel with history')
  await called('/api/publish', { channel: 'news', data: 1 }, 'result', 'a channel without history')
  const broadcast = await called('/api/broadcast', { channels: ['chat:a', 'news', 'nope:1', ''], data: 1 }, 'result', 'each channel\'s result or error')
  t.same(broadcast.result.responses.map((response: any) => response.error?.code ?? 'result'), ['result', 'result', 102, 107])
  await called('/api/history', { channel: 'chat:a', limit: -1 }, 'result', 'publications')
  t.same(Object.values((await called('/api/presence', { channel: 'chat:a' }, 'result', 'one subscriber')).result.presence).length, 1)
  await called('/api/presence_stats', { channel: 'chat:a' }, 'result', 'counts')
  await called('/api/channels', {}, 'result', 'chat:a')
  await called('/api/info', {}, 'result', 'this instance', url, bearer(serviceToken()))
  await called('/api/subscribe', { user: 'alice', channel: 'chat:b' }, 'result', 'alice\'s connection')
  await called('/api/unsubscribe', { user: 'alice', channel: 'chat:b' }, 'result', 'alice\'s connection')
  await called('/api/history_remove', { channel: 'chat:a' }, 'result', 'chat:a')
  await called('/api/disconnect', { user: 'alice' }, 'result', 'alice')
  await until(() => app.fanout.size === 0, 'alice to be disconnected')
  for (const method of SERVER_API_METHODS) await called(`/api/${method}`, { unknown_field: 1 }, 107, 'an unknown field')
  for (const method of ['publish', 'subscribe', 'unsubscribe', 'history', 'history_remove', 'presence', 'presence_stats']) {
    const user = method === 'subscribe' || method === 'unsubscribe' ? { user: 'alice' } : {}
    await called(`/api/${method}`, { ...user, channel: 'nope:1' }, 102, 'a namespace not configured')
  }
  for (const [method, body] of [
    ['publish', { channel: 'chat:a', data: 1, tags: { a: 'b' } }],
    ['broadcast', { channels: ['chat:a'], data: 1, idempotency_key: 'once' }],
    ['subscribe', { user: 'alice', channel: 'chat:a', expire_at: 5 }],
    ['unsubscribe', { user: 'alice', channel: 'chat:a', session: 's' }],
    ['disconnect', { user: 'alice', whitelist: ['c'] }],
    ['history', { channel: 'news' }],
    ['history_remove', { channel: 'news' }],
    ['presence', { channel: 'news' }],
    ['presence_stats', { channel: 'news' }]
  ] as const) await called(`/api/${method}`, body, 108, 'what is not available')
  await called('/api/history', { channel: 'chat:a', since: { offset: 0, epoch: 'another' } }, 112, 'another epoch')
  await called('/api', { method: 'publish', params: {} }, 104, 'the single endpoint')
  await called('/api/{method}', {}, 104, 'Centrifugo\'s batch')
  for (const path of API_PATHS) {
    check(path, 'post', await api(url, path, '{"channel":'), 400, 'not JSON')
    check(path, 'post', await api(url, path, '{}', {}), 401, 'no credentials')
    check(path, 'post', await api(url, path, '{}', { 'x-api-key': 'wrong' }), 401, 'a wrong key')
    check(path, 'post', await api(url, path, '{}', bearer('not.a.token')), 401, 'a malformed token')
    check(path, 'post', await api(url, path, '{}', bearer(expired())), 401, 'an expired token')
    check(path, 'post', await api(url, path, '{}', bearer(token())), 403, 'a token without the scope')
    check(path, 'post', await api(url, path, JSON.stringify({ data: 'x'.repeat(2000) })), 413, 'over bodyLimit')
  }
  check('/api/publish', 'post', await api(url, '/api/publish', '{"channel":5}'), 400, 'a value of the wrong type')

  // Limits: the user's, then the instance's.
  const full = await build(t, { centrifuge: true, maxConnections: 2, maxConnectionsPerUser: 1 })
  await connect(t, full.wsUrl, token({ sub: 'alice' }))
  check(ws, 'get', await send(full.url + ws, { headers: upgrade(bearer(token({ sub: 'alice' }))) }), 429, 'a user at maxConnectionsPerUser')
  await connect(t, full.wsUrl, token({ sub: 'bob' }))
  check(ws, 'get', await send(full.url + ws, { headers: upgrade(bearer(token({ sub: 'carol' }))) }), 503, 'an instance at maxConnections')
  check(sdk, 'get', await send(full.url + sdk, { headers: upgrade() }), 503, 'an instance at maxConnections')

  // A key provider that fails is the server's fault: 500, never a token's.
  const keyless = await build(t, { jwt: { secret: async () => { throw new Error('the key store is down') } }, serverApi }, { logger: false })
  check('/broadcast', 'post', await post(keyless.url, '{"data":1}'), 500, 'a failing key provider')
  check(ws, 'get', await send(keyless.url + ws, { headers: upgrade(bearer(token())) }), 500, 'a failing key provider')
  for (const path of API_PATHS) check(path, 'post', await api(keyless.url, path, '{}', bearer(serviceToken())), 500, 'a failing key provider')

  // Redis unreachable: each of the broadcast's 503 answers, and readiness.
  const redis = await startRedis(t)
  const down = await build(t, { centrifuge: true, redis: redis.url, channelPrefix: randomPrefix(), backplaneGap: 'keep', channels, serverApi }, { logger: false })
  await redis.kill()
  await until(() => !down.app.fanout.backplaneUp, 'the instance to see Redis gone')
  check('/broadcast', 'post', await post(down.url, '{"data":1}'), 503, 'users, delivered here only')
  check('/broadcast', 'post', await post(down.url, '{"data":1,"channel":"chat:a"}'), 503, 'a channel with history: not published')
  check('/broadcast', 'post', await post(down.url, '{"data":1,"channel":"news"}'), 503, 'a channel without history: delivered here only')
  check('/broadcast', 'post', await post(down.url, '{"data":1,"channels":["news","chat:a"]}'), 503, 'channels, each saying what happened')
  check('/fanout/ready', 'get', await send(`${down.url}/fanout/ready`), 503, 'Redis unreachable')
  for (const [method, body] of [
    ['publish', { channel: 'news', data: 1 }],
    ['subscribe', { user: 'alice', channel: 'chat:a' }],
    ['unsubscribe', { user: 'alice', channel: 'chat:a' }],
    ['disconnect', { user: 'alice' }],
    ['history', { channel: 'chat:a' }],
    ['history_remove', { channel: 'chat:a' }],
    ['presence', { channel: 'chat:a' }],
    ['presence_stats', { channel: 'chat:a' }],
    ['channels', {}],
    ['info', {}]
  ] as const) await called(`/api/${method}`, body, 100, 'Redis unreachable', down.url)
  const unpublished = await called('/api/broadcast', { channels: ['news', 'chat:a'], data: 1 }, 'result', 'Redis unreachable: each channel says so', down.url)
  t.same(unpublished.result.responses.map((response: any) => response.error?.code), [100, 100])

  // Closing: Fastify's own 503 on every route (return503OnClosing), then ours without it.
  for (const return503OnClosing of [true, false]) {
    const closing = await build(t, { centrifuge: true, closeTimeout: 3000, serverApi }, { return503OnClosing })
    const stuck: WebSocket = await connect(t, closing.wsUrl)
    ;(stuck as unknown as { _socket: Socket })._socket.pause() // never answers the close frame: close() waits for it
    const closed = closing.app.close()
    await until(() => closing.app.websocketServer.clients.values().next().value?.readyState === 2, 'the closing handshake to start')
    const how = return503OnClosing ? 'closing (Fastify\'s answer)' : 'closing (ours)'
    check(ws, 'get', await send(closing.url + ws, { headers: upgrade(bearer(token())) }), 503, how)
    check(sdk, 'get', await send(closing.url + sdk, { headers: upgrade() }), 503, how)
    check('/fanout/ready', 'get', await send(`${closing.url}/fanout/ready`), 503, how)
    if (return503OnClosing) {
      check('/broadcast', 'post', await post(closing.url, '{"data":1}'), 503, how)
      check('/metrics', 'get', await send(`${closing.url}/metrics`), 503, how)
      for (const path of API_PATHS) check(path, 'post', await api(closing.url, path, '{}'), 503, how)
    }
    stuck.terminate()
    await closed
  }

  // The other way round: nothing is documented that was not provoked, and
  // every code documented was seen.
  const ours = new Set(['/broadcast', ws, sdk, '/fanout/ready', '/metrics', ...API_PATHS])
  for (const { path, method, operation } of operations(doc).filter((entry) => ours.has(entry.path))) {
    for (const [status, response] of Object.entries(operation.responses)) {
      const seen = provoked.get(`${method} ${path} ${status}`)
      t.ok(seen?.has(`status:${status}`) ?? false, `${method.toUpperCase()} ${path} ${status} was provoked`)
      for (const [, { schema }] of Object.entries(response.content ?? {})) {
        for (const code of documentedCodes(schema)) t.ok(seen?.has(code) ?? false, `${method.toUpperCase()} ${path} ${status}: ${code} was provoked`)
      }
    }
  }
})

t.test('a Swagger 2.0 document leaves fastify-fanout\'s routes out, says so in the log, and stays valid', async (t) => {
  let logged = ''
  const stream = new Writable({ write (chunk: Buffer, _encoding, done) { logged += chunk.toString(); done() } })
  const { url } = await documented(t, { serverApi: { key: KEY } }, { swagger: { info: { title: 'test', version: '1.0.0' } } }, { logger: { level: 'warn', stream } })
  const doc = await fetchDocument(url) as unknown as { swagger: string, paths: Record<string, unknown> }
  t.equal(doc.swagger, '2.0')
  t.same(Object.keys(doc.paths), [], 'none of its routes')
  await t.resolves(SwaggerParser.validate(structuredClone(doc) as never), 'valid Swagger 2.0')
  t.match(logged, /POST \/broadcast is left out of the Swagger 2.0 document: register @fastify\/swagger with `openapi`/)
  t.match(logged, /GET \/ws is left out/)
  t.match(logged, /POST \/api\/publish is left out/)
})

t.test('the app\'s own document settings stay its own', async (t) => {
  t.equal(OPENAPI_BEARER_SCHEME, 'fanoutBearer')
  t.equal(OPENAPI_API_KEY_SCHEME, 'fanoutApiKey')
  const securitySchemes = { [OPENAPI_BEARER_SCHEME]: { type: 'http', scheme: 'bearer', description: 'Tokens from our identity service' } }
  const options = {
    openapi: { info: { title: 'test', version: '1.0.0' }, components: { securitySchemes }, security: [{ [OPENAPI_BEARER_SCHEME]: [] }] },
    // The app's global transform: fastify-fanout's routes have their own.
    transform: ({ schema, url }: { schema: unknown, url: string }) => ({ schema: { ...(schema as object), tags: ['App'] }, url })
  }
  const { url } = await documented(t, { serverApi: { key: KEY } }, options, {}, (app) => {
    app.get('/mine', { schema: { summary: 'the app\'s route' } }, async () => ({}))
  })
  const doc = await fetchDocument(url)
  t.same(doc.components?.securitySchemes?.fanoutBearer, securitySchemes[OPENAPI_BEARER_SCHEME], 'a scheme the app defined under that name is kept')
  t.match(doc.components?.securitySchemes?.fanoutApiKey, { type: 'apiKey', in: 'header', name: 'X-API-Key' }, 'one it did not is added')
  t.same(Object.keys(securitySchemes), ['fanoutBearer'], 'the app\'s options are not changed')
  t.same(doc.paths['/api/publish']?.post?.security, [{ fanoutApiKey: [] }, { fanoutBearer: [] }], 'the server API takes the key or a token')
  t.same(doc.paths['/fanout/ready']?.get?.security, [], 'the readiness probe needs no token, whatever the document\'s default')
  t.same(doc.paths['/broadcast']?.post?.tags, ['Broadcast'], 'the app\'s transform does not apply to fastify-fanout\'s routes')
  t.same(doc.paths['/mine']?.get?.tags, ['App'], 'but to the app\'s')
  t.same(doc.security, [{ fanoutBearer: [] }])
})

t.test('without serverApi.key the server API takes tokens only, and the document has no API key scheme', async (t) => {
  const { url } = await documented(t, { serverApi: true })
  const doc = await fetchDocument(url)
  for (const path of API_PATHS) t.same(doc.paths[path]?.post?.security, [{ fanoutBearer: [] }], path)
  t.same(Object.keys(doc.components?.securitySchemes ?? {}), ['fanoutBearer'])
  t.match(doc.paths['/api/publish']?.post?.responses['401']?.headers?.['WWW-Authenticate'], { description: /`Bearer`, for missing credentials/ })
  const refused = await send(`${url}/api/publish`, { method: 'POST', headers: keyed, body: '{}' })
  t.equal(refused.headers['www-authenticate'], 'Bearer', 'the 401 names the one scheme')
})

t.test('registered or not, @fastify/swagger changes no answer: bodies are written as they were, the app\'s error handler\'s too', async (t) => {
  const answers = async (withSwagger: boolean): Promise<string[]> => {
    const app = Fastify()
    t.teardown(() => app.close())
    if (withSwagger) await app.register(swagger, { openapi: { info: { title: 'test', version: '1.0.0' } } })
    await app.register(async (scope) => {
      // An app whose error handler answers in its own shape.
      scope.setErrorHandler(async (error: { statusCode?: number, code?: string }, _request, reply) => await reply.code(error.statusCode ?? 500).send({ failed: error.code, extra: [1] }))
      await scope.register(fanout, { jwt: { secret: SECRET }, centrifuge: true, bodyLimit: 1024, serverApi: { key: KEY } })
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = app.server.address() as { port: number }
    const base = `http://127.0.0.1:${port}`
    const post = async (body: string, headers: Record<string, string> = { ...json, ...bearer(serviceToken()) }): Promise<Answer> =>
      await send(`${base}/broadcast`, { method: 'POST', headers, body })
    const texts = [
      await post('{"data":{"a":[1,"b",null]}}'),
      await post('{"data":1,"channel":"news"}'),
      await post('{"data":1,"channels":["news","other"]}'),
      await post('{}'),
      await post('{"data":1}', json),
      await post('x'.repeat(2000)),
      await send(`${base}/ws`),
      await send(`${base}/fanout/ready`),
      await send(`${base}/api/publish`, { method: 'POST', headers: keyed, body: '{"channel":"news","data":{"a":[1]}}' }),
      await send(`${base}/api/publish`, { method: 'POST', headers: keyed, body: '{"channel":"nope:1","data":1}' }),
      await send(`${base}/api/publish`, { method: 'POST', body: '{}' }),
      await send(`${base}/api/publish`, { method: 'POST', headers: keyed, body: '{"channel":5}' }),
      await send(`${base}/api/info`, { method: 'POST', headers: keyed, body: 'x'.repeat(2000) })
    ]
    return texts.map((answer) => `${answer.status} ${answer.text.replace(/"id":"[^"]+"/g, '"id":"-"')}`)
  }
  const plain = await answers(false)
  t.same(await answers(true), plain)
  t.match(plain[0], /^202 \{"id":"-","delivered":0,"dropped":0,"instances":1\}$/)
  t.match(plain[2], /^202 \{"channels":\{"news":\{"id":"-",.*\},"other":\{"id":"-",/)
  t.equal(plain[3], '400 {"failed":"FST_FANOUT_INVALID_BROADCAST","extra":[1]}', 'the app\'s error body, not cut to a documented schema')
  t.equal(plain[4], '401 {"failed":"FST_FANOUT_TOKEN_MISSING","extra":[1]}')
  t.equal(plain[6], '426 {"failed":"FST_FANOUT_UPGRADE_REQUIRED","extra":[1]}')
  t.equal(plain[8], '200 {"result":{}}')
  t.match(plain[9], /^200 \{"error":\{"code":102,"message":"unknown channel: /)
  t.equal(plain[10], '401 {"failed":"FST_FANOUT_API_CREDENTIALS_MISSING","extra":[1]}', 'the server API\'s refusals too')
  t.equal(plain[11], '400 {"failed":"FST_FANOUT_INVALID_API_REQUEST","extra":[1]}')
  t.equal(plain[12], '413 {"failed":"FST_ERR_CTP_BODY_TOO_LARGE","extra":[1]}')
})
