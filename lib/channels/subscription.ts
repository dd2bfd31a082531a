import type { Envelope } from '../backplane/types.js'
import type { Connection, WriteOutcome } from '../core/connection.js'
import type { DeliveryFrames } from '../core/protocol.js'
import type { ChannelSubscriber } from '../core/registry.js'
import type { ResolvedNamespace } from './namespaces.js'
import type { ClientInfo, StreamPosition } from './types.js'

/**
 * One connection's subscription to one channel. While it is being set up
 * (history read, recovery), the channel's live envelopes are held here, so
 * that nothing published between "receiving" and "replying" is lost or
 * sent twice. Once live, a positioned subscription checks that each
 * publication follows the last one it got: a hole (Redis Pub/Sub is
 * at-most-once) closes the connection so that the client recovers, instead
 * of going on with a silent gap.
 */
export class Subscription implements ChannelSubscriber {
  readonly connection: Connection
  readonly channel: string
  readonly namespace: ResolvedNamespace
  /** Whether join/leave notices go to this subscriber. */
  readonly joinLeave: boolean
  /** Who this subscriber is, in presence, join/leave and its publications. */
  readonly info: ClientInfo
  /** When the subscription token's authority ends, in ms (Infinity: no token or no `exp`). */
  expiresAt: number
  #offset = 0
  #epoch = ''
  /** Envelopes held while subscribing; null once live. */
  #held: Envelope[] | null = []

  constructor (connection: Connection, channel: string, namespace: ResolvedNamespace, settings: {
    joinLeave: boolean, info: ClientInfo, expiresAt: number
  }) {
    this.connection = connection
    this.channel = channel
    this.namespace = namespace
    this.joinLeave = settings.joinLeave
    this.info = settings.info
    this.expiresAt = settings.expiresAt
  }

  /** Whether publications carry offsets this subscription checks (the namespace's positioning, which needs history). */
  get positioned (): boolean {
    return this.namespace.positioning
  }

  /** Whether the client may come back and recover from its position (implies positioned). */
  get recoverable (): boolean {
    return this.namespace.recovery
  }

  get position (): StreamPosition {
    return { offset: this.#offset, epoch: this.#epoch }
  }

  get live (): boolean {
    return this.#held === null
  }

  receive (envelope: Envelope, frames: DeliveryFrames): WriteOutcome | 'skipped' | 'unencodable' {
    if (this.#held !== null) {
      if (envelope.presence === undefined) this.#held.push(envelope)
      return 'skipped' // join/leave notices are at most once: none before the reply
    }
    if (envelope.presence !== undefined) return this.joinLeave ? this.#write(frames) : 'skipped'
    if (this.positioned && envelope.offset !== undefined) {
      if (envelope.epoch !== this.#epoch || envelope.offset > this.#offset + 1) {
        this.connection.closeFor('insufficientState')
        return 'skipped'
      }
      if (envelope.offset <= this.#offset) return 'skipped' // already given with the subscribe reply
      this.#offset = envelope.offset
    }
    const outcome = this.#write(frames)
    // A positioned client must never miss one silently, even when slow
    // consumers keep their connection (slowConsumer: 'drop').
    if (outcome === 'slow' && this.positioned) this.connection.closeFor('insufficientState')
    return outcome
  }

  /**
   * Ends the setup: from `position` on, the subscription is live. Returns the
   * held envelopes to write after the reply (those past `position`, in
   * order), or null when they do not follow it without a hole (the caller
   * closes the connection: the client will recover).
   */
  goLive (position: StreamPosition | undefined): Envelope[] | null {
    const held = this.#held ?? []
    this.#held = null
    if (position === undefined || !this.positioned) return held.filter((envelope) => envelope.presence === undefined)
    this.#offset = position.offset
    this.#epoch = position.epoch
    const next: Envelope[] = []
    for (const envelope of [...held].sort((a, b) => (a.offset ?? 0) - (b.offset ?? 0))) {
      if (envelope.offset === undefined || envelope.offset <= this.#offset) continue
      if (envelope.epoch !== this.#epoch || envelope.offset !== this.#offset + 1) return null
      this.#offset = envelope.offset
      next.push(envelope)
    }
    return next
  }

  #write (frames: DeliveryFrames): WriteOutcome | 'skipped' | 'unencodable' {
    const frame = frames.for(this.connection.protocol)
    // No form in this connection's protocol: binary data for a JSON client.
    return frame === null ? 'unencodable' : this.connection.write(frame)
  }
}
