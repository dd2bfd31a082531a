import { MemoryHistory } from '../channels/history.js'
import { MemoryPresence } from '../channels/presence.js'
import type { HistoryLimits, HistoryPage, HistoryQuery } from '../channels/types.js'
import type { Backplane, ChannelPublishResult, Deliver, Envelope, SurveyQuestion, SurveyResponder } from './types.js'
import type { DeliveryResult } from '../types.js'

/**
 * The embedded backplane: one process, delivery in the publishing call;
 * history and presence in memory (lost on restart: a client coming back
 * learns so from a new epoch).
 */
export class MemoryBackplane implements Backplane {
  #deliver: Deliver | undefined
  #respond: SurveyResponder | undefined
  readonly up = true
  readonly #history = new MemoryHistory()
  readonly presence = new MemoryPresence()

  // One process: nothing is ever missed, so there are no gaps to report.
  async start (deliver: Deliver, _onGap: unknown, respond: SurveyResponder): Promise<void> {
    this.#deliver = deliver
    this.#respond = respond
  }

  // One process is every instance there is.
  async survey (question: SurveyQuestion): Promise<unknown[]> {
    return this.#respond === undefined ? [] : [this.#respond(question)]
  }

  async publish (envelope: Envelope): Promise<DeliveryResult> {
    // Before start (the app is not ready) no connection can exist.
    if (this.#deliver === undefined) return { id: envelope.id, delivered: 0, dropped: 0, instances: 1 }
    return { ...this.#deliver(envelope), instances: 1 }
  }

  async publishWithHistory (envelope: Envelope, limits: HistoryLimits): Promise<ChannelPublishResult> {
    const position = this.#history.append(envelope.channel as string, envelope.binary === true ? envelope.data : envelope.data.toString(), envelope.info, limits)
    const positioned: Envelope = { id: envelope.id, data: envelope.data, binary: envelope.binary, channel: envelope.channel, info: envelope.info, offset: position.offset, epoch: position.epoch }
    const local = this.#deliver?.(positioned) ?? { id: envelope.id, delivered: 0, dropped: 0 }
    return { id: local.id, delivered: local.delivered, dropped: local.dropped, instances: 1, position }
  }

  async history (channel: string, query: HistoryQuery, limits: HistoryLimits): Promise<HistoryPage> {
    return this.#history.read(channel, query, limits)
  }

  async removeHistory (channel: string): Promise<void> {
    this.#history.remove(channel)
  }

  /** Forgets expired history and presence (the housekeeping timer's tick). */
  sweep (now: number): void {
    this.#history.sweep(now)
    this.presence.sweep(now)
  }

  // One process receives everything: interest needs no bookkeeping.
  watchUser (): void {}
  unwatchUser (): void {}
  watchChannel (): void {}
  unwatchChannel (): void {}
  async watching (): Promise<void> {}

  async close (): Promise<void> {
    this.#deliver = undefined
    this.#respond = undefined
  }
}
