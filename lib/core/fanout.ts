import type { Connection } from './connection.js'
import { OutboundFrame, type FrameCompression } from './frame.js'
import type { Envelope, LocalDelivery } from '../backplane/types.js'
import { encodeMessage } from '../protocols/plain/message.js'
import type { FanoutMetrics } from '../metrics.js'
import type { Registry } from './registry.js'
import type { BroadcastTarget, DeliveryResult } from '../types.js'

/**
 * Fan-out: a message is encoded once where it is accepted, travels through
 * the backplane as those bytes, and the same Buffer is written to every
 * matching local connection.
 */
export class Fanout {
  readonly #instanceId: string
  readonly #registry: Registry
  readonly #metrics: FanoutMetrics
  readonly #publish: (envelope: Envelope) => Promise<DeliveryResult>
  readonly #compression: FrameCompression | false
  #sequence = 0

  /** `publish` hands an envelope to the backplane in use. */
  constructor (
    instanceId: string, registry: Registry, metrics: FanoutMetrics,
    publish: (envelope: Envelope) => Promise<DeliveryResult>, compression: FrameCompression | false
  ) {
    this.#instanceId = instanceId
    this.#registry = registry
    this.#metrics = metrics
    this.#publish = publish
    this.#compression = compression
  }

  /** A message id unique across instances: this instance's id and a counter. */
  nextId (): string {
    return this.#instanceId + ':' + (++this.#sequence).toString(36)
  }

  /** Writes straight to a connection of this instance: no backplane hop. */
  sendToConnection (connection: Connection, data: unknown): boolean {
    const started = process.hrtime.bigint()
    const frame = new OutboundFrame(encodeMessage(this.nextId(), data), this.#compression)
    const tally = newTally()
    write(connection, frame, tally)
    this.#record(tally, frame.payload.length, started)
    return tally.delivered === 1
  }

  publish (data: unknown, target: BroadcastTarget & { connectionId?: string } = {}): Promise<DeliveryResult> {
    const id = this.nextId()
    const envelope: Envelope = {
      id,
      payload: encodeMessage(id, data),
      users: target.users,
      except: target.except,
      connectionId: target.connectionId
    }
    return this.#publish(envelope)
  }

  /** Closes every connection of `userId` on every instance. */
  disconnect (userId: string, code: number, reason: string): Promise<DeliveryResult> {
    return this.#publish({ id: this.nextId(), payload: EMPTY, users: [userId], disconnect: { code, reason } })
  }

  /** Writes an envelope to the local connections it targets (or closes them, for a disconnect). */
  deliver (envelope: Envelope): LocalDelivery {
    if (envelope.disconnect !== undefined) return this.#disconnect(envelope, envelope.disconnect)
    const started = process.hrtime.bigint()
    const { users, connectionId } = envelope
    // Framed once here (and compressed once per window size, if needed): every
    // target gets the same bytes.
    const frame = new OutboundFrame(envelope.payload, this.#compression)
    const except = envelope.except !== undefined && envelope.except.length > 0 ? new Set(envelope.except) : undefined
    const tally = newTally()

    if (connectionId !== undefined) {
      const connection = this.#registry.get(connectionId)
      if (connection !== undefined) write(connection, frame, tally)
    } else if (users !== undefined) {
      // A user named twice still gets one copy.
      for (const userId of new Set(users)) {
        if (except?.has(userId) === true) continue
        for (const connection of this.#registry.ofUser(userId)) write(connection, frame, tally)
      }
    } else {
      for (const connection of this.#registry.values()) {
        if (except?.has(connection.userId) === true) continue
        write(connection, frame, tally)
      }
    }

    this.#record(tally, frame.payload.length, started)
    return { id: envelope.id, delivered: tally.delivered, dropped: tally.slow + tally.notOpen }
  }

  #disconnect (envelope: Envelope, { code, reason }: { code: number, reason: string }): LocalDelivery {
    let closed = 0
    for (const userId of envelope.users ?? []) {
      // Closing starts the handshake; the connection leaves the set on ws's 'close', later.
      for (const connection of this.#registry.ofUser(userId)) {
        connection.closeWith(code, reason)
        closed++
      }
    }
    return { id: envelope.id, delivered: closed, dropped: 0 }
  }

  // Metrics move once per message, not once per connection.
  #record (tally: Tally, bytes: number, started: bigint): void {
    const metrics = this.#metrics
    metrics.broadcasts.inc()
    if (tally.delivered > 0) {
      metrics.messagesSent.inc(tally.delivered)
      metrics.bytesSent.inc(tally.delivered * bytes)
    }
    if (tally.slow > 0) metrics.dropped('slow_consumer', tally.slow)
    if (tally.notOpen > 0) metrics.dropped('not_open', tally.notOpen)
    metrics.broadcastDuration.observe(Number(process.hrtime.bigint() - started) / 1e9)
  }
}

const EMPTY = Buffer.alloc(0)

interface Tally { delivered: number, slow: number, notOpen: number }

function newTally (): Tally {
  return { delivered: 0, slow: 0, notOpen: 0 }
}

function write (connection: Connection, frame: OutboundFrame, tally: Tally): void {
  switch (connection.write(frame)) {
    case 'sent': tally.delivered++; break
    case 'slow': tally.slow++; break
    case 'not_open': tally.notOpen++; break
  }
}
