import type { Socket } from 'node:net'
import { WebSocket } from 'ws'
import type { FastifyBaseLogger } from 'fastify'
import { assertCloseArguments, CloseCode, type CloseTable, type ServerCloseReason } from './close-codes.js'
import type { Flusher } from './flusher.js'
import type { HousekeepingView } from './housekeeping.js'
import { dataFrame, type OutboundFrame } from './frame.js'
import type { WireProtocol } from './protocol.js'
import type { FanoutMetrics } from '../metrics.js'
import type { Registry } from './registry.js'
import type { FanoutConnection, TokenClaims } from '../types.js'

/** What writing one message to one connection did. */
export type WriteOutcome = 'sent' | 'slow' | 'not_open'

/** State every connection of an instance shares (one object, not a copy each). */
export interface ConnectionContext {
  readonly registry: Registry
  readonly metrics: FanoutMetrics
  readonly log: FastifyBaseLogger
  readonly maxBufferedBytes: number
  /**
   * Largest message this endpoint's clients may send, in bytes (then ws
   * closes with 1009). The WebSocket server allows the largest of all
   * endpoints; each connection's receiver is held to its own endpoint's.
   */
  readonly maxPayload: number
  readonly closeSlowConsumers: boolean
  /** Frames and bytes a connection may send per second; false: unlimited. */
  readonly inbound: false | { readonly messages: number, readonly bytes: number }
  /** The endpoint's close code for each reason the server closes on its own. */
  readonly closes: CloseTable
  /** The housekeeping timer's side that connections see: the budget window, and sockets to destroy. */
  readonly housekeeping: HousekeepingView
  /** Encodes `data` and writes it to `connection`, counting it like any message. */
  readonly send: (connection: Connection, data: unknown) => boolean
  /** Writes queued frames to sockets, a slice per event-loop turn. */
  readonly flusher: Flusher
  /** The endpoint's protocol: how the engine's envelopes become this endpoint's frames. */
  readonly protocol: WireProtocol
  /** The endpoint's reader of what clients send (a message within the inbound budget); none: ignored. */
  readonly receive?: (connection: Connection, data: Buffer, isBinary: boolean) => void
  /** The endpoint's heartbeat message (answered by a message from the client); none: WebSocket pings. */
  readonly pingPayload?: Buffer
  /** Subscribes a connection to a channel on the server's side, or ends it; none: the endpoint has no channels. */
  readonly serverSubscription?: (connection: Connection, channel: string, subscribe: boolean) => void
  /** Told once when a connection is gone, after it left the registry. */
  readonly closed?: (connection: Connection) => void
}

/** Who a connection belongs to, once its token was verified. */
export interface Identity {
  readonly userId: string
  readonly claims: TokenClaims
  /** When the token's authority ends, in ms; Infinity without `exp`. */
  readonly expiresAt: number
}

// ws keeps the TCP socket and the negotiated extensions in fields it does not
// document; ws 8 (pinned by @fastify/websocket 11) has had them throughout.
interface WebSocketInternals {
  _socket: Socket & { _httpMessage?: { detachSocket: (socket: Socket) => void } | null }
  _extensions: Record<string, { params?: Record<string, unknown> } | undefined>
  _receiver: ReceiverInternals
}

// What ws's Receiver holds of a message still arriving: the opcode of an
// unfinished fragmented message, the payload length announced so far (reset
// when a message completes) and bytes of a frame not yet parsed.
interface ReceiverInternals {
  _fragmented: number
  _totalPayloadLength: number
  _bufferedBytes: number
  _buffers: Buffer[]
  _maxPayload: number
}

const kConnection = Symbol('fanout.connection')

const NO_CLAIMS: TokenClaims = Object.freeze({})

/** The connection a socket belongs to, once an endpoint made one of it. */
export function connectionOf (socket: WebSocket): Connection | undefined {
  return socket[kConnection]
}

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
  /** Empty until the connection is identified (at the upgrade for /ws, at `connect` for protocols that send the token later). */
  userId = ''
  claims: TokenClaims = NO_CLAIMS
  readonly connectedAt: number
  /**
   * When the token's authority ends (`exp` plus the clock tolerance), in ms;
   * Infinity without `exp`. Changed only through Registry.reschedule, which
   * keeps the expiry index in step.
   */
  expiresAt = Infinity
  /** Heartbeat ticks since the client last sent anything (frame, ping or pong). */
  idleTicks = 0
  readonly #socket: WebSocket
  readonly #tcp: WebSocketInternals['_socket']
  readonly #receiver: ReceiverInternals
  readonly #context: ConnectionContext
  /** Negotiated deflate window for shared compressed frames; 0 when deflate is off. */
  readonly #deflateBits: number
  /** Frames waiting for the flusher (null when none). */
  #queue: Buffer[] | null = null
  #queuedBytes = 0
  /** The code the server closed with, when it closed first (ws reports the peer's). */
  #closeCode: number | undefined
  /** Frames and bytes received in the inbound window numbered #inboundWindow. */
  #inboundWindow = -1
  #inboundFrames = 0
  #inboundBytes = 0
  /** When a housekeeping sweep first saw the current message unfinished; 0: none. */
  #unfinishedSince = 0
  /** When the server stopped reading this connection for exceeding its budget; 0: reading. */
  #stoppedReadingAt = 0

  constructor (id: string, socket: WebSocket, context: ConnectionContext, identity?: Identity) {
    this.id = id
    if (identity !== undefined) this.identify(identity)
    this.connectedAt = Date.now()
    this.#socket = socket
    this.#tcp = (socket as unknown as WebSocketInternals)._socket
    this.#receiver = (socket as unknown as WebSocketInternals)._receiver
    this.#receiver._maxPayload = context.maxPayload
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
    socket.on('pong', Connection.#onControl)
    socket.on('ping', Connection.#onControl)
    socket.on('close', Connection.#onClose)
  }

  /** Sets who the connection belongs to, before it is registered. */
  identify (identity: Identity): void {
    this.userId = identity.userId
    this.claims = identity.claims
    this.expiresAt = identity.expiresAt
  }

  get protocol (): WireProtocol {
    return this.#context.protocol
  }

  /** Whether the socket is still open (not closing or closed). */
  get open (): boolean {
    return this.#socket.readyState === WebSocket.OPEN
  }

  /**
   * Queues a payload for this connection alone (a reply), framed as one
   * frame of its protocol (text or binary). A client that asks and does not read (a history of 300
   * publications per command, 50 commands a second) would have the server
   * buffer without end: past `maxBufferedBytes` unsent it is closed as a
   * slow consumer, whatever the slowConsumer policy (a reply cannot be
   * dropped: the client waits for it).
   */
  reply (payload: Buffer): void {
    if (this.#socket.readyState !== WebSocket.OPEN) return
    if (this.bufferedAmount > this.#context.maxBufferedBytes) {
      this.#context.metrics.dropped('slow_consumer')
      this.closeFor('slowConsumer')
      return
    }
    this.#enqueue(dataFrame(payload, this.#context.protocol.binary))
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
        this.closeFor('slowConsumer')
      }
      return 'slow'
    }
    this.#enqueue(bytes)
    return 'sent'
  }

  #enqueue (bytes: Buffer): void {
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

  /** Without a code, the endpoint's own for a server disconnect (4000 on /ws, 3503 for Centrifugo's SDKs). */
  close (code?: number, reason = 'disconnected by server'): void {
    if (code === undefined) {
      this.closeFor('disconnected')
      return
    }
    assertCloseArguments(code, reason)
    this.closeWith(code, reason)
  }

  /** Closes with the endpoint's code for `why`. */
  closeFor (why: ServerCloseReason): void {
    const [code, reason] = this.#context.closes[why]
    this.closeWith(code, reason)
  }

  /** Starts the closing handshake with any valid code, after what is queued. */
  closeWith (code: number, reason: string): void {
    if (this.#socket.readyState !== WebSocket.OPEN) return
    this.flush()
    this.#closeCode = code
    this.#socket.close(code, reason)
  }

  /** Applies a server-side subscribe or unsubscribe; false when this connection's endpoint has no channels. */
  serverSubscription (channel: string, subscribe: boolean): boolean {
    const apply = this.#context.serverSubscription
    if (apply === undefined || this.#socket.readyState !== WebSocket.OPEN) return false
    apply(this, channel, subscribe)
    return true
  }

  /** A heartbeat: the endpoint's own ping message when its protocol has one, a WebSocket ping otherwise. */
  ping (): void {
    const payload = this.#context.pingPayload
    if (payload === undefined) this.#socket.ping()
    else this.reply(payload)
  }

  /** The client answered nothing for two heartbeats: the endpoint's close, or the socket ends. */
  heartbeatTimedOut (): void {
    const close = this.#context.closes.noPong
    if (close === undefined) this.terminate()
    else this.closeWith(close[0], close[1])
  }

  /**
   * Whether a message the client started has stayed unfinished for `timeout`
   * ms, judged at housekeeping walks: a message in progress at one walk and
   * still (or again, with none completed between) at a walk `timeout` later.
   */
  messageStalled (now: number, timeout: number): boolean {
    const receiver = this.#receiver
    const inProgress = receiver._fragmented !== 0 || receiver._totalPayloadLength > 0 || receiver._bufferedBytes > 0
    if (!inProgress) {
      this.#unfinishedSince = 0
      return false
    }
    if (this.#unfinishedSince === 0) this.#unfinishedSince = now
    return now - this.#unfinishedSince >= timeout
  }

  /**
   * Whether the server stopped reading this connection at least `grace` ms
   * ago: its close handshake cannot finish, so it is only holding a file.
   */
  abandoned (now: number, grace: number): boolean {
    return this.#stoppedReadingAt !== 0 && now - this.#stoppedReadingAt >= grace
  }

  /**
   * Counts one frame from the client against the inbound budget; false when
   * it is past it. Then the connection is closed with 4009 and its socket is
   * no longer read, so a flood costs nothing more than what the kernel buffers.
   */
  #receive (bytes: number): boolean {
    this.idleTicks = 0
    const budget = this.#context.inbound
    if (budget === false) return true
    if (this.#socket.readyState !== WebSocket.OPEN) return false
    // Counted per window of the housekeeping timer: a new window starts the count again.
    const window = this.#context.housekeeping.window
    if (window !== this.#inboundWindow) {
      this.#inboundWindow = window
      this.#inboundFrames = 0
      this.#inboundBytes = 0
    }
    if (++this.#inboundFrames <= budget.messages && (this.#inboundBytes += bytes) <= budget.bytes) return true
    this.#context.log.info({ connectionId: this.id, userId: this.userId }, 'fanout: inbound budget exceeded, closing')
    this.closeFor('inboundLimit')
    this.#stopReading()
    return false
  }

  terminate (): void {
    // ws parses what a socket still holds when it closes: of a connection no
    // longer read, that is flood, so it is dropped unparsed (read() emits
    // 'data' even on a paused socket: ws's listener goes first).
    if (this.#stoppedReadingAt !== 0) {
      this.#tcp.removeAllListeners('data')
      if (this.#tcp.readableLength > 0) this.#tcp.read(this.#tcp.readableLength)
    }
    this.#socket.terminate()
  }

  /**
   * Stops reading a client that exceeded its budget: the socket is paused,
   * what ws had buffered but not yet parsed is dropped (a chunk can hold
   * thousands of tiny frames, each a turn of the event loop to parse), and
   * our side is ended after the close frame so that the client sees the
   * close at once. Housekeeping destroys the socket a second later.
   */
  #stopReading (): void {
    this.#socket.pause()
    this.#receiver._buffers.length = 0
    this.#receiver._bufferedBytes = 0
    this.#tcp.end()
    this.#stoppedReadingAt = Date.now()
    this.#context.housekeeping.unread.add(this)
  }

  // Listeners shared by every socket: `this` is the socket that emitted.

  // Pings and pongs count against the budget too: they are frames to parse.
  static #onControl (this: WebSocket, data: Buffer): void {
    const connection = this[kConnection]
    if (connection !== undefined) connection.#receive(data.length)
  }

  static #onMessage (this: WebSocket, data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    const connection = this[kConnection]
    // Frames still parsed after the server began closing are not the app's.
    if (connection === undefined || this.readyState !== WebSocket.OPEN) return
    connection.#unfinishedSince = 0
    if (!connection.#receive(messageLength(data))) return
    connection.#context.metrics.messagesReceived.inc()
    // ws hands text and binary messages over as one Buffer (no fragments array: binaryType is nodebuffer).
    connection.#context.receive?.(connection, data as Buffer, isBinary)
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
    context.housekeeping.unread.delete(connection)
    if (connection.#queue !== null) {
      context.metrics.dropped('not_open', connection.#queue.length)
      connection.#queue = null
      connection.#queuedBytes = 0
    }
    if (context.registry.remove(connection)) context.metrics.disconnected(connection.#closeCode ?? code)
    context.closed?.(connection)
  }
}

function messageLength (data: Buffer | ArrayBuffer | Buffer[]): number {
  if (Array.isArray(data)) return data.reduce((sum, part) => sum + part.length, 0)
  return data.byteLength
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
