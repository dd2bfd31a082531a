// The example server: fastify-fanout on its embedded backplane, configured
// from the environment. `npm start` runs it. It serves two endpoints:
//
//   /ws                     the plain protocol (page: /)
//   /connection/websocket   Centrifugo's client protocol, for centrifuge-js
//                           and the other JSON SDKs (page: /channels)
//
// and one channel namespace, `chat` (chat:lobby, chat:anything):
//
//   history     the last 100 publications of each channel, kept for 5 minutes
//               after its last one (in Redis with REDIS_URL, so they survive a
//               restart; in this process's memory otherwise)
//   recovery    a client that reconnects gets what it missed from that history,
//               or is told it could not (the stream is new: a restart without Redis)
//   presence    who is subscribed, for sub.presence()
//   joinLeave   subscribers that ask for it see others join and leave
//   subscribe   any authenticated user ('user', the default)
//   publish     any subscriber may publish from the client (true)
//
// Other channels are refused (102 unknown channel) except those without a
// namespace (`news`), which clients may subscribe to but not publish on.
// Services publish to a channel with POST /broadcast {"channel", "data"},
// or, with API_KEY set, with Centrifugo's HTTP server API (POST /api/publish
// and the other methods) and its libraries (cent.js, cent, gocent).
//
// The HTTP API is described with OpenAPI by @fastify/swagger: the document at
// /documentation/json, Swagger UI at /documentation (with API_KEY set, the
// server API's methods too; Swagger UI's Authorize takes the key).
//
// Environment:
//
//   PORT             port to listen on (default 3000)
//   HOST             address to listen on (default 127.0.0.1)
//   JWT_SECRET       HS256 secret; when unset a random development secret is
//                    made and ready-to-use tokens are printed
//   ALLOWED_ORIGINS  comma-separated browser origins allowed to connect
//                    (default: same origin only)
//   REDIS_URL        join every instance on this Redis (default: embedded
//                    backplane, this process only)
//   METRICS_PORT     internal port serving /metrics (default 9091; under
//                    example/cluster.ts the primary serves it, for every worker)
//   METRICS_HOST     address of the metrics port (default 127.0.0.1)
//   API_KEY          serve Centrifugo's HTTP server API under /api, for this
//                    key in X-API-Key (default: not served)
import cluster from 'node:cluster'
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import fastifyJwt from '@fastify/jwt'
import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import fanout, { logHooks, serializers } from '../lib/index.js'
import { publicServerOptions } from './http-options.js'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'
// Under example/cluster.ts the primary makes the development secret and
// hands it to every worker, so that one token works on all of them.
const development = process.env.JWT_SECRET === undefined || process.env.JWT_SECRET === '' || process.env.FANOUT_EXAMPLE_DEV === '1'
const secret = process.env.JWT_SECRET !== undefined && process.env.JWT_SECRET !== '' ? process.env.JWT_SECRET : randomBytes(32).toString('base64url')
const redis = process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '' ? process.env.REDIS_URL : undefined
// Workers of example/cluster.ts are numbered from 0. They report their
// metrics to the primary, which serves the whole machine's on the metrics port.
const workerIndex = Number(process.env.FANOUT_WORKER_INDEX ?? 0)
const metricsListen = { port: Number(process.env.METRICS_PORT ?? 9091), host: process.env.METRICS_HOST ?? '127.0.0.1' }
// One banner per machine: in a cluster only the first worker prints it.
const printBanner = !cluster.isWorker || workerIndex === 0
const apiKey = process.env.API_KEY !== undefined && process.env.API_KEY !== '' ? process.env.API_KEY : undefined
const allowedOrigins = process.env.ALLOWED_ORIGINS?.split(',').map((origin) => origin.trim()).filter((origin) => origin !== '')

// Header, request and keep-alive deadlines for a server on the internet (see
// http-options.ts); serializers and logHooks keep tokens out of every log
// line of the app, 404s and client errors included.
const app = Fastify({ ...publicServerOptions, logger: { level: process.env.LOG_LEVEL ?? 'info', serializers, hooks: logHooks } })

// OpenAPI: @fastify/swagger documents the routes registered after it, so it
// comes first. fastify-fanout's routes are tagged; this example's pages are
// not, and stay out of the document.
await app.register(fastifySwagger, {
  openapi: { info: { title: 'fastify-fanout example', description: 'The HTTP API of a fastify-fanout node', version: '0.1.0' } },
  hideUntagged: true
})
await app.register(fastifySwaggerUi, { routePrefix: '/documentation' })

await app.register(fanout, {
  // Pinned: a token signed with any other algorithm is refused.
  jwt: { secret, verify: { algorithms: ['HS256'] } },
  allowedOrigins,
  redis,
  metrics: cluster.isWorker ? { cluster: true } : { listen: metricsListen },
  centrifuge: true,
  serverApi: apiKey === undefined ? false : { key: apiKey },
  channels: {
    namespaces: {
      chat: { historySize: 100, historyTtl: 300_000, recovery: true, presence: true, joinLeave: true, publish: true }
    }
  }
})

// The app's own @fastify/jwt, only to sign the development tokens printed below.
await app.register(fastifyJwt, { secret })
const userToken = development ? app.jwt.sign({ sub: 'demo-user' }, { expiresIn: '12h' }) : ''
const serviceToken = development ? app.jwt.sign({ sub: 'demo-service', scope: 'broadcast' }, { expiresIn: '12h' }) : ''

// A development page's token for the channels page: short-lived, so the
// SDK refreshes it through GET /demo/token (its getToken).
const pageTokenLifetime = '10m'
const demoUser = /^[\w.-]{1,64}$/

const page = await readFile(new URL('./page.html', import.meta.url), 'utf8')
app.get('/', async (request, reply) => {
  // In development, a page asked for from this machine by a loopback name
  // gets a ready user token; any other page asks for one. The service token
  // never goes into the page: its Broadcast button goes through /demo/broadcast.
  const config = development && fromThisMachine(request) ? { userToken, demo: true } : {}
  return await reply.type('text/html; charset=utf-8').send(withConfig(page, config))
})

// The channels page speaks through centrifuge-js, the browser builds that the
// `centrifuge` package ships (dist/centrifuge.js and, for ?codec=protobuf,
// dist/centrifuge.protobuf.js, each defining the global `Centrifuge`), read
// once here and served from this server: no CDN. The package exports no path
// to them, so they are found next to the package's entry.
const channelsPage = await readFile(new URL('./channels.html', import.meta.url), 'utf8')
const sdkDist = join(dirname(createRequire(import.meta.url).resolve('centrifuge')), '..', 'dist')
for (const build of ['centrifuge.js', 'centrifuge.protobuf.js']) {
  const script = await readFile(join(sdkDist, build))
  app.get(`/vendor/${build}`, async (_request, reply) => await reply.type('text/javascript; charset=utf-8').send(script))
}
app.get<{ Querystring: { user?: string, codec?: 'json' | 'protobuf' } }>('/channels', {
  schema: { querystring: { type: 'object', properties: { user: { type: 'string', pattern: demoUser.source }, codec: { enum: ['json', 'protobuf'] } } } }
}, async (request, reply) => {
  // As for /: a token only for this machine's pages, in development. `?user=`
  // picks the user (default demo-user), so that two tabs can be two people;
  // `?codec=protobuf` the SDK's Protobuf build, as the mobile SDKs speak.
  const user = request.query.user ?? 'demo-user'
  const codec = request.query.codec ?? 'json'
  const config = development && fromThisMachine(request) ? { token: app.jwt.sign({ sub: user }, { expiresIn: pageTokenLifetime }), user, demo: true, codec } : { codec }
  const page = codec === 'protobuf' ? channelsPage.replace('/vendor/centrifuge.js', '/vendor/centrifuge.protobuf.js') : channelsPage
  return await reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(withConfig(page, config))
})

if (development) {
  // Development routes answer this machine's pages only: a loopback Host and
  // peer, and an Origin, if any, of the same host (against cross-site requests).
  const thisMachineOnly = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const origin = request.headers.origin
    if (!fromThisMachine(request) || (origin !== undefined && hostOf(origin) !== request.headers.host)) {
      return await reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: 'the demo routes answer pages of this machine only' })
    }
  }

  // The page's Broadcast button: the server broadcasts itself, so the page
  // needs no broadcast token.
  app.post<{ Body: { text: string } }>('/demo/broadcast', {
    onRequest: thisMachineOnly,
    schema: { body: { type: 'object', required: ['text'], additionalProperties: false, properties: { text: { type: 'string', maxLength: 1000 } } } }
  }, async (request, reply) => await reply.code(202).send(await app.fanout.broadcast({ text: request.body.text })))

  // The channels page's getToken: a new short-lived user token, when the SDK
  // refreshes one before it expires, or needs one after this server restarted
  // (a new development secret refuses the old token).
  app.get<{ Querystring: { user?: string } }>('/demo/token', {
    onRequest: thisMachineOnly,
    schema: { querystring: { type: 'object', properties: { user: { type: 'string', pattern: demoUser.source } } } }
  }, async (request, reply) => {
    const token = app.jwt.sign({ sub: request.query.user ?? 'demo-user' }, { expiresIn: pageTokenLifetime })
    return await reply.header('cache-control', 'no-store').send({ token })
  })
}

await app.listen({ port, host })
const { port: actualPort } = app.server.address() as { port: number }
const base = `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`

if (printBanner) {
  process.stdout.write(`\nfastify-fanout example listening on ${base} (pid ${process.pid})\n`)
  process.stdout.write(`  backplane: ${redis === undefined ? 'embedded (this process only)' : `Redis at ${redis.replace(/\/\/[^@]*@/, '//')}`}\n`)
  process.stdout.write(`  open ${base}/ in a browser to watch messages arrive\n`)
  process.stdout.write(`  open ${base}/channels?user=alice and ${base}/channels?user=bob&codec=protobuf for channels (chat:*) through centrifuge-js (JSON and Protobuf)\n`)
  process.stdout.write(`  WebSocket endpoints ${base.replace('http', 'ws')}/ws and ${base.replace('http', 'ws')}/connection/websocket (Centrifugo's client protocol)\n`)
  process.stdout.write(`  HTTP API (OpenAPI) ${base}/documentation, the document at ${base}/documentation/json\n`)
  if (apiKey !== undefined) process.stdout.write(`  server API ${base}/api/<method> (Centrifugo's; key from API_KEY in X-API-Key)\n`)
  process.stdout.write(`  metrics (internal) http://${metricsListen.host.includes(':') ? `[${metricsListen.host}]` : metricsListen.host}:${metricsListen.port}/metrics${cluster.isWorker ? ', the whole machine\'s (served by the primary)' : ''}\n`)
}
if (development && printBanner) {
  process.stdout.write('\nJWT_SECRET is not set: using a random development secret. Tokens valid for 12 hours:\n')
  process.stdout.write(`  user token:    ${userToken}\n`)
  process.stdout.write(`  service token: ${serviceToken}\n\n`)
  process.stdout.write('Broadcast to every client:\n')
  process.stdout.write(`  curl -X POST ${base}/broadcast -H 'authorization: Bearer ${serviceToken}' -H 'content-type: application/json' -d '{"data":{"text":"hello"}}'\n\n`)
}

// Graceful shutdown: clients of /ws get 1001 (going away), SDK clients 3001
// (shutdown, after which they reconnect); then the process exits.
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    app.log.info({ signal }, 'closing: clients get 1001 (/ws) or 3001 (SDK)')
    app.close().then(() => process.exit(0), (err: unknown) => {
      app.log.error({ err }, 'close failed')
      process.exit(1)
    })
  })
}

/** The page with its configuration in place of "__FANOUT_CONFIG__" (as a script literal: no `</script>` can end it). */
function withConfig (html: string, config: Record<string, unknown>): string {
  const literal = JSON.stringify(config).replace(/</g, '\\u003c')
  return html.replace('"__FANOUT_CONFIG__"', () => literal) // a function: `$` in the literal is not a replacement pattern
}

// A development page and its tokens are for this machine only. The Host
// header guards against DNS rebinding (a hostile site pointing its own name
// at 127.0.0.1 sends its name as Host); the peer address against other
// machines that would simply send `Host: localhost`.
function fromThisMachine (request: FastifyRequest): boolean {
  return isLoopbackHost(request.headers.host) && isLoopbackAddress(request.socket.remoteAddress)
}

function isLoopbackHost (header: string | undefined): boolean {
  if (header === undefined) return false
  const match = /^(\[::1\]|[^:[\]]+)(?::\d{1,5})?$/.exec(header)
  if (match === null) return false
  const name = (match[1] as string).toLowerCase()
  return name === 'localhost' || name === '[::1]' || /^127(?:\.\d{1,3}){3}$/.test(name)
}

function isLoopbackAddress (address: string | undefined): boolean {
  return address !== undefined && (address === '::1' || /^(?:::ffff:)?127\./.test(address))
}

function hostOf (origin: string): string | undefined {
  try {
    return new URL(origin).host
  } catch {
    return undefined
  }
}
