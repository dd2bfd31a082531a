/** Something with frames waiting to be written. */
export interface Flushable {
  flush: () => void
}

/**
 * Writes queued frames to sockets, a slice of connections per event-loop
 * turn. Broadcasts only queue frames on their connections and mark them
 * dirty; a lone message waits at most one turn. While a big fan-out is still
 * being written, later messages join the queues of the connections not yet
 * reached, so each write carries more frames the further behind the writer
 * is: syscalls grow with connections, not with messages. Between slices the
 * loop serves HTTP, pings and new connections.
 */
export class Flusher {
  readonly #sliceSize: number
  #dirty: Flushable[] = []
  #next = 0
  #scheduled = false
  readonly #run = (): void => { this.#flushSlice() }

  constructor (sliceSize: number) {
    this.#sliceSize = sliceSize
  }

  /** A connection's queue went from empty to not empty. */
  mark (connection: Flushable): void {
    this.#dirty.push(connection)
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(this.#run)
    }
  }

  /** Writes everything now (before closing connections on shutdown). */
  flushAll (): void {
    while (this.#next < this.#dirty.length) this.#flushOne()
    this.#reset()
  }

  #flushSlice (): void {
    const end = Math.min(this.#next + this.#sliceSize, this.#dirty.length)
    while (this.#next < end) this.#flushOne()
    if (this.#next < this.#dirty.length) {
      setImmediate(this.#run)
      return
    }
    this.#reset()
  }

  #flushOne (): void {
    const connection = this.#dirty[this.#next] as Flushable
    this.#dirty[this.#next++] = undefined as unknown as Flushable // let it go as soon as it is written
    connection.flush()
  }

  #reset (): void {
    this.#dirty = []
    this.#next = 0
    this.#scheduled = false
  }
}
