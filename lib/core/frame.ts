import { createRequire } from 'node:module'
import { constants, deflateRawSync } from 'node:zlib'

// ws's own framing (Sender.frame), which its type definitions do not declare.
interface FrameOptions { fin: boolean, opcode: number, mask: boolean, readOnly: boolean, rsv1: boolean }
const { Sender } = createRequire(import.meta.url)('ws') as { Sender: { frame: (data: Buffer, options: FrameOptions) => Buffer[] } }

// permessage-deflate (RFC 7692): a message is deflated with a sync flush and
// the flush's empty block (00 00 ff ff) is left off the wire.
const DEFLATE_TAIL = 4

export interface FrameCompression {
  readonly threshold: number
  readonly level: number
}

const TEXT = 1
const BINARY = 2

/**
 * One message as WebSocket frames, built once and shared by every connection
 * it goes to: the plain (text or binary) frame, and, for connections that negotiated
 * permessage-deflate, one compressed frame per negotiated window size. No
 * context takeover is negotiated, so the compressed bytes do not depend on
 * what a connection received before and can be shared.
 */
export class OutboundFrame {
  readonly payload: Buffer
  readonly #compression: FrameCompression | false
  readonly #binary: boolean
  #plain: Buffer | undefined
  #deflated: Map<number, Buffer | null> | undefined

  constructor (payload: Buffer, compression: FrameCompression | false, binary = false) {
    this.payload = payload
    this.#compression = compression
    this.#binary = binary
  }

  /** The uncompressed frame: header and payload in one Buffer. */
  plain (): Buffer {
    this.#plain ??= dataFrame(this.payload, this.#binary)
    return this.#plain
  }

  /**
   * The frame for a connection that negotiated deflate with `windowBits`:
   * compressed when the payload reaches the threshold and compression makes
   * it smaller, plain otherwise.
   */
  forDeflate (windowBits: number): Buffer {
    const compression = this.#compression
    if (compression === false || this.payload.length < compression.threshold) return this.plain()
    this.#deflated ??= new Map()
    let frame = this.#deflated.get(windowBits)
    if (frame === undefined) {
      const deflated = deflateRawSync(this.payload, { level: compression.level, windowBits, finishFlush: constants.Z_SYNC_FLUSH })
      const body = deflated.subarray(0, deflated.length - DEFLATE_TAIL)
      frame = body.length < this.payload.length
        ? Buffer.concat(Sender.frame(body, { fin: true, opcode: this.#binary ? BINARY : TEXT, mask: false, readOnly: false, rsv1: true }))
        : null
      this.#deflated.set(windowBits, frame)
    }
    return frame ?? this.plain()
  }
}

/** One unmasked, uncompressed text (or binary) frame: header and payload in one Buffer. */
export function dataFrame (payload: Buffer, binary = false): Buffer {
  return Buffer.concat(Sender.frame(payload, { fin: true, opcode: binary ? BINARY : TEXT, mask: false, readOnly: false, rsv1: false }))
}
