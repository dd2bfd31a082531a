import { WebSocket } from 'ws'
import type { FastifyBaseLogger } from 'fastify'
import { CloseCode, isApplicationCloseCode } from './close-codes.js'
import { InvalidCloseCodeError } from './errors.js'
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
}

const kConnection = Symbol('fanout.connection')

declare module 'ws' {
  interface WebSocket {
    [kConnection]?: Connection
  }
}

const SEND_TEXT = { binary: false } as const

/**
 * One authenticated WebSocket. Holds only a few fields: the upgrade request
 * is not retained, and the socket's listeners are shared functions that find
 * their connection through a symbol, so a connection costs no closures.
 */
export class Connection implements FanoutConnection {
  readonly id: string
  readonly userId: string
  readonly claims: TokenClaims
  readonly connectedAt: number
  /** Heartbeat ticks since the client last sent anything (frame, ping or pong). */
  idleTicks = 0
  readonly #socket: WebSocket
  readonly #context: ConnectionContext
  /** The code the server closed with, when it closed first (ws reports the peer's). */
  #closeCode: number | undefined

  constructor (id: string, userId: string, claims: TokenClaims, socket: WebSocket, context: ConnectionContext) {
    this.id = id
    this.userId = userId
    this.claims = claims
    this.connectedAt = Date.now()
    this.#socket = socket
    this.#context = context
    socket[kConnection] = this
    socket.on('message', Connection.#onMessage)
    socket.on('pong', Connection.#onActivity)
    socket.on('ping', Connection.#onActivity)
    socket.on('close', Connection.#onClose)
  }

  get bufferedAmount (): number {
    return this.#socket.bufferedAmount
  }

  /**
   * Writes one encoded message unless the connection is closing or already
   * holds more than `maxBufferedBytes` unsent. A message always goes out on an
   * empty buffer, so memory per connection stays within the bound plus one
   * message.
   */
  write (payload: Buffer): WriteOutcome {
    const socket = this.#socket
    if (socket.readyState !== WebSocket.OPEN) return 'not_open'
    const buffered = socket.bufferedAmount
    if (buffered !== 0 && buffered + payload.length > this.#context.maxBufferedBytes) {
      if (this.#context.closeSlowConsumers) {
        this.#context.log.debug({ connectionId: this.id, userId: this.userId, buffered }, 'fanout: closing slow consumer')
        this.closeWith(CloseCode.SLOW_CONSUMER, 'slow consumer')
      }
      return 'slow'
    }
    socket.send(payload, SEND_TEXT)
    return 'sent'
  }

  send (data: unknown): boolean {
    return this.#context.send(this, data)
  }

  close (code: number = CloseCode.DISCONNECTED, reason = 'disconnected by server'): void {
    if (!isApplicationCloseCode(code)) throw new InvalidCloseCodeError(code)
    this.closeWith(code, reason)
  }

  /** Starts the closing handshake with any valid code. */
  closeWith (code: number, reason: string): void {
    if (this.#socket.readyState !== WebSocket.OPEN) return
    this.#closeCode = code
    this.#socket.close(code, reason)
  }

  /**
   * Records the code ws closed a socket with after a protocol error (it
   * sends the close frame itself and stops reading, so its 'close' event
   * would only report 1006).
   */
  static protocolError (socket: WebSocket, error: { code?: string }): void {
    const connection = socket[kConnection]
    if (connection !== undefined && connection.#closeCode === undefined) connection.#closeCode = protocolErrorCloseCode(error.code)
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

  static #onClose (this: WebSocket, code: number): void {
    const connection = this[kConnection]
    if (connection === undefined) return
    const context = connection.#context
    if (context.registry.remove(connection)) context.metrics.disconnected(connection.#closeCode ?? code)
  }
}

// The close code ws sends for each receive error it raises.
function protocolErrorCloseCode (code: string | undefined): number {
  if (code === 'WS_ERR_INVALID_UTF8') return CloseCode.INVALID_DATA
  if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' || code === 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH') return CloseCode.MESSAGE_TOO_BIG
  return CloseCode.PROTOCOL_ERROR
}
