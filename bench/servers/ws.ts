// Naive ws: JSON.stringify and send per client, the way most apps start.
import { createServer } from 'node:http'
import { once } from 'node:events'
import { WebSocketServer } from 'ws'
import { serve } from './common.js'

const server = createServer()
const wss = new WebSocketServer({ server, perMessageDeflate: false })
server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 })
await once(server, 'listening')
serve({
  name: 'ws (naive)',
  port: (server.address() as { port: number }).port,
  connections: () => wss.clients.size,
  broadcast: (data) => {
    for (const client of wss.clients) client.send(JSON.stringify({ type: 'message', data }))
  },
  close: async () => { for (const client of wss.clients) client.terminate(); server.close() }
})
