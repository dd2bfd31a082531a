// One load-generator process: holds up to a few thousand client connections
// from one source address (127.0.0.x), each a minimal RFC 6455 client on a raw
// socket (cheap enough not to be the bottleneck), and records post-to-receipt
// latency from the `"t":` timestamp every benchmark message carries.
import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { BinaryWriter } from '@bufbuild/protobuf/wire'
import { createSigner } from 'fast-jwt'
import * as pb from '../../lib/protocols/centrifuge/proto/client.js'
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
  protocol: 'ws' | 'socketio' | 'centrifuge' | 'centrifuge-protobuf'
  /**
   * `centrifuge`: Centrifugo's JSON client protocol as centrifuge-js speaks
   * it. Each connection sends `connect` with its token, then (at once, or on
   * the `subscribe` command) `subscribe` for `perConnection` channels of
   * `pool`: connection i takes pool[(i * perConnection + j) % pool.length].
   * `centrifuge-protobuf`: the same commands in its Protobuf form (the
   * `centrifuge-protobuf` subprotocol, binary frames of delimited messages).
   */
  centrifuge?: { pool: string[], perConnection: number, subscribeOnConnect: boolean }
  /**
   * Also sum the bytes of each delivery's publication data (Protobuf only:
   * its `data` field is the publication's JSON text as sent, so the
   * envelope's share can be told apart). Decodes every push: small runs only.
   */
  measureData?: boolean
}

const histogram = newHistogram()
let received = 0
let connected = 0
let failed = 0
/** centrifuge: connections whose connect was answered, and subscriptions answered. */
let identified = 0
let subscribed = 0
let commandErrors = 0
/** Bytes of the frames that carried deliveries: their payloads, and whole frames with their headers. */
let payloadBytes = 0
let frameBytes = 0
/** Bytes of the publications' data in them (with `measureData`). */
let dataBytes = 0
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
  if (count(payload)) countBytes(payload)
}

/** Counts a delivery when `message` holds a benchmark message's timestamp; whether it did. */
function count (message: Buffer): boolean {
  const at = message.indexOf(T_MARKER)
  if (at === -1) return false
  received++
  recordMs(histogram, now() - Number.parseFloat(message.toString('latin1', at + 4, at + 40)))
  return true
}

/** A server frame's header is 2 bytes, plus 2 or 8 of extended length (unmasked). */
function countBytes (payload: Buffer): void {
  payloadBytes += payload.length
  frameBytes += payload.length + (payload.length < 126 ? 2 : payload.length < 65536 ? 4 : 10)
}

/**
 * A binary frame of the Protobuf protocol: delimited Replies. Replies to
 * commands start with their id (field 1, tag 0x08) and are decoded; pushes
 * are only searched for the timestamp, as the JSON mode does; an empty
 * Reply is a ping (not sent here: the benchmark server has no heartbeat).
 */
function onBinary (socket: Socket, payload: Buffer, config: WorkerConfig): void {
  let delivered = false
  for (let at = 0; at < payload.length;) {
    let length = 0
    let shift = 0
    let byte: number
    do {
      byte = payload[at++] as number
      length += (byte & 0x7f) * 2 ** shift
      shift += 7
    } while (byte >= 0x80)
    const message = payload.subarray(at, at + length)
    at += length
    if (message[0] === 0x08) {
      onProtobufReply(socket, pb.Reply.decode(message), config)
    } else if (length > 0 && count(message)) {
      delivered = true
      if (config.measureData === true) dataBytes += pb.Reply.decode(message).push?.pub?.data?.length ?? 0
    }
  }
  if (delivered) countBytes(payload)
}

function onProtobufReply (socket: Socket, reply: pb.Reply, config: WorkerConfig): void {
  if (reply.error !== undefined) {
    commandErrors++
  } else if (reply.id === 1) {
    identified++
    if (config.centrifuge?.subscribeOnConnect === true) subscribe(socket, config)
  } else {
    subscribed++
  }
}

/** Protobuf commands, each with its length in front, as one binary frame. */
function protobufFrame (commands: pb.Command[]): Buffer {
  const writer = new BinaryWriter()
  for (const command of commands) {
    writer.fork()
    pb.Command.encode(command, writer)
    writer.join()
  }
  return clientFrame(Buffer.from(writer.finish()), 0x2)
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
    const offered = config.protocol === 'centrifuge-protobuf' ? { 'Sec-WebSocket-Protocol': 'centrifuge-protobuf', ...config.headers } : config.headers
    const headers = Object.entries(offered).map(([name, value]) => `${name}: ${value}\r\n`).join('')
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
      if (config.protocol === 'centrifuge' || config.protocol === 'centrifuge-protobuf') {
        sessions.set(socket, index)
        const token = tokenFor(config, `u${(config.firstIndex + index) % config.users}`)
        socket.write(config.protocol === 'centrifuge'
          ? clientFrame(JSON.stringify({ id: 1, connect: { token, name: 'bench' } }))
          : protobufFrame([{ id: 1, connect: { token, name: 'bench' } }]))
      }
    }
    buffer = readFrames(buffer, (first, payload) => {
      const opcode = first & 0x0f
      if (opcode === 1) onText(socket, payload, config)
      else if (opcode === 2) onBinary(socket, payload, config)
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
  const commands: pb.Command[] = []
  for (let j = 0; j < settings.perConnection; j++) {
    const channel = settings.pool[((config.firstIndex + index) * settings.perConnection + j) % settings.pool.length] as string
    commands.push({ id: 2 + j, subscribe: { channel } })
  }
  socket.write(config.protocol === 'centrifuge-protobuf' ? protobufFrame(commands) : clientFrame(commands.map((command) => JSON.stringify(command)).join('\n')))
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
    process.send?.({ connected, failed, received, identified, subscribed, commandErrors, payloadBytes, frameBytes, dataBytes, histogram: encode(histogram) })
  } else if (message.cmd === 'subscribe' && message.config !== undefined) {
    for (const socket of sessions.keys()) subscribe(socket, message.config)
    process.send?.({ subscribing: sessions.size })
  } else if (message.cmd === 'reset') {
    received = 0
    payloadBytes = 0
    frameBytes = 0
    dataBytes = 0
    histogram.reset()
    process.send?.({ reset: true })
  } else if (message.cmd === 'close') {
    for (const socket of sockets) socket.destroy()
    process.exit(0)
  }
})
process.send?.({ ready: true })
