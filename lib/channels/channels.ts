import type { FastifyBaseLogger } from 'fastify'
import type { Backplane, Envelope } from '../backplane/types.js'
import type { Registry } from '../core/registry.js'
import { HistoryUnavailableError } from '../errors.js'
import type { FanoutMetrics } from '../metrics.js'
import type { DeliveryResult } from '../types.js'
import type { ResolvedChannels, ResolvedNamespace } from './namespaces.js'
import type { Subscription } from './subscription.js'
import type { ClientInfo, HistoryLimits, HistoryPage, HistoryQuery, Publication, PresenceStats, StreamPosition } from './types.js'

/** What publishing to a channel did; `offset` and `epoch` when the channel keeps history. */
export interface ChannelDelivery extends DeliveryResult {
  offset?: number
  epoch?: string
}

/** How a subscription started: where the client stands and what it gets with the reply. */
export interface SubscribeOutcome {
  /** The stream position the client holds after the reply (positioned subscriptions). */
  position: StreamPosition | undefined
  /** The client asked to recover and every publication it missed is in `publications`. */
  recovered: boolean
  /** Missed publications, in order (only when recovered). */
  publications: Publication[]
}

/** How a publication is made, besides its data. */
export interface PublishOptions {
  /** Who published (a client), for subscribers and history. */
  readonly info?: ClientInfo
  /** Deliver without keeping it in history (the server API's `skip_history`). */
  readonly skipHistory?: boolean
  /** `data` is bytes that are not JSON: only Protobuf clients can receive it. */
  readonly binary?: boolean
}

/**
 * Channels, protocol-free: publishing (with history where the namespace
 * keeps it), subscribing with recovery, history and presence, over the
 * backplane in use (memory or Redis).
 */
export class Channels {
  readonly settings: ResolvedChannels
  readonly #registry: Registry
  readonly #backplane: () => Backplane
  readonly #nextId: () => string
  /** Subscriptions whose presence entry this instance keeps alive, or whose leave it will announce. */
  readonly #present = new Set<Subscription>()
  #lastPresenceRefresh = Date.now()

  readonly #log: FastifyBaseLogger
  readonly #metrics: FanoutMetrics

  constructor (settings: ResolvedChannels, registry: Registry, backplane: () => Backplane, nextId: () => string, metrics: FanoutMetrics, log: FastifyBaseLogger) {
    this.settings = settings
    this.#metrics = metrics
    this.#log = log
    this.#registry = registry
    this.#backplane = backplane
    this.#nextId = nextId
  }

  /**
   * Publishes `data` (JSON text, or bytes with `binary`) to a channel's
   * subscribers on every instance. `skipHistory` publishes past the
   * namespace's history: no offset, not kept, so not recoverable
   * (Centrifugo's `skip_history`).
   */
  async publish (channel: string, namespace: ResolvedNamespace, data: Buffer, options: PublishOptions = {}): Promise<ChannelDelivery> {
    const { info, skipHistory = false, binary = false } = options
    const envelope: Envelope = { id: this.#nextId(), data, binary, channel, info }
    const history = skipHistory ? undefined : namespace.history
    this.#metrics.channelPublications.inc({ history: String(history !== undefined) })
    if (history === undefined) return await this.#backplane().publish(envelope)
    let published
    try {
      published = await this.#backplane().publishWithHistory(envelope, history)
    } catch (err) {
      throw new HistoryUnavailableError(JSON.stringify(channel), { cause: err })
    }
    // Written out: a rest and a spread cost more than the rest of a memory publish.
    const { position } = published
    return {
      id: published.id,
      instances: published.instances,
      delivered: published.delivered,
      dropped: published.dropped,
      partial: published.partial,
      offset: position.offset,
      epoch: position.epoch
    }
  }

  /**
   * Starts a subscription: registered first (so that nothing published from
   * now on is missed; it is held until the reply), then the history read
   * once this instance receives the channel, then recovery decided all or
   * nothing: every publication after the client's position, without a gap,
   * or none. The subscription stays held: the caller writes its reply, then
   * calls `subscription.goLive(outcome.position)` in the same turn.
   */
  async subscribe (subscription: Subscription, recover: StreamPosition | undefined): Promise<SubscribeOutcome> {
    const { channel, namespace } = subscription
    this.#registry.subscribe(channel, subscription)
    try {
      const backplane = this.#backplane()
      await backplane.watching(channel)
      if (namespace.presence || namespace.joinLeave) await this.#join(subscription)
      if (namespace.history === undefined || !subscription.positioned) {
        return { position: undefined, recovered: false, publications: [] }
      }
      if (recover === undefined) {
        const page = await backplane.history(channel, { limit: 0 }, readLimits(namespace.history))
        return { position: page.position, recovered: false, publications: [] }
      }
      const max = this.settings.recoveryMaxPublications
      const page = await backplane.history(channel, { limit: max + 1, since: recover }, readLimits(namespace.history))
      const recovered = isRecovered(page, recover, max)
      this.#metrics.recoveries.inc({ outcome: recovered ? 'recovered' : 'not_recovered' })
      const position = recovered ? lastOf(page, recover) : page.position
      return { position, recovered, publications: recovered ? page.publications : [] }
    } catch (err) {
      this.unsubscribe(subscription)
      throw err
    }
  }

  /** Ends a subscription (the client's unsubscribe, or its connection closing). */
  unsubscribe (subscription: Subscription): void {
    this.#registry.unsubscribe(subscription.channel, subscription)
    if (this.#present.delete(subscription)) {
      const { channel, info, namespace } = subscription
      if (namespace.presence) {
        // On failure the entry expires on its own within presenceTtl.
        this.#backplane().presence.remove(channel, info.client).catch((err: Error) => { this.#failed(err, 'presence remove') })
      }
      if (namespace.joinLeave) this.#notify(channel, 'leave', info)
    }
  }

  async history (channel: string, namespace: ResolvedNamespace, query: HistoryQuery): Promise<HistoryPage> {
    if (namespace.history === undefined) throw new Error('no history') // callers check first
    const max = this.settings.historyMaxLimit
    const limit = query.limit < 0 || query.limit > max ? max : query.limit
    return await this.#backplane().history(channel, { ...query, limit }, readLimits(namespace.history))
  }

  async removeHistory (channel: string): Promise<void> {
    await this.#backplane().removeHistory(channel)
  }

  async presence (channel: string): Promise<Record<string, ClientInfo>> {
    return await this.#backplane().presence.get(channel)
  }

  async presenceStats (channel: string): Promise<PresenceStats> {
    return await this.#backplane().presence.stats(channel)
  }

  /** Refreshes this instance's presence entries every third of their lifetime (the housekeeping tick). */
  sweep (now: number): void {
    const ttl = this.settings.presenceTtl
    if (now - this.#lastPresenceRefresh < ttl / 3) return
    this.#lastPresenceRefresh = now
    const presence = this.#backplane().presence
    for (const { channel, info, namespace } of this.#present) {
      if (!namespace.presence) continue
      // In a Redis outage entries lapse, and come back at the next refresh.
      presence.add(channel, info.client, info, ttl).catch((err: Error) => { this.#failed(err, 'presence refresh') })
    }
  }

  /** Enters presence and announces the join, as the namespace keeps and tells them. */
  async #join (subscription: Subscription): Promise<void> {
    const { channel, info, namespace } = subscription
    if (namespace.presence) await this.#backplane().presence.add(channel, info.client, info, this.settings.presenceTtl)
    this.#present.add(subscription)
    if (namespace.joinLeave) this.#notify(channel, 'join', info)
  }

  // Join and leave notices are at most once (no offset, no history), as in Centrifugo.
  #notify (channel: string, presence: 'join' | 'leave', info: ClientInfo): void {
    this.#backplane().publish({ id: this.#nextId(), data: EMPTY, channel, info, presence }).catch((err: Error) => { this.#failed(err, presence) })
  }

  #failed (err: Error, operation: string): void {
    this.#log.debug({ err, operation }, 'fanout: channel operation failed')
  }
}

const EMPTY = Buffer.alloc(0)

/**
 * The limits a read passes: a stream that a read creates (no publication
 * yet, only an epoch) is kept `ttl`, not `metaTtl`, so that subscribing to
 * fresh channel names in a loop cannot fill memory or Redis with empty
 * streams for a month. The first publication gives it `metaTtl`.
 */
function readLimits (limits: HistoryLimits): HistoryLimits {
  return { size: limits.size, ttl: limits.ttl, metaTtl: limits.ttl }
}

/**
 * Whether a history read after `since` holds every publication the client
 * missed: the same epoch, at most `max` of them, and consecutive up to the
 * top (or none, when the client is at the top).
 */
function isRecovered (page: HistoryPage, since: StreamPosition, max: number): boolean {
  if (since.epoch !== '' && since.epoch !== page.position.epoch) return false
  const { publications, position } = page
  if (publications.length === 0) return position.offset === since.offset
  if (publications.length > max) return false
  const first = publications[0] as Publication
  const last = publications[publications.length - 1] as Publication
  return first.offset === since.offset + 1 && last.offset === position.offset && last.offset - first.offset + 1 === publications.length
}

function lastOf (page: HistoryPage, since: StreamPosition): StreamPosition {
  const last = page.publications[page.publications.length - 1]
  return { offset: last?.offset ?? since.offset, epoch: page.position.epoch }
}
