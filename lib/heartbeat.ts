import type { FastifyBaseLogger } from 'fastify'
import type { FanoutMetrics } from './metrics.js'
import type { Registry } from './registry.js'

/** Ticks of silence after which a connection counts as dead. */
const MAX_IDLE_TICKS = 2

/**
 * One timer for all connections (not one each). Every tick pings each
 * connection; one that has sent nothing (frame, ping or pong) for two whole
 * intervals is terminated: its peer vanished without closing TCP.
 */
export class Heartbeat {
  readonly #interval: number
  readonly #registry: Registry
  readonly #metrics: FanoutMetrics
  readonly #log: FastifyBaseLogger
  #timer: NodeJS.Timeout | undefined

  constructor (interval: number, registry: Registry, metrics: FanoutMetrics, log: FastifyBaseLogger) {
    this.#interval = interval
    this.#registry = registry
    this.#metrics = metrics
    this.#log = log
  }

  start (): void {
    if (this.#interval === 0 || this.#timer !== undefined) return
    this.#timer = setInterval(() => this.#tick(), this.#interval)
    this.#timer.unref() // heartbeats alone never keep a process alive
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  #tick (): void {
    for (const connection of this.#registry.values()) {
      if (connection.idleTicks >= MAX_IDLE_TICKS) {
        this.#metrics.heartbeatTimeouts.inc()
        this.#log.debug({ connectionId: connection.id, userId: connection.userId }, 'fanout: heartbeat timeout, terminating')
        connection.terminate()
        continue
      }
      connection.idleTicks++
      connection.ping()
    }
  }
}
