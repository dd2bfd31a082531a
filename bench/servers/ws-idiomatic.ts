// Idiomatic ws: what a competent engineer writes with ws alone. Each message
// is serialized once, and that one payload is handed to every open client's
// send(), as ws's own broadcast example does; ws frames it per client.
import { createServer } from 'node:http'
import { WebSocket, WebSocketServer } from 'ws'
import { ByUser, listenLocally, serve, userOf, type Message } from './common.js'

const server = createServer()
const wss = new WebSocketServer({ server, perMessageDeflate: false })
const byUser = new ByUser<WebSocket>()
wss.on('connection', (ws, request) => {
  const user = userOf(request.url)
  byUser.add(user, ws)
  ws.on('error', () => { ws.terminate() }) // a client that goes away: nothing to report
  ws.on('close', () => { byUser.delete(user, ws) })
})

const PAYLOAD = process.env.WS_PAYLOAD === 'string' ? 'string' : 'buffer'
const encode = PAYLOAD === 'string'
  ? (data: Message): string | Buffer => JSON.stringify({ type: 'message', data })
  : (data: Message): string | Buffer => Buffer.from(JSON.stringify({ type: 'message', data }))

function sendAll (clients: Iterable<WebSocket>, data: Message): void {
  const payload = encode(data)
  for (const client of clients) {
    if (client.readyState === WebSocket.OPEN) client.send(payload, { binary: false })
  }
}

serve({
  name: 'ws (idiomatic)',
  port: await listenLocally(server),
  connections: () => wss.clients.size,
  broadcast: (data) => { sendAll(wss.clients, data) },
  sendToUser: (user, data) => { sendAll(byUser.of(user), data) },
  userSize: (user) => byUser.size(user),
  close: async () => { for (const client of wss.clients) client.terminate(); server.close() }
})
