// The server under the slow-request attack of bench/slowloris.ts: fastify-fanout
// as example/server.ts runs it. PROFILE=example: the example's deadlines
// (example/http-options.ts) and refusals that close their connection (the
// plugin's default); PROFILE=baseline: Node's and Fastify's default
// deadlines, refused bodies read to the end (closeOnUnreadBody: false), as
// before the hardening. It reports its open files, and how long it held each
// attack connection (from accepting it to closing it), to the runner over IPC.
import { readdirSync } from 'node:fs'
import type { Socket } from 'node:net'
import Fastify from 'fastify'
import fanout from '../../lib/index.js'
import { publicServerOptions } from '../../example/http-options.js'

const example = process.env.PROFILE === 'example'
const app = Fastify(example ? publicServerOptions : {})
await app.register(fanout, { jwt: { secret: process.env.JWT_SECRET as string }, metrics: false, closeOnUnreadBody: example })
await app.listen({ port: 0, host: '127.0.0.1' })

/** Open file descriptors, or null when the process is out of them (it cannot even list them). */
function openFiles (): number | null {
  try {
    return readdirSync('/proc/self/fd').length - 1 // the listing's own
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EMFILE') return null
    throw err
  }
}

// Attackers connect from 127.0.0.<20 + 10k + i> for attack kind k (see
// bench/loadgen/slowloris.ts), so the server can tell the kinds apart.
const KINDS = ['upgrade_headers', 'post_no_token', 'post_token_trickle'] as const
const held = KINDS.map(() => ({ accepted: 0, closed: [] as number[], open: new Map<Socket, number>() }))
app.server.on('connection', (socket: Socket) => {
  const kind = held[Math.floor((Number(socket.remoteAddress?.split('.').pop()) - 20) / 10)]
  if (kind === undefined) return // the legitimate client, 127.0.0.1
  kind.accepted++
  kind.open.set(socket, Date.now())
  socket.once('close', () => {
    kind.closed.push(Date.now() - (kind.open.get(socket) as number))
    kind.open.delete(socket)
  })
})

/** Per attack kind: how long the server held each connection, in seconds; still open ones count until now. */
function heldReport (): Record<string, unknown> {
  const now = Date.now()
  return Object.fromEntries(KINDS.map((name, k) => {
    const { accepted, closed, open } = held[k] as typeof held[number]
    const all = [...closed, ...[...open.values()].map((at) => now - at)].sort((a, b) => a - b)
    const at = (q: number): number | null => all.length === 0 ? null : Math.round((all[Math.min(all.length - 1, Math.floor(q * all.length))] as number) / 100) / 10
    return [name, { accepted, closed: closed.length, still_open: open.size, held_s: { p50: at(0.5), p90: at(0.9), max: at(1) } }]
  }))
}

process.on('message', (message: { cmd: string }) => {
  if (message.cmd === 'files') process.send?.({ files: openFiles(), connections: app.fanout.size })
  else if (message.cmd === 'held') process.send?.({ held: heldReport() })
  else if (message.cmd === 'stop') {
    // Half-sent requests would hold close() until their deadlines (or forever).
    app.server.closeAllConnections()
    app.close().then(() => process.exit(0), () => process.exit(1))
  }
})
process.send?.({ ready: true, port: (app.server.address() as { port: number }).port })
