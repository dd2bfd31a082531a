// Socket.IO, websocket transport only, io.emit to everyone.
import { createServer } from 'node:http'
import { Server } from 'socket.io'
import { listenLocally, serve } from './common.js'

const server = createServer()
const io = new Server(server, { transports: ['websocket'], perMessageDeflate: false, pingInterval: 60_000, pingTimeout: 60_000 })
// One room per user, Socket.IO's way of sending to one user.
io.on('connection', (socket) => { socket.join(String(socket.handshake.query.user ?? 'anonymous')) }) // in-memory adapter: synchronous
serve({
  name: 'Socket.IO',
  port: await listenLocally(server),
  connections: () => io.engine.clientsCount,
  broadcast: (data) => { io.emit('message', { type: 'message', data }) },
  sendToUser: (user, data) => { io.to(user).emit('message', { type: 'message', data }) },
  userSize: (user) => io.sockets.adapter.rooms.get(user)?.size ?? 0,
  close: async () => { await io.close() }
})
