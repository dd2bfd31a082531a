// The floor: a plain net server that does the handshake and writes one
// pre-built frame to each socket. The cheapest thing Node can do.
import { createHash } from 'node:crypto'
import { createServer, type Socket } from 'node:net'
import { ByUser, listenLocally, serve, userOf } from './common.js'

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
const sockets = new Set<Socket>()
const byUser = new ByUser<Socket>()
const server = createServer((socket) => {
  let head = ''
  socket.on('error', () => { socket.destroy() }) // a client that goes away: nothing to report
  let user = ''
  socket.on('close', () => {
    sockets.delete(socket)
    byUser.delete(user, socket)
  })
  const onData = (chunk: Buffer): void => {
    head += chunk.toString('latin1')
    const end = head.indexOf('\r\n\r\n')
    if (end === -1) return
    socket.off('data', onData)
    const key = /sec-websocket-key: *(\S+)/i.exec(head)?.[1] ?? ''
    const accept = createHash('sha1').update(key + GUID).digest('base64')
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`)
    socket.resume() // read and discard whatever the client sends
    sockets.add(socket)
    user = userOf(/^GET (\S+)/.exec(head)?.[1])
    byUser.add(user, socket)
  }
  socket.on('data', onData)
})

function frame (payload: Buffer): Buffer {
  const length = payload.length
  const header = length < 126 ? Buffer.from([0x81, length]) : length < 65536 ? Buffer.from([0x81, 126, length >> 8, length & 255]) : Buffer.alloc(10)
  if (length >= 65536) { header[0] = 0x81; header[1] = 127; header.writeBigUInt64BE(BigInt(length), 2) }
  return Buffer.concat([header, payload])
}

serve({
  name: 'raw net floor',
  port: await listenLocally(server),
  connections: () => sockets.size,
  broadcast: (data) => {
    const bytes = frame(Buffer.from(JSON.stringify({ type: 'message', data })))
    for (const socket of sockets) socket.write(bytes)
  },
  sendToUser: (user, data) => {
    const bytes = frame(Buffer.from(JSON.stringify({ type: 'message', data })))
    for (const socket of byUser.of(user)) socket.write(bytes)
  },
  userSize: (user) => byUser.size(user),
  close: async () => { for (const socket of sockets) socket.destroy(); server.close() }
})
