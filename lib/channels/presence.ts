import { InvalidArgumentError } from '../errors.js'
import { ExpiryWheel } from '../core/expiry.js'
import type { ClientInfo, PresenceStats, PresenceStore } from './types.js'

/** One client's presence in one channel; replaced (not mutated) on refresh, so the wheel finds it by its deadline. */
interface Entry {
  readonly channel: Channel
  readonly clientId: string
  readonly info: ClientInfo
  readonly expiresAt: number
}

interface Channel {
  readonly name: string
  readonly entries: Map<string, Entry>
  /** Entries per user: its size is the distinct-user count, without a walk. */
  readonly users: Map<string, number>
}

/** Throws unless `ttl` is a usable lifetime: a positive, finite number of milliseconds. */
export function checkPresenceTtl (ttl: number): void {
  if (!(typeof ttl === 'number' && ttl > 0 && Number.isFinite(ttl))) {
    throw new InvalidArgumentError('ttl', `must be a positive, finite number of milliseconds, got ${String(ttl)}`)
  }
}

/**
 * Presence held by this instance alone. Every operation is O(1) but `get`
 * (O(entries of the channel)), plus O(1) per expired entry, dropped once
 * whichever call finds it due. Deadlines sit in one-second buckets that
 * `sweep` empties as they fall due, driven by the plugin's housekeeping
 * timer (this class has none). Reads sweep first, so an expired entry is
 * never seen even between ticks, and the work a read does there is work the
 * next tick would have done.
 */
export class MemoryPresence implements PresenceStore {
  readonly #channels = new Map<string, Channel>()
  readonly #wheel: ExpiryWheel<Entry>
  readonly #clock: () => number

  /** @param clock Milliseconds since the epoch; tests pass their own. */
  constructor (clock: () => number = Date.now) {
    this.#clock = clock
    this.#wheel = new ExpiryWheel(clock())
  }

  /** Channels with at least one entry not yet swept. */
  get size (): number {
    return this.#channels.size
  }

  async add (channel: string, clientId: string, info: ClientInfo, ttl: number): Promise<void> {
    checkPresenceTtl(ttl)
    let held = this.#channels.get(channel)
    if (held === undefined) {
      held = { name: channel, entries: new Map(), users: new Map() }
      this.#channels.set(channel, held)
    }
    const previous = held.entries.get(clientId)
    if (previous !== undefined) {
      this.#wheel.remove(previous)
      uncount(held, previous.info.user)
    }
    const entry: Entry = { channel: held, clientId, info, expiresAt: this.#clock() + ttl }
    held.entries.set(clientId, entry)
    held.users.set(info.user, (held.users.get(info.user) ?? 0) + 1)
    this.#wheel.add(entry)
  }

  async remove (channel: string, clientId: string): Promise<void> {
    const entry = this.#channels.get(channel)?.entries.get(clientId)
    if (entry === undefined) return
    this.#wheel.remove(entry)
    this.#drop(entry)
  }

  async get (channel: string): Promise<Record<string, ClientInfo>> {
    this.sweep(this.#clock())
    const held = this.#channels.get(channel)
    if (held === undefined) return {}
    // fromEntries defines own properties: a client id such as `__proto__` stays data.
    return Object.fromEntries(Array.from(held.entries, ([clientId, entry]) => [clientId, entry.info]))
  }

  async stats (channel: string): Promise<PresenceStats> {
    this.sweep(this.#clock())
    const held = this.#channels.get(channel)
    return { numClients: held?.entries.size ?? 0, numUsers: held?.users.size ?? 0 }
  }

  /** Drops every entry whose deadline has passed by `now`; touches nothing else. */
  sweep (now: number): void {
    for (const entry of this.#wheel.sweep(now)) this.#drop(entry)
  }

  // `entry` is the one its channel holds: a refresh or a remove takes the old entry off the wheel.
  #drop (entry: Entry): void {
    const held = entry.channel
    held.entries.delete(entry.clientId)
    uncount(held, entry.info.user)
    if (held.entries.size === 0) this.#channels.delete(held.name)
  }
}

function uncount (held: Channel, user: string): void {
  // Counted when its entry was added.
  const count = held.users.get(user) as number
  if (count === 1) held.users.delete(user)
  else held.users.set(user, count - 1)
}
