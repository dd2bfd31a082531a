// The server under the slow-request attack of bench/slowloris.ts: fastify-fanout
// as example/server.ts runs it. PROFILE=example: the example's deadlines
// (example/http-options.ts) and refusals that close their connection (the
// plugin's default); PROFILE=baseline: Node's and Fastify's default
// deadlines, refused bodies read to the end (closeOnUnreadBody: false), as
// before the hardening. It reports its open files to the runner over IPC.
import { readdirSync } from 'node:fs'
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

process.on('message', (message: { cmd: string }) => {
  if (message.cmd === 'files') process.send?.({ files: openFiles(), connections: app.fanout.size })
  else if (message.cmd === 'stop') {
    // Half-sent requests would hold close() until their deadlines (or forever).
    app.server.closeAllConnections()
    app.close().then(() => process.exit(0), () => process.exit(1))
  }
})
process.send?.({ ready: true, port: (app.server.address() as { port: number }).port })
