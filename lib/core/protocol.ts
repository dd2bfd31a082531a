import type { Envelope } from '../backplane/types.js'
import { OutboundFrame, type FrameCompression } from './frame.js'

/**
 * How one endpoint's protocol writes what the engine delivers. The engine
 * knows no wire format: for each envelope it asks each protocol present
 * among the targets for its payload once, and every connection of that
 * protocol gets the same frame.
 */
export interface WireProtocol {
  /** This protocol's place in a delivery's frame cache: 0, 1, ... (below MAX_PROTOCOLS). */
  readonly slot: number
  /** Whether its frames are binary (text otherwise). */
  readonly binary: boolean
  /**
   * Whether its clients recover what they missed from history once the
   * backplane is back (so a backplane loss closes them only when it ends).
   */
  readonly recovers: boolean
  /** The payload for `envelope`, or undefined when this protocol has no form for it (nothing is written). */
  encode: (envelope: Envelope) => Buffer | undefined
}

/** Protocols one instance can speak at once. */
export const MAX_PROTOCOLS = 4

/** One envelope's frames, built on first use by each protocol and shared by all its connections. */
export class DeliveryFrames {
  readonly #envelope: Envelope
  readonly #compression: FrameCompression | false
  readonly #frames: Array<OutboundFrame | null | undefined> = new Array(MAX_PROTOCOLS)

  constructor (envelope: Envelope, compression: FrameCompression | false) {
    this.#envelope = envelope
    this.#compression = compression
  }

  /** The frame for connections speaking `protocol`; null when it has no form for this envelope. */
  for (protocol: WireProtocol): OutboundFrame | null {
    let frame = this.#frames[protocol.slot]
    if (frame === undefined) {
      const payload = protocol.encode(this.#envelope)
      frame = payload === undefined ? null : new OutboundFrame(payload, this.#compression, protocol.binary)
      this.#frames[protocol.slot] = frame
    }
    return frame
  }
}
