import type { Connection, WriteOutcome } from './connection.js'
import type { FrameCompression } from './frame.js'
import { DeliveryFrames } from './protocol.js'
import { serializeData } from './data.js'
import type { Envelope, LocalDelivery } from '../backplane/types.js'
import type { FanoutMetrics } from '../metrics.js'
import type { Registry } from './registry.js'
import type { BroadcastTarget, DeliveryResult } from '../types.js'

/**
 * Fan-out: a message's data is serialized once where it is accepted, travels
 * through the backplane as those bytes, and each instance frames it once per
 * protocol (DeliveryFrames): every matching local connection of a protocol
 * gets the same Buffer.
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
    const frames = new DeliveryFrames({ id: this.nextId(), data: serializeData(data) }, this.#compression)
    const tally = newTally()
    write(connection, frames, tally)
    this.#record(tally, started)
    return tally.delivered === 1
  }

  publish (data: unknown, target: BroadcastTarget & { connectionId?: string } = {}): Promise<DeliveryResult> {
    const envelope: Envelope = {
      id: this.nextId(),
      data: serializeData(data),
      users: target.users,
      except: target.except,
      connectionId: target.connectionId
    }
    return this.#publish(envelope)
  }

  /**
   * Closes every connection of `userId` on every instance (only the one
   * with id `connectionId`, when given, if it is the user's); code 0: each
   * endpoint's own.
   */
  disconnect (userId: string, code: number, reason: string, connectionId?: string): Promise<DeliveryResult> {
    return this.#publish({ id: this.nextId(), data: EMPTY, users: [userId], connectionId, disconnect: { code, reason } })
  }

  /**
   * Subscribes every connection of `userId` (or only its connection
   * `connectionId`), on every instance, to `channel` (or ends that).
   */
  subscription (userId: string, channel: string, subscribe: boolean, connectionId?: string): Promise<DeliveryResult> {
    return this.#publish({ id: this.nextId(), data: EMPTY, users: [userId], connectionId, subscription: { channel, subscribe } })
  }

  /** Writes an envelope to the local connections it targets (or closes them, for a disconnect). */
  deliver (envelope: Envelope): LocalDelivery {
    if (envelope.disconnect !== undefined) return this.#disconnect(envelope, envelope.disconnect)
    if (envelope.subscription !== undefined) return this.#subscription(envelope, envelope.subscription)
    const started = process.hrtime.bigint()
    const { users, connectionId } = envelope
    // Framed once per protocol here (and compressed once per window size, if
    // needed): every target of a protocol gets the same bytes.
    const frames = new DeliveryFrames(envelope, this.#compression)
    const except = envelope.except !== undefined && envelope.except.length > 0 ? new Set(envelope.except) : undefined
    const tally = newTally()

    if (envelope.channel !== undefined) {
      for (const subscriber of this.#registry.subscribersOf(envelope.channel)) {
        count(subscriber.receive(envelope, frames), tally, frames, subscriber.connection)
      }
    } else if (connectionId !== undefined) {
      const connection = this.#registry.get(connectionId)
      if (connection !== undefined) write(connection, frames, tally)
    } else if (users !== undefined) {
      // A user named twice still gets one copy.
      for (const userId of new Set(users)) {
        if (except?.has(userId) === true) continue
        for (const connection of this.#registry.ofUser(userId)) write(connection, frames, tally)
      }
    } else {
      for (const connection of this.#registry.values()) {
        if (except?.has(connection.userId) === true) continue
        write(connection, frames, tally)
      }
    }

    this.#record(tally, started)
    return { id: envelope.id, delivered: tally.delivered, dropped: tally.slow + tally.notOpen }
  }

  #disconnect (envelope: Envelope, { code, reason }: { code: number, reason: string }): LocalDelivery {
    let closed = 0
    const only = envelope.connectionId
    for (const userId of envelope.users ?? []) {
      // Closing starts the handshake; the connection leaves the set on ws's 'close', later.
      for (const connection of this.#registry.ofUser(userId)) {
        if (only !== undefined && connection.id !== only) continue
        if (code === 0) connection.closeFor('disconnected')
        else connection.closeWith(code, reason)
        closed++
      }
    }
    return { id: envelope.id, delivered: closed, dropped: 0 }
  }

  // Connections of endpoints without server-side subscriptions (/ws) are not counted.
  #subscription (envelope: Envelope, { channel, subscribe }: { channel: string, subscribe: boolean }): LocalDelivery {
    let applied = 0
    const only = envelope.connectionId
    for (const userId of envelope.users ?? []) {
      for (const connection of this.#registry.ofUser(userId)) {
        if (only !== undefined && connection.id !== only) continue
        if (connection.serverSubscription(channel, subscribe)) applied++
      }
    }
    return { id: envelope.id, delivered: applied, dropped: 0 }
  }

  // Metrics move once per message, not once per connection.
  #record (tally: Tally, started: bigint): void {
    const metrics = this.#metrics
    metrics.broadcasts.inc()
    if (tally.delivered > 0) {
      metrics.messagesSent.inc(tally.delivered)
      metrics.bytesSent.inc(tally.bytes)
    }
    if (tally.slow > 0) metrics.dropped('slow_consumer', tally.slow)
    if (tally.notOpen > 0) metrics.dropped('not_open', tally.notOpen)
    if (tally.unencodable > 0) metrics.dropped('unencodable', tally.unencodable)
    metrics.broadcastDuration.observe(Number(process.hrtime.bigint() - started) / 1e9)
  }
}

const EMPTY = Buffer.alloc(0)

interface Tally { delivered: number, bytes: number, slow: number, notOpen: number, unencodable: number }

function newTally (): Tally {
  return { delivered: 0, bytes: 0, slow: 0, notOpen: 0, unencodable: 0 }
}

/** Writes the frame of the connection's protocol, unless that protocol has no form for the envelope. */
function write (connection: Connection, frames: DeliveryFrames, tally: Tally): void {
  const frame = frames.for(connection.protocol)
  if (frame !== null) count(connection.write(frame), tally, frames, connection)
}

function count (outcome: WriteOutcome | 'skipped' | 'unencodable', tally: Tally, frames: DeliveryFrames, connection: Connection): void {
  switch (outcome) {
    case 'sent':
      tally.delivered++
      tally.bytes += frames.for(connection.protocol)?.payload.length ?? 0
      break
    case 'slow': tally.slow++; break
    case 'not_open': tally.notOpen++; break
    case 'unencodable': tally.unencodable++; break
  }
}
