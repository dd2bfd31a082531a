// Naive ws: JSON.stringify and send per client, the way most apps start.
import { createServer } from 'node:http'
import { WebSocketServer, type WebSocket } from 'ws'
import { ByUser, listenLocally, serve, userOf } from './common.js'

const server = createServer()
const wss = new WebSocketServer({ server, perMessageDeflate: false })
const byUser = new ByUser<WebSocket>()
wss.on('connection', (ws, request) => {
  const user = userOf(request.url)
  byUser.add(user, ws)
  ws.on('close', () => { byUser.delete(user, ws) })
})
serve({
  name: 'ws (naive)',
  port: await listenLocally(server),
  connections: () => wss.clients.size,
  broadcast: (data) => {
    for (const client of wss.clients) client.send(JSON.stringify({ type: 'message', data }))
  },
  sendToUser: (user, data) => {
    for (const client of byUser.of(user)) client.send(JSON.stringify({ type: 'message', data }))
  },
  userSize: (user) => byUser.size(user),
  close: async () => { for (const client of wss.clients) client.terminate(); server.close() }
})
