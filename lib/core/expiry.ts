/** Anything with a deadline in ms since the epoch (Infinity: never). */
export interface Expiring {
  readonly expiresAt: number
}

/**
 * Deadlines by whole second, for one shared timer instead of a timer per
 * connection: adding and removing are O(1), and a sweep touches only the
 * seconds that have passed since the last one (and the current second's
 * bucket), so what it returns is exactly what is due, however often it runs.
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
    const second = this.#bucketOf(item)
    const bucket = this.#buckets.get(second)
    if (bucket === undefined) this.#buckets.set(second, new Set([item]))
    else bucket.add(item)
  }

  remove (item: T): void {
    if (item.expiresAt === Infinity) return
    // The bucket `add` chose, unless a sweep has since taken the item (then
    // it is in no bucket and this finds nothing to delete).
    const second = this.#bucketOf(item)
    const bucket = this.#buckets.get(second)
    if (bucket?.delete(item) === true && bucket.size === 0) this.#buckets.delete(second)
  }

  // A deadline in a second already swept goes into the current one.
  #bucketOf (item: T): number {
    return Math.max(secondOf(item.expiresAt), this.#next)
  }

  /** Removes and returns everything whose deadline has passed by `now`. */
  sweep (now: number): T[] {
    const current = secondOf(now)
    const expired: T[] = []
    if (current < this.#next) return expired
    // Whole seconds that have passed: everything in them is due. After a long
    // pause (a suspended machine) walking every second would be slower than
    // walking the buckets.
    if (current - this.#next > this.#buckets.size) {
      for (const [second, bucket] of this.#buckets) {
        if (second >= current) continue
        this.#buckets.delete(second)
        for (const item of bucket) expired.push(item)
      }
    } else {
      for (let second = this.#next; second < current; second++) {
        const bucket = this.#buckets.get(second)
        if (bucket === undefined) continue
        this.#buckets.delete(second)
        for (const item of bucket) expired.push(item)
      }
    }
    this.#next = current
    // The current second: only what is due by now.
    const bucket = this.#buckets.get(current)
    if (bucket !== undefined) {
      for (const item of bucket) {
        if (item.expiresAt > now) continue
        bucket.delete(item)
        expired.push(item)
      }
      if (bucket.size === 0) this.#buckets.delete(current)
    }
    return expired
  }
}

// A deadline at 12.3 s lives in bucket 12, until a sweep at 12.3 s or later.
function secondOf (ms: number): number {
  return Math.floor(ms / 1000)
}
