import { readFileSync } from 'node:fs'
import type { Cluster, Redis } from 'ioredis'
import { checkPresenceTtl } from '../channels/presence.js'
import type { ClientInfo, PresenceStats, PresenceStore } from '../channels/types.js'
import { slotTag } from './slot.js'

type Keys = [info: string, expiry: string, users: string]

/** The scripts, as `defineCommand` adds them to the client. */
interface PresenceCommands {
  fanoutPresenceAdd: (...args: [...Keys, clientId: string, entry: string, ttl: number]) => Promise<unknown>
  fanoutPresenceRemove: (...args: [...Keys, clientId: string]) => Promise<unknown>
  fanoutPresenceGet: (...args: Keys) => Promise<string[]>
  fanoutPresenceStats: (...args: Keys) => Promise<[number, number]>
}

const SCRIPTS = {
  fanoutPresenceAdd: 'presence-add.lua',
  fanoutPresenceRemove: 'presence-remove.lua',
  fanoutPresenceGet: 'presence-get.lua',
  fanoutPresenceStats: 'presence-stats.lua'
} as const

function lua (file: string): string {
  return readFileSync(new URL(`./${file}`, import.meta.url), 'utf8')
}

/**
 * Presence shared by every instance through Redis, kept per channel in three
 * keys with one hash tag (one Cluster slot):
 * - `presence:{channel}`: hash, client id → the client's info as JSON, a
 *   newline, then its user id (so that scripts find the user without
 *   decoding JSON);
 * - `presence-exp:{channel}`: sorted set, client id → deadline in ms;
 * - `presence-users:{channel}`: hash, user id → number of its entries.
 *
 * Each operation is one Lua script, so the three keys always agree. Every
 * script but `remove` first drops the entries that are due, by Redis's own
 * clock (one clock for every instance: deadlines written by an instance
 * whose clock is off still mean the same thing); each entry is dropped once,
 * so that work is O(log n) per entry over its life. An instance that dies
 * stops refreshing its entries: they are dropped by the next script to
 * touch the channel, and the keys themselves expire (PEXPIRE, as long as the
 * longest-lived entry) when nothing does.
 *
 * Costs, n the channel's entries: add and remove O(log n), stats O(1), get
 * O(n); plus the due entries dropped, O(log n) each.
 */
export class RedisPresence implements PresenceStore {
  readonly #client: (Redis | Cluster) & PresenceCommands
  readonly #prefix: string

  /**
   * Adds the presence scripts to `client` as `fanoutPresence*` commands
   * (ioredis runs them by EVALSHA and loads them when Redis lacks them).
   * @param prefix Prepended to every key, as the backplane's channels are.
   */
  constructor (client: Redis | Cluster, prefix: string) {
    const common = lua('presence-common.lua')
    for (const [name, file] of Object.entries(SCRIPTS)) {
      client.defineCommand(name, { numberOfKeys: 3, lua: `${common}\n${lua(file)}` })
    }
    this.#client = client as (Redis | Cluster) & PresenceCommands
    this.#prefix = prefix
  }

  async add (channel: string, clientId: string, info: ClientInfo, ttl: number): Promise<void> {
    checkPresenceTtl(ttl)
    // PEXPIRE and scores take whole milliseconds; rounding up never expires an entry early.
    await this.#client.fanoutPresenceAdd(...this.#keys(channel), clientId, `${JSON.stringify(info)}\n${info.user}`, Math.ceil(ttl))
  }

  async remove (channel: string, clientId: string): Promise<void> {
    await this.#client.fanoutPresenceRemove(...this.#keys(channel), clientId)
  }

  async get (channel: string): Promise<Record<string, ClientInfo>> {
    const flat = await this.#client.fanoutPresenceGet(...this.#keys(channel))
    const entries: Array<[string, ClientInfo]> = []
    for (let i = 0; i < flat.length; i += 2) {
      const entry = flat[i + 1]
      entries.push([flat[i], JSON.parse(entry.slice(0, entry.indexOf('\n')))])
    }
    // fromEntries defines own properties: a client id such as `__proto__` stays data.
    return Object.fromEntries(entries)
  }

  async stats (channel: string): Promise<PresenceStats> {
    const [numClients, numUsers] = await this.#client.fanoutPresenceStats(...this.#keys(channel))
    return { numClients, numUsers }
  }

  #keys (channel: string): Keys {
    const tag = slotTag(channel)
    return [`${this.#prefix}presence:${tag}`, `${this.#prefix}presence-exp:${tag}`, `${this.#prefix}presence-users:${tag}`]
  }
}
