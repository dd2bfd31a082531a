// Naive ws: JSON.stringify and send per client, the way most apps start.
import { createServer } from 'node:http'
import { once } from 'node:events'
import { WebSocketServer, type WebSocket } from 'ws'
import { serve, userOf } from './common.js'

const server = createServer()
const wss = new WebSocketServer({ server, perMessageDeflate: false })
// By user, as an app that sends to one user keeps them.
const byUser = new Map<string, Set<WebSocket>>()
wss.on('connection', (ws, request) => {
  const user = userOf(request.url)
  let own = byUser.get(user)
  if (own === undefined) byUser.set(user, own = new Set())
  own.add(ws)
  ws.on('close', () => { own.delete(ws); if (own.size === 0) byUser.delete(user) })
})
server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 })
await once(server, 'listening')
serve({
  name: 'ws (naive)',
  port: (server.address() as { port: number }).port,
  connections: () => wss.clients.size,
  broadcast: (data) => {
    for (const client of wss.clients) client.send(JSON.stringify({ type: 'message', data }))
  },
  sendToUser: (user, data) => {
    for (const client of byUser.get(user) ?? []) client.send(JSON.stringify({ type: 'message', data }))
  },
  userSize: (user) => byUser.get(user)?.size ?? 0,
  close: async () => { for (const client of wss.clients) client.terminate(); server.close() }
})
