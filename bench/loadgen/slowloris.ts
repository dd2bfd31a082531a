// One slow-request attacker process (bench/slowloris.ts): from source
// addresses of its own (127.0.0.x, one per kind of attack), opens connections at a fixed rate to each target and
// never finishes their requests, trickling a few bytes now and then; records
// how long the server holds each one and what it answered. Everything stops
// at the end of the window: sockets still held then are counted as held for
// at least that long.
import { connect, type Socket } from 'node:net'

export type AttackKind = 'upgrade_headers' | 'post_no_token' | 'post_token_trickle'

export const ATTACK_KINDS: AttackKind[] = ['upgrade_headers', 'post_no_token', 'post_token_trickle']

/** Kind k from attacker i comes from 127.0.0.<20 + 10k + i>: the server tells kinds apart by address. */
export function sourceAddress (kind: AttackKind, attacker: number): string {
  return `127.0.0.${20 + 10 * ATTACK_KINDS.indexOf(kind) + attacker}`
}

export interface AttackConfig {
  targets: Array<{ name: string, port: number }>
  /** this attacker's number, 0-9 */
  attacker: number
  /** connections per kind per target */
  counts: Record<AttackKind, number>
  /** new connections per second per target */
  rate: number
  /** ms between trickled bytes on every open connection */
  trickleMs: number
  /** ms from start to stop */
  windowMs: number
  serviceToken: string
}

export interface KindReport {
  attempted: number
  connected: number
  failed_to_connect: number
  /** closed by the server before the window ended */
  closed_by_server: number
  /** still held when the window ended */
  held_to_window_end: number
  /** the server's answer (status code) on each connection, closed or still held; 'none' when it sent none */
  answers: Record<string, number>
  /** ms each connected socket was held (lower bounds for those held to the window's end) */
  held_ms: number[]
}

interface Attack {
  kind: AttackKind
  report: KindReport
  socket: Socket
  openedAt: number
  answer?: string
  done: boolean
}

const TRICKLE: Record<AttackKind, string> = { upgrade_headers: 'x-slow: 1\r\n', post_no_token: 'x', post_token_trickle: 'x' }

function firstBytes (kind: AttackKind, port: number, serviceToken: string): string {
  const host = `Host: 127.0.0.1:${port}\r\n`
  if (kind === 'upgrade_headers') {
    // An upgrade whose headers never end (a browser-like start, then a header line now and then).
    return `GET /ws HTTP/1.1\r\n${host}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n`
  }
  const auth = kind === 'post_token_trickle' ? `authorization: Bearer ${serviceToken}\r\n` : ''
  return `POST /broadcast HTTP/1.1\r\n${host}${auth}content-type: application/json\r\ncontent-length: 1000000\r\n\r\n{"data":"`
}

const reports = new Map<string, Record<AttackKind, KindReport>>()
const open = new Set<Attack>()

function emptyReport (): KindReport {
  return { attempted: 0, connected: 0, failed_to_connect: 0, closed_by_server: 0, held_to_window_end: 0, answers: {}, held_ms: [] }
}

function launch (config: AttackConfig, target: { name: string, port: number }, kind: AttackKind): void {
  const report = (reports.get(target.name) as Record<AttackKind, KindReport>)[kind]
  report.attempted++
  const socket = connect({ host: '127.0.0.1', port: target.port, localAddress: sourceAddress(kind, config.attacker) })
  const attack: Attack = { kind, report, socket, openedAt: 0, done: false }
  let connected = false
  socket.setEncoding('latin1')
  socket.on('connect', () => {
    connected = true
    report.connected++
    attack.openedAt = Date.now()
    open.add(attack)
    socket.write(firstBytes(kind, target.port, config.serviceToken))
  })
  socket.on('data', (chunk: string) => {
    attack.answer ??= /^HTTP\/1\.1 (\d{3})/.exec(chunk)?.[1] ?? 'other'
  })
  const ended = (): void => {
    if (attack.done) return
    attack.done = true
    open.delete(attack)
    if (!connected) {
      report.failed_to_connect++
      return
    }
    report.closed_by_server++
    report.held_ms.push(Date.now() - attack.openedAt)
    count(attack)
    socket.destroy()
  }
  socket.on('end', ended)
  socket.on('error', ended) // a reset, or a connect refused
  socket.on('close', ended)
}

function count (attack: Attack): void {
  const answer = attack.answer ?? 'none'
  attack.report.answers[answer] = (attack.report.answers[answer] ?? 0) + 1
}

function start (config: AttackConfig): void {
  for (const target of config.targets) {
    reports.set(target.name, { upgrade_headers: emptyReport(), post_no_token: emptyReport(), post_token_trickle: emptyReport() })
  }
  // Interleave the kinds so each is spread over the whole ramp.
  const plan: AttackKind[] = []
  const left = { ...config.counts }
  while (Object.values(left).some((n) => n > 0)) {
    for (const kind of Object.keys(left) as AttackKind[]) {
      if (left[kind] > 0) { plan.push(kind); left[kind]-- }
    }
  }
  const started = Date.now()
  let launched = 0
  const ramp = setInterval(() => {
    // Offer by wall time: late ticks catch up.
    const due = Math.min(plan.length, Math.floor(((Date.now() - started) / 1000) * config.rate))
    for (; launched < due; launched++) {
      for (const target of config.targets) launch(config, target, plan[launched] as AttackKind)
    }
    if (launched >= plan.length) clearInterval(ramp)
  }, 10)
  const trickle = setInterval(() => {
    for (const attack of open) if (attack.socket.writable) attack.socket.write(TRICKLE[attack.kind])
  }, config.trickleMs)
  setTimeout(() => {
    clearInterval(ramp)
    clearInterval(trickle)
    stopAll()
  }, config.windowMs)
}

// Sockets still open at the end were held at least until now.
function stopAll (): void {
  const now = Date.now()
  for (const attack of open) {
    attack.done = true
    attack.report.held_to_window_end++
    attack.report.held_ms.push(now - attack.openedAt)
    count(attack)
    attack.socket.destroy()
  }
  open.clear()
  process.send?.({ reports: Object.fromEntries(reports) })
}

process.on('message', (message: { cmd: string, config?: AttackConfig }) => {
  if (message.cmd === 'start' && message.config !== undefined) start(message.config)
  else if (message.cmd === 'exit') process.exit(0)
})
process.send?.({ ready: true })
