import type { DeliveryResult } from '../types.js'

/**
 * One message on its way to connections: the encoded frame payload (built
 * once, by the instance that accepted the message) and who it is for.
 */
export interface Envelope {
  readonly id: string
  readonly payload: Buffer
  /** Only these users' connections; everyone when absent. */
  readonly users?: readonly string[]
  /** Skip these users' connections. */
  readonly except?: readonly string[]
  /** Only this connection. */
  readonly connectionId?: string
}

/** Writes an envelope to the matching local connections. */
export type Deliver = (envelope: Envelope) => DeliveryResult

/**
 * What joins instances. Every instance, the publishing one included, delivers
 * what is published from its subscription, so each connection receives each
 * message once, in publish order. The embedded default joins nothing but
 * this process; the Redis one (next) joins every instance on a Redis.
 */
export interface Backplane {
  /** Starts delivering published envelopes to `deliver`. */
  start: (deliver: Deliver) => Promise<void>
  /** Publishes an envelope; resolves with what this instance delivered. */
  publish: (envelope: Envelope) => Promise<DeliveryResult>
  /** Stops delivering and releases what the backplane created. */
  close: () => Promise<void>
}
