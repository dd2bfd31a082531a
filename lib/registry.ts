import type { Connection } from './connection.js'

const NONE: ReadonlySet<Connection> = new Set()

/**
 * The connections of one instance, by id and by user. Lookups are O(1);
 * a user's set exists only while the user has connections.
 */
export class Registry {
  readonly #byId = new Map<string, Connection>()
  readonly #byUser = new Map<string, Set<Connection>>()

  get size (): number {
    return this.#byId.size
  }

  get userCount (): number {
    return this.#byUser.size
  }

  add (connection: Connection): void {
    this.#byId.set(connection.id, connection)
    const own = this.#byUser.get(connection.userId)
    if (own === undefined) {
      this.#byUser.set(connection.userId, new Set([connection]))
    } else {
      own.add(connection)
    }
  }

  /** Removes a connection; returns false when it was not registered. */
  remove (connection: Connection): boolean {
    if (!this.#byId.delete(connection.id)) return false
    const own = this.#byUser.get(connection.userId)
    if (own !== undefined) {
      own.delete(connection)
      if (own.size === 0) this.#byUser.delete(connection.userId)
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

  values (): IterableIterator<Connection> {
    return this.#byId.values()
  }
}
