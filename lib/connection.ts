import type { Socket } from 'node:net'
import { WebSocket } from 'ws'
import type { FastifyBaseLogger } from 'fastify'
import { CloseCode, isApplicationCloseCode } from './close-codes.js'
import { InvalidCloseCodeError } from './errors.js'
import type { Flusher } from './flusher.js'
import type { OutboundFrame } from './frame.js'
import type { FanoutMetrics } from './metrics.js'
import type { Registry } from './registry.js'
import type { FanoutConnection, TokenClaims } from './types.js'

/** What writing one message to one connection did. */
export type WriteOutcome = 'sent' | 'slow' | 'not_open'

/** State every connection of an instance shares (one object, not a copy each). */
export interface ConnectionContext {
  readonly registry: Registry
  readonly metrics: FanoutMetrics
  readonly log: FastifyBaseLogger
  readonly maxBufferedBytes: number
  readonly closeSlowConsumers: boolean
  /** Encodes `data` and writes it to `connection`, counting it like any message. */
  readonly send: (connection: Connection, data: unknown) => boolean
  /** Writes queued frames to sockets, a slice per event-loop turn. */
  readonly flusher: Flusher
}

// ws keeps the TCP socket and the negotiated extensions in fields it does not
// document; ws 8 (pinned by @fastify/websocket 11) has had them throughout.
interface WebSocketInternals {
  _socket: Socket & { _httpMessage?: { detachSocket: (socket: Socket) => void } | null }
  _extensions: Record<string, { params?: Record<string, unknown> } | undefined>
}

const kConnection = Symbol('fanout.connection')

/** Queued bytes past which a connection is written at once instead of at the flusher's turn. */
const EAGER_FLUSH_BYTES = 64 * 1024

declare module 'ws' {
  interface WebSocket {
    [kConnection]?: Connection
  }
}

/**
 * One authenticated WebSocket. Holds only a few fields: the upgrade request
 * is not retained, and the socket's listeners are shared functions that find
 * their connection through a symbol, so a connection costs no closures.
 *
 * Data frames do not go through ws's sender: each message is framed once
 * (OutboundFrame) and the same bytes are queued here, then written to the TCP
 * socket together with whatever else is queued when the flusher reaches this
 * connection (one corked write). ws keeps the handshake, the receive path,
 * pings and close; its frames are written whole and synchronously, so they
 * never split ours, and nothing is written once ws has started closing.
 */
export class Connection implements FanoutConnection {
  readonly id: string
  readonly userId: string
  readonly claims: TokenClaims
  readonly connectedAt: number
  /** Heartbeat ticks since the client last sent anything (frame, ping or pong). */
  idleTicks = 0
  readonly #socket: WebSocket
  readonly #tcp: WebSocketInternals['_socket']
  readonly #context: ConnectionContext
  /** Negotiated deflate window for shared compressed frames; 0 when deflate is off. */
  readonly #deflateBits: number
  /** Frames waiting for the flusher (null when none). */
  #queue: Buffer[] | null = null
  #queuedBytes = 0
  /** The code the server closed with, when it closed first (ws reports the peer's). */
  #closeCode: number | undefined

  constructor (id: string, userId: string, claims: TokenClaims, socket: WebSocket, context: ConnectionContext) {
    this.id = id
    this.userId = userId
    this.claims = claims
    this.connectedAt = Date.now()
    this.#socket = socket
    this.#tcp = (socket as unknown as WebSocketInternals)._socket
    this.#deflateBits = negotiatedDeflateBits(socket)
    this.#context = context
    socket[kConnection] = this
    // Shed what the upgrade left attached to the socket: @fastify/websocket's
    // per-socket error closure (it holds the Fastify request and reply) and
    // the HTTP response bound to the TCP socket. A connection then retains
    // neither, only this object and ws's own state.
    socket.removeAllListeners('error')
    socket.on('error', Connection.#onError)
    this.#tcp._httpMessage?.detachSocket(this.#tcp)
    socket.on('message', Connection.#onMessage)
    socket.on('pong', Connection.#onActivity)
    socket.on('ping', Connection.#onActivity)
    socket.on('close', Connection.#onClose)
  }

  /** Bytes queued here or in the socket, not yet taken by the kernel. */
  get bufferedAmount (): number {
    return this.#tcp.writableLength + this.#queuedBytes
  }

  /**
   * Queues one message unless the connection is closing or already holds
   * more than `maxBufferedBytes` unsent. A message always goes out on an
   * empty buffer, so memory per connection stays within the bound plus one
   * message.
   */
  write (frame: OutboundFrame): WriteOutcome {
    if (this.#socket.readyState !== WebSocket.OPEN) return 'not_open'
    const bytes = this.#deflateBits === 0 ? frame.plain() : frame.forDeflate(this.#deflateBits)
    const buffered = this.bufferedAmount
    if (buffered !== 0 && buffered + bytes.length > this.#context.maxBufferedBytes) {
      if (this.#context.closeSlowConsumers) {
        this.#context.log.debug({ connectionId: this.id, userId: this.userId, buffered }, 'fanout: closing slow consumer')
        this.closeWith(CloseCode.SLOW_CONSUMER, 'slow consumer')
      }
      return 'slow'
    }
    if (this.#queue === null) {
      this.#queue = [bytes]
      this.#context.flusher.mark(this)
    } else {
      this.#queue.push(bytes)
    }
    this.#queuedBytes += bytes.length
    // Coalescing pays off for small frames; a big queue goes to the kernel now
    // rather than count against the bound while the kernel could take it.
    if (this.#queuedBytes >= EAGER_FLUSH_BYTES) this.flush()
    return 'sent'
  }

  /** Writes every queued frame in one corked write (one syscall). */
  flush (): void {
    const queue = this.#queue
    if (queue === null) return
    this.#queue = null
    this.#queuedBytes = 0
    const tcp = this.#tcp
    if (this.#socket.readyState !== WebSocket.OPEN || !tcp.writable) {
      this.#context.metrics.dropped('not_open', queue.length)
      return
    }
    if (queue.length === 1) {
      tcp.write(queue[0] as Buffer)
      return
    }
    tcp.cork()
    for (const bytes of queue) tcp.write(bytes)
    tcp.uncork()
  }

  send (data: unknown): boolean {
    return this.#context.send(this, data)
  }

  close (code: number = CloseCode.DISCONNECTED, reason = 'disconnected by server'): void {
    if (!isApplicationCloseCode(code)) throw new InvalidCloseCodeError(code)
    this.closeWith(code, reason)
  }

  /** Starts the closing handshake with any valid code, after what is queued. */
  closeWith (code: number, reason: string): void {
    if (this.#socket.readyState !== WebSocket.OPEN) return
    this.flush()
    this.#closeCode = code
    this.#socket.close(code, reason)
  }

  ping (): void {
    this.#socket.ping()
  }

  terminate (): void {
    this.#socket.terminate()
  }

  // Listeners shared by every socket: `this` is the socket that emitted.

  static #onActivity (this: WebSocket): void {
    const connection = this[kConnection]
    if (connection !== undefined) connection.idleTicks = 0
  }

  static #onMessage (this: WebSocket): void {
    const connection = this[kConnection]
    if (connection !== undefined) {
      connection.idleTicks = 0
      connection.#context.metrics.messagesReceived.inc()
    }
  }

  static #onError (this: WebSocket, error: Error & { code?: string }): void {
    const connection = this[kConnection]
    if (connection === undefined) return
    // ws has already sent the matching close code (1002, 1007, 1009...) for
    // protocol errors and stopped reading; only a socket still open needs ending.
    connection.#context.log.info({ err: error, connectionId: connection.id }, 'fanout: websocket error')
    if (this.readyState === WebSocket.OPEN) this.terminate()
    else if (connection.#closeCode === undefined) connection.#closeCode = protocolErrorCloseCode(error.code)
  }

  static #onClose (this: WebSocket, code: number): void {
    const connection = this[kConnection]
    if (connection === undefined) return
    const context = connection.#context
    if (connection.#queue !== null) {
      context.metrics.dropped('not_open', connection.#queue.length)
      connection.#queue = null
      connection.#queuedBytes = 0
    }
    if (context.registry.remove(connection)) context.metrics.disconnected(connection.#closeCode ?? code)
  }
}

// The close code ws sends for each receive error it raises.
function protocolErrorCloseCode (code: string | undefined): number {
  if (code === 'WS_ERR_INVALID_UTF8') return CloseCode.INVALID_DATA
  if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' || code === 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH') return CloseCode.MESSAGE_TOO_BIG
  return CloseCode.PROTOCOL_ERROR
}

function negotiatedDeflateBits (socket: WebSocket): number {
  const params = (socket as unknown as WebSocketInternals)._extensions['permessage-deflate']?.params
  if (params === undefined || params === null) return 0
  const bits = params.server_max_window_bits
  return typeof bits === 'number' ? bits : 15
}
