// The example server: fastify-fanout on its embedded backplane, configured
// from the environment. `npm start` runs it.
//
//   PORT             port to listen on (default 3000)
//   HOST             address to listen on (default 127.0.0.1)
//   JWT_SECRET       HS256 secret; when unset a random development secret is
//                    made and ready-to-use tokens are printed
//   ALLOWED_ORIGINS  comma-separated browser origins allowed to connect
//                    (default: same origin only)
//   REDIS_URL        join every instance on this Redis (default: embedded
//                    backplane, this process only)
import cluster from 'node:cluster'
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import Fastify from 'fastify'
import fastifyJwt from '@fastify/jwt'
import fanout from '../lib/index.js'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'
// Under example/cluster.ts the primary makes the development secret and
// hands it to every worker, so that one token works on all of them.
const development = process.env.JWT_SECRET === undefined || process.env.JWT_SECRET === '' || process.env.FANOUT_EXAMPLE_DEV === '1'
const secret = process.env.JWT_SECRET !== undefined && process.env.JWT_SECRET !== '' ? process.env.JWT_SECRET : randomBytes(32).toString('base64url')
const redis = process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '' ? process.env.REDIS_URL : undefined
// One banner per machine: in a cluster only the first worker prints it.
const printBanner = !cluster.isWorker || cluster.worker?.id === 1
const allowedOrigins = process.env.ALLOWED_ORIGINS?.split(',').map((origin) => origin.trim()).filter((origin) => origin !== '')

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' } })

await app.register(fanout, { jwt: { secret }, allowedOrigins, redis })

// The app's own @fastify/jwt, only to sign the development tokens printed below.
await app.register(fastifyJwt, { secret })
const userToken = development ? app.jwt.sign({ sub: 'demo-user' }, { expiresIn: '12h' }) : ''
const serviceToken = development ? app.jwt.sign({ sub: 'demo-service', scope: 'broadcast' }, { expiresIn: '12h' }) : ''

const page = await readFile(new URL('./page.html', import.meta.url), 'utf8')
app.get('/', async (_request, reply) => {
  // In development the page gets ready tokens; otherwise it asks for one.
  const html = page.replace('"__FANOUT_CONFIG__"', JSON.stringify({ userToken, serviceToken }).replace(/</g, '\\u003c'))
  return await reply.type('text/html; charset=utf-8').send(html)
})

await app.listen({ port, host })
const { port: actualPort } = app.server.address() as { port: number }
const base = `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`

if (printBanner) {
  process.stdout.write(`\nfastify-fanout example listening on ${base}\n`)
  process.stdout.write(`  backplane: ${redis === undefined ? 'embedded (this process only)' : `Redis at ${redis.replace(/\/\/[^@]*@/, '//')}`}\n`)
  process.stdout.write(`  open ${base}/ in a browser to watch messages arrive\n`)
  process.stdout.write(`  WebSocket endpoint ${base.replace('http', 'ws')}/ws, metrics ${base}/metrics\n`)
}
if (development && printBanner) {
  process.stdout.write('\nJWT_SECRET is not set: using a random development secret. Tokens valid for 12 hours:\n')
  process.stdout.write(`  user token:    ${userToken}\n`)
  process.stdout.write(`  service token: ${serviceToken}\n\n`)
  process.stdout.write('Broadcast to every client:\n')
  process.stdout.write(`  curl -X POST ${base}/broadcast -H 'authorization: Bearer ${serviceToken}' -H 'content-type: application/json' -d '{"data":{"text":"hello"}}'\n\n`)
}

// Graceful shutdown: every client gets 1001 (going away), then the process exits.
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    app.log.info({ signal }, 'closing: clients get 1001')
    app.close().then(() => process.exit(0), (err: unknown) => {
      app.log.error({ err }, 'close failed')
      process.exit(1)
    })
  })
}
