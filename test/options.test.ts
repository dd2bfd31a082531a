import { once } from 'node:events'
import t from 'tap'
import { WebSocket } from 'ws'
import Fastify from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import fanout, { type FanoutOptions } from '../lib/index.js'
import { SECRET } from './helpers.js'

async function register (options: unknown): Promise<void> {
  const app = Fastify()
  try {
    await app.register(fanout, options as FanoutOptions)
    await app.ready()
  } finally {
    await app.close()
  }
}

t.test('bad options fail at register time with FST_FANOUT_INVALID_OPTION and say what to fix', async (t) => {
  const jwt = { secret: SECRET }
  const cases: Array<[string, unknown, RegExp]> = [
    ['no jwt', {}, /`jwt` must be @fastify\/jwt options with a `secret`/],
    ['empty secret', { jwt: { secret: '' } }, /`jwt`/],
    ['relative path', { jwt, path: 'ws' }, /`path` must be a path starting with '\/'/],
    ['same paths', { jwt, path: '/x', broadcastPath: '/x' }, /`broadcastPath` must differ from `path`/],
    ['bad policy', { jwt, slowConsumer: 'block' }, /`slowConsumer` must be 'close' or 'drop', got "block"/],
    ['negative buffer', { jwt, maxBufferedBytes: -1 }, /`maxBufferedBytes` must be an integer number of bytes/],
    ['fractional payload', { jwt, maxPayload: 1.5 }, /`maxPayload`/],
    ['zero connections', { jwt, maxConnections: 0 }, /`maxConnections` must be an integer number of connections \(or Infinity\)/],
    ['string limit', { jwt, maxConnectionsPerUser: '5' }, /`maxConnectionsPerUser`/],
    ['tiny heartbeat', { jwt, heartbeatInterval: 5 }, /`heartbeatInterval` must be an integer number of milliseconds \(or 0 to turn heartbeats off\)/],
    ['bad level', { jwt, compression: { level: 10 } }, /`compression.level` must be an integer number of zlib level from 1 to 9/],
    ['bad compression', { jwt, compression: 'gzip' }, /`compression` must be false, true or/],
    ['origin without scheme', { jwt, allowedOrigins: ['example.com'] }, /`allowedOrigins` has "example.com", which is not an origin/],
    ['origins not a list', { jwt, allowedOrigins: 'https://a.example' }, /`allowedOrigins` must be an array/],
    ['scope with spaces', { jwt, broadcastScope: 'a b' }, /`broadcastScope` must be one scope name/],
    ['empty claim', { jwt, userClaim: '' }, /`userClaim` must be a non-empty string/],
    ['bad registry', { jwt, metrics: { registry: {} } }, /`metrics.registry` must be a prom-client Registry/],
    ['negative close timeout', { jwt, closeTimeout: -1 }, /`closeTimeout`/],
    ['redis not a URL', { jwt, redis: 'localhost:6379' }, /`redis` must be a redis:\/\/ or rediss:\/\/ URL/],
    ['redis a number', { jwt, redis: 6379 }, /`redis` must be a redis:\/\/ URL, ioredis options or an ioredis client/],
    ['empty prefix', { jwt, channelPrefix: '' }, /`channelPrefix` must be a non-empty string/],
    ['relative readiness path', { jwt, readinessPath: 'ready' }, /`readinessPath` must be a path/],
    ['jwt.verify not an object', { jwt: { secret: SECRET, verify: 'HS256' } }, /`jwt.verify` must be an object/],
    ['negative clock tolerance', { jwt: { secret: SECRET, verify: { clockTolerance: -1 } } }, /`jwt.verify.clockTolerance` must be an integer number of milliseconds from 0/],
    ['clock tolerance in seconds as a string', { jwt: { secret: SECRET, verify: { clockTolerance: '2s' } } }, /`jwt.verify.clockTolerance`/],
    // Unknown names were silently ignored: a typo turned a limit off.
    ['typo maxConnection', { jwt, maxConnection: 5 }, /option `maxConnection` is unknown; did you mean `maxConnections`\?/],
    ['typo allowedOrigin', { jwt, allowedOrigin: ['https://a.example'] }, /option `allowedOrigin` is unknown; did you mean `allowedOrigins`\?/],
    ['wrong case', { jwt, MaxPayload: 5 }, /did you mean `maxPayload`\?/],
    ['unknown, nothing close', { jwt, websocket: {} }, /option `websocket` is unknown; the options are jwt, path, broadcastPath, /],
    ['nested typo compression.treshold', { jwt, compression: { treshold: 10 } }, /option `compression.treshold` is unknown; did you mean `compression.threshold`\?/],
    ['nested typo inbound.message', { jwt, inbound: { message: 10 } }, /option `inbound.message` is unknown; did you mean `inbound.messages`\?/],
    ['nested typo metrics.registy', { jwt, metrics: { registy: {} } }, /option `metrics.registy` is unknown; did you mean `metrics.registry`\?/],
    ['nested typo metrics.listen.prot', { jwt, metrics: { listen: { prot: 9091 } } }, /option `metrics.listen.prot` is unknown; did you mean `metrics.listen.port`\?/]
  ]
  for (const [name, options, message] of cases) {
    const error = await register(options).then(() => undefined, (err: unknown) => err)
    t.match(error, { code: 'FST_FANOUT_INVALID_OPTION', message }, name)
    t.ok(error instanceof TypeError, `${name}: a TypeError`)
  }
})

t.test('every documented option is a known name, and only those', async (t) => {
  const { OPTION_NAMES } = await import('../lib/options.js')
  t.ok(OPTION_NAMES.includes('maxConnections') && OPTION_NAMES.includes('readinessPath'))
  await register({ jwt: { secret: SECRET }, maxConnections: 5, allowedOrigins: ['https://a.example'], metrics: false })
  t.pass('known names register')
})

t.test('registering @fastify/websocket yourself first is refused with a clear error', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyWebsocket)
  await t.rejects(async () => { await app.register(fanout, { jwt: { secret: SECRET } }) }, { code: 'FST_FANOUT_WEBSOCKET_REGISTERED' })
})

t.test('your own websocket routes work next to fastify-fanout', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fanout, { jwt: { secret: SECRET } })
  app.get('/echo', { websocket: true }, (socket) => { socket.on('message', (data) => socket.send(data)) })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const ws = new WebSocket(`ws://127.0.0.1:${port}/echo`)
  t.teardown(() => ws.terminate())
  await once(ws, 'open')
  ws.send('ping?')
  const [echo] = await once(ws, 'message') as [Buffer]
  t.equal(echo.toString(), 'ping?')
})

t.test('the readiness route on the embedded backplane, and turned off', async (t) => {
  const { build } = await import('./helpers.js')
  const { url } = await build(t)
  const ready = await fetch(`${url}/fanout/ready`)
  t.equal(ready.status, 200)
  t.same(await ready.json(), { ready: true, backplane: 'up' }, 'no connection count on the public port')
  const off = await build(t, { readinessPath: false })
  t.equal((await fetch(`${off.url}/fanout/ready`)).status, 404)
})
