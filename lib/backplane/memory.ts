import type { Backplane, Deliver, Envelope } from './types.js'
import type { DeliveryResult } from '../types.js'

/** The embedded backplane: one process, delivery in the publishing call. */
export class MemoryBackplane implements Backplane {
  #deliver: Deliver | undefined
  readonly up = true

  // One process: nothing is ever missed, so there are no gaps to report.
  async start (deliver: Deliver): Promise<void> {
    this.#deliver = deliver
  }

  async publish (envelope: Envelope): Promise<DeliveryResult> {
    // Before start (the app is not ready) no connection can exist.
    if (this.#deliver === undefined) return { id: envelope.id, delivered: 0, dropped: 0, instances: 1 }
    return { ...this.#deliver(envelope), instances: 1 }
  }

  // One process receives everything: interest needs no bookkeeping.
  watchUser (): void {}
  unwatchUser (): void {}
  watchChannel (): void {}
  unwatchChannel (): void {}

  async close (): Promise<void> {
    this.#deliver = undefined
  }
}
