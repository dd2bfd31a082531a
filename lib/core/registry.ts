import type { Envelope } from '../backplane/types.js'
import type { Connection, WriteOutcome } from './connection.js'
import { ExpiryWheel } from './expiry.js'
import type { DeliveryFrames } from './protocol.js'

const NONE: ReadonlySet<Connection> = new Set()
const NO_SUBSCRIBERS: ReadonlySet<ChannelSubscriber> = new Set()

/**
 * Told when a user's first connection arrives and when their last one
 * leaves, and the same for a channel's subscribers.
 */
export interface UserInterest {
  watchUser: (userId: string) => void
  unwatchUser: (userId: string) => void
  watchChannel: (channel: string) => void
  unwatchChannel: (channel: string) => void
}

/**
 * One connection's subscription to one channel, as the engine sees it: it
 * is handed each of the channel's envelopes with the shared frames and
 * decides (positioning, recovery in progress, join/leave wanted) whether
 * to write it.
 */
export interface ChannelSubscriber {
  readonly connection: Connection
  receive: (envelope: Envelope, frames: DeliveryFrames) => WriteOutcome | 'skipped' | 'unencodable'
}

/**
 * The connections of one instance, by id, by user and by when their token
 * expires. Lookups are O(1); a user's set exists only while the user has
 * connections, and `interest` hears of each set's birth and death (the
 * backplane subscribes by it).
 */
export class Registry {
  readonly #byId = new Map<string, Connection>()
  readonly #byUser = new Map<string, Set<Connection>>()
  readonly #interest: UserInterest
  readonly #byChannel = new Map<string, Set<ChannelSubscriber>>()
  #subscriptions = 0
  readonly #expiry = new ExpiryWheel<Connection>()

  constructor (interest: UserInterest) {
    this.#interest = interest
  }

  get size (): number {
    return this.#byId.size
  }

  get userCount (): number {
    return this.#byUser.size
  }

  add (connection: Connection): void {
    this.#byId.set(connection.id, connection)
    this.#expiry.add(connection)
    const own = this.#byUser.get(connection.userId)
    if (own === undefined) {
      this.#byUser.set(connection.userId, new Set([connection]))
      this.#interest.watchUser(connection.userId)
    } else {
      own.add(connection)
    }
  }

  /** Removes a connection; returns false when it was not registered. */
  remove (connection: Connection): boolean {
    if (!this.#byId.delete(connection.id)) return false
    this.#expiry.remove(connection)
    const own = this.#byUser.get(connection.userId)
    if (own !== undefined) {
      own.delete(connection)
      if (own.size === 0) {
        this.#byUser.delete(connection.userId)
        this.#interest.unwatchUser(connection.userId)
      }
    }
    return true
  }

  get (id: string): Connection | undefined {
    return this.#byId.get(id)
  }

  ofUser (userId: string): ReadonlySet<Connection> {
    return this.#byUser.get(userId) ?? NONE
  }

  countOf (userId: string): number {
    return this.#byUser.get(userId)?.size ?? 0
  }

  /** Moves a registered connection's deadline (a refreshed token). */
  reschedule (connection: Connection, expiresAt: number): void {
    const registered = this.#byId.get(connection.id) === connection
    if (registered) this.#expiry.remove(connection)
    connection.expiresAt = expiresAt
    if (registered) this.#expiry.add(connection)
  }

  get subscriptionCount (): number {
    return this.#subscriptions
  }

  get channelCount (): number {
    return this.#byChannel.size
  }

  subscribe (channel: string, subscriber: ChannelSubscriber): void {
    const subscribers = this.#byChannel.get(channel)
    this.#subscriptions++
    if (subscribers === undefined) {
      this.#byChannel.set(channel, new Set([subscriber]))
      this.#interest.watchChannel(channel)
    } else {
      subscribers.add(subscriber)
    }
  }

  unsubscribe (channel: string, subscriber: ChannelSubscriber): void {
    const subscribers = this.#byChannel.get(channel)
    if (subscribers === undefined || !subscribers.delete(subscriber)) return
    this.#subscriptions--
    if (subscribers.size === 0) {
      this.#byChannel.delete(channel)
      this.#interest.unwatchChannel(channel)
    }
  }

  /** Each channel with a subscriber on this instance, and how many it has. */
  * channelSizes (): IterableIterator<[string, number]> {
    for (const [channel, subscribers] of this.#byChannel) yield [channel, subscribers.size]
  }

  subscribersOf (channel: string): ReadonlySet<ChannelSubscriber> {
    return this.#byChannel.get(channel) ?? NO_SUBSCRIBERS
  }

  /** Connections whose token expired by `now`; they leave the expiry index (not the registry). */
  expired (now: number): Connection[] {
    return this.#expiry.sweep(now)
  }

  values (): IterableIterator<Connection> {
    return this.#byId.values()
  }
}
