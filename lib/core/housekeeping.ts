import type { FastifyBaseLogger } from 'fastify'
import type { Connection } from './connection.js'
import type { FanoutMetrics } from '../metrics.js'
import type { Registry } from './registry.js'

/** Heartbeat ticks of silence after which a connection counts as dead. */
const MAX_IDLE_TICKS = 2
/** The inbound budget's window, and the longest gap between sweeps. */
const SECOND = 1000
/** Time a client over its inbound budget gets to read our close frame before its socket goes. */
const ABANDON_GRACE = 1000

export interface HousekeepingOptions {
  /** Milliseconds between pings; 0 turns heartbeats off. */
  readonly heartbeatInterval: number
  /** Milliseconds a client may take to finish a message. */
  readonly messageTimeout: number
}

/** What connections read of the housekeeping timer. */
export interface HousekeepingView {
  /** Number of the current one-second window of the inbound budget. */
  readonly window: number
  /** Connections the server stopped reading (over their budget), until their socket is destroyed. */
  readonly unread: Set<Connection>
}

/**
 * One timer for every connection-level deadline (not one per connection),
 * unref'd so that it never keeps a process alive. Each tick, at most a
 * second apart, touches only what is due:
 * - closes connections whose token expired, from the registry's expiry
 *   index;
 * - starts a new window of the inbound budget (a number connections compare
 *   with their own: no walk over them), and destroys the sockets of
 *   connections closed for exceeding it a second earlier (they are no longer
 *   read, so their close handshake cannot finish);
 * - every `messageTimeout / 2`, walks the connections to close those that
 *   left a message unfinished for `messageTimeout` (it would otherwise pin
 *   its buffers forever, since pings keep the connection alive);
 * - every `heartbeatInterval`, in the same walk, pings every connection and
 *   terminates those that have sent nothing (frame, ping or pong) for two
 *   whole intervals: their peer vanished without closing TCP.
 */
export class Housekeeping implements HousekeepingView {
  readonly unread = new Set<Connection>()
  #window = 0
  readonly #options: HousekeepingOptions
  readonly #registry: Registry
  readonly #metrics: FanoutMetrics
  readonly #log: FastifyBaseLogger
  readonly #period: number
  #timer: NodeJS.Timeout | undefined
  #lastHeartbeat = 0
  #lastStallCheck = 0
  #lastWindow = 0
  readonly #sweeps: Array<(now: number) => void> = []

  constructor (options: HousekeepingOptions, registry: Registry, metrics: FanoutMetrics, log: FastifyBaseLogger) {
    this.#options = options
    this.#registry = registry
    this.#metrics = metrics
    this.#log = log
    this.#period = options.heartbeatInterval === 0 ? SECOND : Math.min(SECOND, options.heartbeatInterval)
  }

  get window (): number {
    return this.#window
  }

  start (): void {
    if (this.#timer !== undefined) return
    this.#lastHeartbeat = this.#lastStallCheck = this.#lastWindow = Date.now()
    this.#timer = setInterval(() => { this.#tick(Date.now()) }, this.#period)
    this.#timer.unref()
  }

  /**
   * Adds work to every tick (at most a second apart): forgetting expired
   * history and presence, closing connections that never identified.
   * It must touch only what is due.
   */
  addSweep (sweep: (now: number) => void): void {
    this.#sweeps.push(sweep)
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  #tick (now: number): void {
    for (const connection of this.#registry.expired(now)) {
      this.#log.debug({ connectionId: connection.id, userId: connection.userId }, 'fanout: token expired, closing')
      connection.closeFor('tokenExpired')
    }
    if (this.#due(now, this.#lastWindow, SECOND)) {
      this.#lastWindow = now
      this.#window++
    }
    for (const sweep of this.#sweeps) sweep(now)
    for (const connection of this.unread) {
      if (!connection.abandoned(now, ABANDON_GRACE)) continue
      this.unread.delete(connection)
      connection.terminate()
    }

    const heartbeat = this.#options.heartbeatInterval !== 0 && this.#due(now, this.#lastHeartbeat, this.#options.heartbeatInterval)
    if (heartbeat) this.#lastHeartbeat = now
    const stallCheck = this.#due(now, this.#lastStallCheck, this.#options.messageTimeout / 2)
    if (stallCheck) this.#lastStallCheck = now
    if (!heartbeat && !stallCheck) return

    for (const connection of this.#registry.values()) {
      if (stallCheck && connection.messageStalled(now, this.#options.messageTimeout)) {
        this.#log.debug({ connectionId: connection.id, userId: connection.userId }, 'fanout: message unfinished, closing')
        connection.closeFor('messageUnfinished')
        continue
      }
      if (!heartbeat) continue
      if (connection.idleTicks >= MAX_IDLE_TICKS) {
        this.#metrics.heartbeatTimeouts.inc()
        this.#log.debug({ connectionId: connection.id, userId: connection.userId }, 'fanout: heartbeat timeout, closing')
        connection.heartbeatTimedOut()
        continue
      }
      connection.idleTicks++
      connection.ping()
    }
  }

  // Timer ticks drift a little late, never early: allow a tenth of a period.
  #due (now: number, last: number, every: number): boolean {
    return now - last >= every - this.#period / 10
  }
}
