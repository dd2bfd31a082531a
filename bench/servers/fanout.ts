// fastify-fanout (this project): embedded backplane, or Redis when REDIS_URL is set.
// FANOUT_OPTIONS (JSON) is spread over the benchmark's options.
// PORT: listen on this port (default: a free one), so that a restarted
// instance comes back where its clients reconnect. PUBLISH_CHANNEL: the
// benchmark's broadcasts become publications to this channel (`publish`),
// (every connection is expected to subscribe to it). SIGTERM closes the app
// gracefully (clients get the shutdown close code) and exits.
import Fastify from 'fastify'
import fanout, { type FanoutOptions } from '../../lib/index.js'
import { serve } from './common.js'
import { channelCommands } from './channel-commands.js'

const app = Fastify({ logger: false })
await app.register(fanout, {
  jwt: { secret: process.env.JWT_SECRET as string },
  redis: process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '' ? process.env.REDIS_URL : undefined,
  channelPrefix: process.env.CHANNEL_PREFIX ?? 'bench:',
  metrics: false,
  heartbeatInterval: 0,
  maxBufferedBytes: 16 * 1024 * 1024,
  ...JSON.parse(process.env.FANOUT_OPTIONS ?? '{}') as Partial<FanoutOptions>
})
await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1', backlog: 4096 })
const channel = process.env.PUBLISH_CHANNEL
channelCommands(app)
serve({
  name: channel === undefined ? 'fastify-fanout' : `fastify-fanout channel ${channel}`,
  port: (app.server.address() as { port: number }).port,
  connections: () => app.fanout.size,
  broadcast: channel === undefined
    ? (data) => { app.fanout.broadcast(data).catch((err: unknown) => { throw err }) }
    : (data) => { app.fanout.publish(channel, data).catch((err: unknown) => { throw err }) },
  sendToUser: (user, data) => { app.fanout.sendToUser(user, data).catch((err: unknown) => { throw err }) },
  userSize: (user) => app.fanout.connectionsOf(user).size,
  close: async () => { await app.close() }
})
