// One load-generator process: holds up to a few thousand client connections
// from one source address (127.0.0.x), each a minimal RFC 6455 client on a raw
// socket (cheap enough not to be the bottleneck), and records post-to-receipt
// latency from the `"t":` timestamp every benchmark message carries.
import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { createSigner } from 'fast-jwt'
import { clientFrame, readFrames } from '../../test/frames.js'
import { encode, newHistogram, recordMs } from './histogram.js'

export interface WorkerConfig {
  host: string
  port: number
  /** `{user}` and `{token}` are replaced per connection */
  path: string
  /** connection i (counted from `firstIndex`) belongs to user `u<i % users>` */
  users: number
  firstIndex: number
  /** signs a token per user (`sub`) when the server wants one */
  jwtSecret?: string
  headers: Record<string, string>
  count: number
  localAddress: string
  /** connections opened per second */
  connectRate: number
  protocol: 'ws' | 'socketio' | 'centrifuge'
  /**
   * `centrifuge`: Centrifugo's JSON client protocol as centrifuge-js speaks
   * it. Each connection sends `connect` with its token, then (at once, or on
   * the `subscribe` command) `subscribe` for `perConnection` channels of
   * `pool`: connection i takes pool[(i * perConnection + j) % pool.length].
   */
  centrifuge?: { pool: string[], perConnection: number, subscribeOnConnect: boolean }
}

const histogram = newHistogram()
let received = 0
let connected = 0
let failed = 0
/** centrifuge: connections whose connect was answered, and subscriptions answered. */
let identified = 0
let subscribed = 0
let commandErrors = 0
const sessions = new Map<Socket, number>()
const sockets = new Set<Socket>()
const now = (): number => performance.timeOrigin + performance.now()

const T_MARKER = Buffer.from('"t":')

const ID_ONE = Buffer.from('{"id":1,')

function onText (socket: Socket, payload: Buffer, config: WorkerConfig): void {
  if (config.protocol === 'centrifuge' && payload[0] === 0x7b && payload[1] === 0x22 && payload[2] === 0x69) { // {"id": a reply
    onReply(socket, payload, config)
    return
  }
  if (config.protocol === 'socketio') {
    if (payload[0] === 0x30) { socket.write(clientFrame('40')); return } // engine.io open: join the default namespace
    if (payload[0] === 0x32 && payload.length === 1) { socket.write(clientFrame('3')); return } // ping: pong
  }
  const at = payload.indexOf(T_MARKER)
  if (at === -1) return
  received++
  recordMs(histogram, now() - Number.parseFloat(payload.toString('latin1', at + 4, at + 40)))
}

const tokens = new Map<string, string>()

function tokenFor (config: WorkerConfig, user: string): string {
  if (config.jwtSecret === undefined) return ''
  const token = tokens.get(user) ?? createSigner({ key: config.jwtSecret })({ sub: user })
  tokens.set(user, token)
  return token
}

function pathFor (config: WorkerConfig, index: number): string {
  const user = `u${(config.firstIndex + index) % config.users}`
  return config.path.replace('{user}', user).replace('{token}', tokenFor(config, user))
}

function open (config: WorkerConfig, index: number): void {
  const path = pathFor(config, index)
  const socket = connect({ host: config.host, port: config.port, localAddress: config.localAddress })
  socket.setNoDelay(true)
  let buffer: Buffer = Buffer.alloc(0)
  let upgraded = false
  socket.on('connect', () => {
    const key = randomBytes(16).toString('base64')
    const headers = Object.entries(config.headers).map(([name, value]) => `${name}: ${value}\r\n`).join('')
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${config.host}:${config.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${headers}\r\n`)
  })
  socket.on('data', (chunk: Buffer) => {
    buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk])
    if (!upgraded) {
      const end = buffer.indexOf('\r\n\r\n')
      if (end === -1) return
      if (!buffer.subarray(0, 16).toString().includes(' 101')) { failed++; socket.destroy(); return }
      upgraded = true
      connected++
      sockets.add(socket)
      buffer = buffer.subarray(end + 4)
      if (config.protocol === 'centrifuge') {
        sessions.set(socket, index)
        const token = tokenFor(config, `u${(config.firstIndex + index) % config.users}`)
        socket.write(clientFrame(JSON.stringify({ id: 1, connect: { token, name: 'bench' } })))
      }
    }
    buffer = readFrames(buffer, (first, payload) => {
      if ((first & 0x0f) === 1) onText(socket, payload, config)
    })
    if (buffer.length === 0) buffer = Buffer.alloc(0)
  })
  socket.on('error', () => { failed++ })
  socket.on('close', () => {
    sessions.delete(socket)
    if (sockets.delete(socket)) connected--
  })
}

/** Replies to `connect` (id 1) and to `subscribe` (ids 2...). */
function onReply (socket: Socket, payload: Buffer, config: WorkerConfig): void {
  for (const line of payload.toString().split('\n')) {
    if (line.includes('"error"')) { commandErrors++; continue }
    if (Buffer.from(line.slice(0, 8)).equals(ID_ONE)) {
      identified++
      if (config.centrifuge?.subscribeOnConnect === true) subscribe(socket, config)
    } else {
      subscribed++
    }
  }
}

function subscribe (socket: Socket, config: WorkerConfig): void {
  const settings = config.centrifuge
  const index = sessions.get(socket)
  if (settings === undefined || index === undefined) return
  const commands: string[] = []
  for (let j = 0; j < settings.perConnection; j++) {
    const channel = settings.pool[((config.firstIndex + index) * settings.perConnection + j) % settings.pool.length] as string
    commands.push(JSON.stringify({ id: 2 + j, subscribe: { channel } }))
  }
  socket.write(clientFrame(commands.join('\n')))
}

function start (config: WorkerConfig): void {
  let opened = 0
  const perTick = Math.max(1, Math.round(config.connectRate / 100))
  const timer = setInterval(() => {
    for (let i = 0; i < perTick && opened < config.count; i++, opened++) open(config, opened)
    if (opened >= config.count) clearInterval(timer)
  }, 10)
}

process.on('message', (message: { cmd: string, config?: WorkerConfig }) => {
  if (message.cmd === 'start' && message.config !== undefined) {
    start(message.config)
  } else if (message.cmd === 'report') {
    process.send?.({ connected, failed, received, identified, subscribed, commandErrors, histogram: encode(histogram) })
  } else if (message.cmd === 'subscribe' && message.config !== undefined) {
    for (const socket of sessions.keys()) subscribe(socket, message.config)
    process.send?.({ subscribing: sessions.size })
  } else if (message.cmd === 'reset') {
    received = 0
    histogram.reset()
    process.send?.({ reset: true })
  } else if (message.cmd === 'close') {
    for (const socket of sockets) socket.destroy()
    process.exit(0)
  }
})
process.send?.({ ready: true })
