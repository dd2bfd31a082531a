// What every benchmark server shares: the IPC protocol with the runner and
// the broadcast loop, so that peers differ only in how they fan out.
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

export interface BroadcastCommand {
  cmd: 'broadcast'
  /** messages per second */
  rate: number
  seconds: number
  /** messages sent together in one turn (coalescing shows with bursts) */
  burst: number
  /** approximate message size in bytes */
  size: number
  /**
   * `random`: message sizes log-uniform from 50 bytes to 4 KiB and bursts of
   * 1 to twice `burst`, from a fixed seed so every peer gets the same traffic.
   */
  pattern?: 'fixed' | 'random'
  /** users the connections belong to (`u0` ... `u<users-1>`); random patterns target 20% of messages at one */
  users?: number
}

export type Command = BroadcastCommand | { cmd: 'memory' } | { cmd: 'stop' }

/** A server under test: how it sends one message to everyone, and how many it holds. */
export interface Peer {
  name: string
  port: number
  connections: () => number
  broadcast: (data: Message) => void
  /** Sends to every connection of one user, the way such a server would. */
  sendToUser: (user: string, data: Message) => void
  /** How many connections `user` has now (to know how many deliveries to expect). */
  userSize: (user: string) => number
  close: () => Promise<void>
}

export interface Message { t: number, seq: number, pad: string }

/** The user a connection declared: `?user=` in its upgrade URL. */
export function userOf (url: string | undefined): string {
  return new URL(url ?? '/', 'http://localhost').searchParams.get('user') ?? 'anonymous'
}

const now = (): number => performance.timeOrigin + performance.now()

export function serve (peer: Peer): void {
  process.on('message', (message: Command) => {
    if (message.cmd === 'memory') {
      gc()
      const usage = process.memoryUsage()
      process.send?.({ rss: usage.rss, heapUsed: usage.heapUsed, external: usage.external, connections: peer.connections() })
    } else if (message.cmd === 'broadcast') {
      run(peer, message).then((result) => process.send?.(result), (err: unknown) => { throw err })
    } else if (message.cmd === 'stop') {
      peer.close().then(() => process.exit(0), () => process.exit(1))
    }
  })
  // A restart as an orchestrator does it: close gracefully, then exit.
  process.once('SIGTERM', () => { peer.close().then(() => process.exit(0), () => process.exit(1)) })
  process.send?.({ ready: true, port: peer.port, name: peer.name })
}

/** A small deterministic PRNG (mulberry32), so random patterns repeat exactly. */
function prng (seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

async function run (peer: Peer, command: BroadcastCommand): Promise<Record<string, number>> {
  const random = prng(42)
  const pads = Array.from({ length: 64 }, () => 'x'.repeat(Math.max(0, Math.round(50 * (4096 / 50) ** random()) - 60)))
  const fixedPad = 'x'.repeat(Math.max(0, command.size - 60))
  const padFor = command.pattern === 'random' ? (seq: number): string => pads[seq % pads.length] as string : (): string => fixedPad
  let nextBurst = command.burst
  const targeted = command.pattern === 'random' && (command.users ?? 0) > 0
  let expected = 0 // deliveries the clients should count
  const tickMs = 10
  const total = Math.round(command.rate * command.seconds)
  let seq = 0
  // How long the server's event loop was blocked while it fanned out: what an
  // HTTP request or a new connection arriving meanwhile would wait.
  const loopDelay = monitorEventLoopDelay({ resolution: 5 })
  loopDelay.enable()
  const cpuBefore = process.cpuUsage()
  const started = now()
  // Bounded by wall time too: a server that cannot keep up sends fewer
  // messages instead of running on long after the window.
  const deadline = started + command.seconds * 1000
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      // Messages due by now, in whole bursts: a late tick catches up, so the
      // offered rate holds however busy the server is.
      const due = Math.min(total, Math.floor((command.rate * (now() - started)) / 1000))
      while (seq + nextBurst <= due && now() < deadline) {
        for (let i = 0; i < nextBurst; i++) {
          const data = { t: now(), seq, pad: padFor(seq++) }
          if (targeted && random() < 0.2) {
            const user = `u${Math.floor(random() * (command.users as number))}`
            expected += peer.userSize(user)
            peer.sendToUser(user, data)
          } else {
            expected += peer.connections()
            peer.broadcast(data)
          }
        }
        if (command.pattern === 'random') nextBurst = 1 + Math.floor(random() * 2 * command.burst)
      }
      if (seq >= total || now() >= deadline) {
        clearInterval(timer)
        resolve()
      }
    }, tickMs)
  })
  const sendingMs = now() - started
  // Let queued writes finish before reading the CPU bill.
  await new Promise((resolve) => setTimeout(resolve, 500))
  const cpu = process.cpuUsage(cpuBefore)
  loopDelay.disable()
  return {
    messages: seq,
    deliveries_expected: expected,
    connections: peer.connections(),
    cpu_user_us: cpu.user,
    cpu_system_us: cpu.system,
    elapsed_ms: now() - started,
    sending_ms: sendingMs,
    loop_delay_p99_ms: Math.round(loopDelay.percentile(99) / 1e4) / 100,
    loop_delay_max_ms: Math.round(loopDelay.max / 1e4) / 100
  }
}

/** Connections by user, as an app that sends to one user keeps them. */
export class ByUser<T> {
  readonly #map = new Map<string, Set<T>>()

  add (user: string, item: T): void {
    let own = this.#map.get(user)
    if (own === undefined) this.#map.set(user, own = new Set())
    own.add(item)
  }

  delete (user: string, item: T): void {
    const own = this.#map.get(user)
    own?.delete(item)
    if (own?.size === 0) this.#map.delete(user)
  }

  of (user: string): Iterable<T> {
    return this.#map.get(user) ?? []
  }

  size (user: string): number {
    return this.#map.get(user)?.size ?? 0
  }
}

/** Listens on a free loopback port; resolves with it. */
export async function listenLocally (server: { listen: (options: object) => unknown, once: (event: string, listener: () => void) => unknown, address: () => unknown }): Promise<number> {
  await new Promise<void>((resolve) => {
    server.once('listening', resolve)
    server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 })
  })
  return (server.address() as { port: number }).port
}
