import { randomUUID } from 'node:crypto'
import { ExpiryWheel } from '../core/expiry.js'
import type { ClientInfo, HistoryLimits, HistoryPage, HistoryQuery, Publication, StreamPosition } from './types.js'

/**
 * A new stream's epoch. base64url, so that it never holds a quote or a
 * backslash: the Redis store splices it into JSON text as is.
 */
export function newEpoch (): string {
  // randomUUID draws from a pool Node refills in batches: the Redis store
  // offers a fresh candidate with every call (the script keeps it only for
  // a new stream), so this must cost little. 48 random bits, hex.
  return randomUUID().slice(24)
}

/** Largest offset kept exact: a JS number, and a Lua number in the Redis scripts, are doubles. */
export const MAX_OFFSET = 2 ** 53

/** Throws on a query no store can answer: limit and offset are whole numbers. */
export function checkQuery (query: HistoryQuery): void {
  if (!Number.isSafeInteger(query.limit)) throw new TypeError(`history limit must be an integer, got ${query.limit}`)
  const offset = query.since?.offset
  if (offset !== undefined && !(Number.isInteger(offset) && Math.abs(offset) <= MAX_OFFSET)) {
    throw new TypeError(`history since.offset must be an integer up to 2^53, got ${offset}`)
  }
}

/**
 * The last publications, oldest first, in an array that grows to `capacity`
 * and then wraps: no copying per append, and no room held for publications
 * a quiet channel never had.
 */
class Ring {
  #items: Publication[] = []
  /** Index of the oldest, once the array is full. */
  #start = 0
  #capacity = 0

  get length (): number {
    return this.#items.length
  }

  push (publication: Publication, capacity: number): void {
    if (capacity !== this.#capacity) this.#resize(capacity)
    if (this.#items.length < capacity) {
      this.#items.push(publication)
    } else {
      this.#items[this.#start] = publication
      this.#start = (this.#start + 1) % capacity
    }
  }

  /** The `index`-th publication from the oldest. */
  at (index: number): Publication {
    return this.#items[(this.#start + index) % this.#items.length]
  }

  clear (): void {
    this.#items = []
    this.#start = 0
  }

  // A namespace's size changed: keep the newest that fit, unwrapped.
  #resize (capacity: number): void {
    const ordered = [...this.#items.slice(this.#start), ...this.#items.slice(0, this.#start)]
    this.#items = ordered.slice(Math.max(0, ordered.length - capacity))
    this.#start = 0
    this.#capacity = capacity
  }
}

/** One of a stream's two deadlines, as the expiry wheel holds it. */
interface Deadline {
  readonly stream: Stream
  expiresAt: number
}

class Stream {
  top = 0
  readonly publications = new Ring()
  /** When the publications go (Infinity: there are none). */
  readonly publicationsExpire: Deadline = { stream: this, expiresAt: Infinity }
  /** When the stream itself goes: epoch and top offset. */
  readonly metaExpire: Deadline

  constructor (readonly channel: string, readonly epoch: string, metaExpiresAt: number) {
    this.metaExpire = { stream: this, expiresAt: metaExpiresAt }
  }
}

/**
 * Channel history in this process: per channel an epoch, the top offset and
 * the last `limits.size` publications, with Centrifugo's semantics (which the
 * Redis store shares):
 * - a channel never seen, or whose stream expired, gets a new epoch on first
 *   touch (append, read or position), so a reader always learns an epoch and
 *   a client holding an older one can tell its stream was lost;
 * - publications expire `ttl` ms after the channel's last append, all
 *   together; epoch and top offset `metaTtl` ms after it (or after the touch
 *   that created them).
 *
 * Deadlines are checked on every call, so what a caller sees never depends on
 * when `sweep` last ran; `sweep` only frees the memory, touching the channels
 * due and no others.
 */
export class MemoryHistory {
  readonly #streams = new Map<string, Stream>()
  readonly #wheel: ExpiryWheel<Deadline>

  /** `now`: the clock the first sweep starts from (deadlines before it are swept at the first sweep). */
  constructor (now = Date.now()) {
    this.#wheel = new ExpiryWheel(now)
  }

  /** Channels held (whose stream may have expired since the last sweep). */
  get size (): number {
    return this.#streams.size
  }

  /** Appends a publication; returns its position (offset: the previous top + 1). */
  append (channel: string, data: string | Buffer, info: ClientInfo | undefined, limits: HistoryLimits, now = Date.now()): StreamPosition {
    const stream = this.#touch(channel, limits, now)
    const offset = ++stream.top
    stream.publications.push(info === undefined ? { offset, data } : { offset, data, info }, limits.size)
    this.#schedule(stream.publicationsExpire, now + limits.ttl)
    this.#schedule(stream.metaExpire, now + limits.metaTtl)
    return { offset, epoch: stream.epoch }
  }

  read (channel: string, query: HistoryQuery, limits: HistoryLimits, now = Date.now()): HistoryPage {
    checkQuery(query)
    const stream = this.#touch(channel, limits, now)
    return { position: { offset: stream.top, epoch: stream.epoch }, publications: select(stream, query) }
  }

  position (channel: string, limits: HistoryLimits, now = Date.now()): StreamPosition {
    const stream = this.#touch(channel, limits, now)
    return { offset: stream.top, epoch: stream.epoch }
  }

  /** Drops the channel's publications; its epoch and top offset stay, so clients see they cannot recover. */
  remove (channel: string): void {
    const stream = this.#streams.get(channel)
    if (stream === undefined) return
    stream.publications.clear()
    this.#schedule(stream.publicationsExpire, Infinity)
  }

  /** Forgets what expired by `now`. */
  sweep (now: number): void {
    for (const deadline of this.#wheel.sweep(now)) {
      const stream = deadline.stream
      if (deadline === stream.metaExpire) {
        this.#drop(stream)
      } else {
        stream.publications.clear()
        deadline.expiresAt = Infinity
      }
    }
  }

  /** The channel's live stream, created when there is none; expired publications are gone. */
  #touch (channel: string, limits: HistoryLimits, now: number): Stream {
    let stream = this.#streams.get(channel)
    if (stream !== undefined && stream.metaExpire.expiresAt <= now) {
      this.#drop(stream)
      stream = undefined
    }
    if (stream === undefined) {
      const created = new Stream(channel, newEpoch(), now + limits.metaTtl)
      this.#wheel.add(created.metaExpire)
      this.#streams.set(channel, created)
      return created
    }
    if (stream.publicationsExpire.expiresAt <= now) {
      stream.publications.clear()
      this.#schedule(stream.publicationsExpire, Infinity)
    }
    return stream
  }

  #drop (stream: Stream): void {
    this.#wheel.remove(stream.metaExpire)
    this.#wheel.remove(stream.publicationsExpire)
    this.#streams.delete(stream.channel)
  }

  // The wheel finds an item by its deadline: take it out before changing that.
  #schedule (deadline: Deadline, expiresAt: number): void {
    this.#wheel.remove(deadline)
    deadline.expiresAt = expiresAt
    this.#wheel.add(deadline)
  }
}

/** The publications a query asks for; offsets in a stream are consecutive, so this is index arithmetic. */
function select (stream: Stream, query: HistoryQuery): Publication[] {
  const { limit, since, reverse = false } = query
  if (limit === 0) return []
  if (since !== undefined && since.epoch !== '' && since.epoch !== stream.epoch) return []
  const ring = stream.publications
  const oldest = stream.top - ring.length + 1
  // The offsets wanted, [first, last]; reverse with since means before it.
  let first = oldest
  let last = stream.top
  if (since !== undefined) {
    if (reverse) last = Math.min(last, since.offset - 1)
    else first = Math.max(first, since.offset + 1)
  }
  const available = last - first + 1
  if (available <= 0) return []
  const count = limit > 0 ? Math.min(limit, available) : available
  const publications: Publication[] = []
  for (let i = 0; i < count; i++) publications.push(ring.at(reverse ? last - i - oldest : first + i - oldest))
  return publications
}
