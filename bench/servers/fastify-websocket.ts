// Naive @fastify/websocket: a route that keeps sockets, stringify and send per client.
import Fastify from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import type { WebSocket } from 'ws'
import { ByUser, serve, userOf } from './common.js'

const app = Fastify({ logger: false })
await app.register(fastifyWebsocket)
const byUser = new ByUser<WebSocket>()
app.get('/ws', { websocket: true }, (socket, request) => {
  const user = userOf(request.url)
  byUser.add(user, socket)
  socket.on('close', () => { byUser.delete(user, socket) })
})
await app.listen({ port: 0, host: '127.0.0.1', backlog: 4096 })
serve({
  name: '@fastify/websocket (naive)',
  port: (app.server.address() as { port: number }).port,
  connections: () => app.websocketServer.clients.size,
  broadcast: (data) => {
    for (const client of app.websocketServer.clients) client.send(JSON.stringify({ type: 'message', data }))
  },
  sendToUser: (user, data) => {
    for (const client of byUser.of(user)) client.send(JSON.stringify({ type: 'message', data }))
  },
  userSize: (user) => byUser.size(user),
  close: async () => { await app.close() }
})
