// One fastify-fanout instance for benchmarks, in its own process.
// Env: REDIS_URL (optional), JWT_SECRET, CHANNEL_PREFIX. Prints "ready <port>".
import Fastify from 'fastify'
import fanout from '../lib/index.js'

const app = Fastify({ logger: false })
await app.register(fanout, {
  jwt: { secret: process.env.JWT_SECRET as string },
  redis: process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '' ? process.env.REDIS_URL : undefined,
  channelPrefix: process.env.CHANNEL_PREFIX ?? 'bench:',
  metrics: false,
  heartbeatInterval: 0
})
await app.listen({ port: 0, host: '127.0.0.1' })
const { port } = app.server.address() as { port: number }
process.stdout.write(`ready ${port}\n`)
process.once('SIGTERM', () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
