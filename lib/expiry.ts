/** Anything with a deadline in ms since the epoch (Infinity: never). */
export interface Expiring {
  readonly expiresAt: number
}

/**
 * Deadlines by whole second, for one shared timer instead of a timer per
 * connection: adding and removing are O(1), and a sweep touches only the
 * seconds that have passed since the last one and what expired in them.
 */
export class ExpiryWheel<T extends Expiring> {
  readonly #buckets = new Map<number, Set<T>>()
  /** The first second not yet swept. */
  #next: number

  constructor (now = Date.now()) {
    this.#next = secondOf(now)
  }

  get size (): number {
    let size = 0
    for (const bucket of this.#buckets.values()) size += bucket.size
    return size
  }

  add (item: T): void {
    if (item.expiresAt === Infinity) return
    // A deadline already swept past goes into the next sweep.
    const second = Math.max(secondOf(item.expiresAt), this.#next)
    const bucket = this.#buckets.get(second)
    if (bucket === undefined) this.#buckets.set(second, new Set([item]))
    else bucket.add(item)
  }

  remove (item: T): void {
    if (item.expiresAt === Infinity) return
    // The bucket `add` chose, unless a sweep has since taken the item (then
    // it is in no bucket and this finds nothing to delete).
    const second = Math.max(secondOf(item.expiresAt), this.#next)
    const bucket = this.#buckets.get(second)
    if (bucket?.delete(item) === true && bucket.size === 0) this.#buckets.delete(second)
  }

  /** Removes and returns everything whose deadline has passed by `now`. */
  sweep (now: number): T[] {
    const last = secondOf(now) - 1 // a deadline inside the current second is not due yet
    const expired: T[] = []
    if (last < this.#next) return expired
    // After a long pause (a suspended machine) walking every second would be
    // slower than walking the buckets.
    if (last - this.#next > this.#buckets.size) {
      for (const [second, bucket] of this.#buckets) {
        if (second > last) continue
        this.#buckets.delete(second)
        for (const item of bucket) expired.push(item)
      }
    } else {
      for (let second = this.#next; second <= last; second++) {
        const bucket = this.#buckets.get(second)
        if (bucket === undefined) continue
        this.#buckets.delete(second)
        for (const item of bucket) expired.push(item)
      }
    }
    this.#next = last + 1
    return expired
  }
}

// A deadline at 12.3 s is due once the clock reaches 13 s: bucket 12 is swept
// when second 12 has wholly passed, so nobody is cut before its deadline.
function secondOf (ms: number): number {
  return Math.floor(ms / 1000)
}
