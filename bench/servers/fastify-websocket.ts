// Naive @fastify/websocket: a route that keeps sockets, stringify and send per client.
import Fastify from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import type { WebSocket } from 'ws'
import { serve, userOf } from './common.js'

const app = Fastify({ logger: false })
await app.register(fastifyWebsocket)
// By user, as an app that sends to one user keeps them.
const byUser = new Map<string, Set<WebSocket>>()
app.get('/ws', { websocket: true }, (socket, request) => {
  const user = userOf(request.url)
  let own = byUser.get(user)
  if (own === undefined) byUser.set(user, own = new Set())
  own.add(socket)
  socket.on('close', () => { own.delete(socket); if (own.size === 0) byUser.delete(user) })
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
    for (const client of byUser.get(user) ?? []) client.send(JSON.stringify({ type: 'message', data }))
  },
  userSize: (user) => byUser.get(user)?.size ?? 0,
  close: async () => { await app.close() }
})
