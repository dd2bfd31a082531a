import type { Connection } from './connection.js'
import { ExpiryWheel } from './expiry.js'

const NONE: ReadonlySet<Connection> = new Set()

/** Told when a user's first connection arrives and when their last one leaves. */
export interface UserInterest {
  watchUser: (userId: string) => void
  unwatchUser: (userId: string) => void
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

  /** Connections whose token expired by `now`; they leave the expiry index (not the registry). */
  expired (now: number): Connection[] {
    return this.#expiry.sweep(now)
  }

  values (): IterableIterator<Connection> {
    return this.#byId.values()
  }
}
