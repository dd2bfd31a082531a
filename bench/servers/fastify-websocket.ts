// Naive @fastify/websocket: a route that keeps sockets, stringify and send per client.
import Fastify from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import { serve } from './common.js'

const app = Fastify({ logger: false })
await app.register(fastifyWebsocket)
app.get('/ws', { websocket: true }, () => {})
await app.listen({ port: 0, host: '127.0.0.1', backlog: 4096 })
serve({
  name: '@fastify/websocket (naive)',
  port: (app.server.address() as { port: number }).port,
  connections: () => app.websocketServer.clients.size,
  broadcast: (data) => {
    for (const client of app.websocketServer.clients) client.send(JSON.stringify({ type: 'message', data }))
  },
  close: async () => { await app.close() }
})
