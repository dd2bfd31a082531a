// A hostile client process for bench/flood.ts: `connections` WebSockets of
// one user, each writing tiny text frames as fast as its socket takes them,
// and reconnecting at once whenever the server closes it, as an attacker
// would. Bounded by `seconds`; reports what it wrote and how it was closed.
import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { clientFrame, readFrames } from '../../test/frames.js'

export interface FloodConfig {
  host: string
  port: number
  /** Upgrade path with the token, e.g. `/ws?token=...` */
  path: string
  connections: number
  seconds: number
  localAddress?: string
}

// 1,000 one-byte frames per write: the cheapest flood to produce.
const BATCH = Buffer.concat(Array.from({ length: 1000 }, () => clientFrame('x')))
const FRAMES_PER_BATCH = 1000

let framesWritten = 0
let upgrades = 0
const refused: Record<string, number> = {}
const closeCodes: Record<string, number> = {}
const sockets = new Set<Socket>()
let stopping = false

function open (config: FloodConfig): void {
  if (stopping) return
  const socket = connect({ host: config.host, port: config.port, localAddress: config.localAddress })
  sockets.add(socket)
  let head: Buffer = Buffer.alloc(0)
  let upgraded = false
  let code = 'none'
  // Writes until the socket's buffer is full, then waits for 'drain'.
  const pump = (): void => {
    let writable = upgraded && !stopping
    while (writable && !socket.destroyed) {
      framesWritten += FRAMES_PER_BATCH
      writable = socket.write(BATCH)
    }
  }
  socket.on('connect', () => {
    socket.write(`GET ${config.path} HTTP/1.1\r\nHost: ${config.host}:${config.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
  })
  socket.on('data', (chunk: Buffer) => {
    head = Buffer.concat([head, chunk])
    if (!upgraded) {
      const end = head.indexOf('\r\n\r\n')
      if (end === -1) return
      const status = head.subarray(9, 12).toString()
      if (status !== '101') { refused[status] = (refused[status] ?? 0) + 1; socket.destroy(); return }
      upgraded = true
      upgrades++
      head = head.subarray(end + 4)
      setImmediate(pump)
    }
    head = readFrames(head, (first, payload) => {
      if ((first & 0x0f) === 0x8 && payload.length >= 2) code = String(payload.readUInt16BE(0))
    })
  })
  socket.on('drain', pump)
  socket.on('end', () => { socket.destroy() })
  socket.on('error', () => {})
  socket.on('close', () => {
    sockets.delete(socket)
    if (upgraded) closeCodes[code] = (closeCodes[code] ?? 0) + 1
    setImmediate(() => { open(config) }) // straight back in
  })
}

process.on('message', (message: { cmd: string, config?: FloodConfig }) => {
  if (message.cmd !== 'start' || message.config === undefined) return
  const config = message.config
  for (let i = 0; i < config.connections; i++) open(config)
  setTimeout(() => {
    stopping = true
    for (const socket of sockets) socket.destroy()
    process.send?.({ frames_written: framesWritten, upgrades, refused, close_codes: closeCodes }, () => process.exit(0))
  }, config.seconds * 1000)
})
process.send?.({ ready: true })
