import { spawn } from 'node:child_process'
import { once } from 'node:events'
import type { Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import type { WebSocket } from 'ws'
import { build, closed, connect, messages, rejectedUpgrade, token, until } from './helpers.js'

const tcp = (ws: WebSocket): Socket => (ws as unknown as { _socket: Socket })._socket

t.test('on close every client gets 1001 after every message accepted before it', async (t) => {
  const { app, wsUrl } = await build(t)
  const clients = await Promise.all([connect(t, wsUrl, token({ sub: 'a' })), connect(t, wsUrl, token({ sub: 'b' }))])
  const big = 'x'.repeat(64 * 1024) // big enough to still be queued when close starts
  const received = clients.map(async (ws) => await messages(ws, 50))
  const closings = clients.map(closed)
  for (let i = 0; i < 50; i++) await app.fanout.broadcast({ i, big })
  await app.close()
  for (const [index, batch] of (await Promise.all(received)).entries()) {
    t.same(batch.map((m) => (m.data as { i: number }).i), Array.from({ length: 50 }, (_, i) => i), `client ${index} got all 50, in order`)
  }
  for (const closing of closings) t.same(await closing, { code: 1001, reason: 'server shutting down' })
})

t.test('while closing, new upgrades are refused with 503; a client that never answers is terminated at closeTimeout', async (t) => {
  const closeTimeout = 500
  const { app, wsUrl } = await build(t, { closeTimeout })
  const stuck = await connect(t, wsUrl)
  tcp(stuck).pause() // never reads the close frame, so never answers it

  const started = Date.now()
  const closing = app.close()
  await until(() => app.fanout.size === 1 && (app.websocketServer.clients.values().next().value?.readyState === 2), 'the closing handshake to start')
  const refused = await rejectedUpgrade(`${wsUrl}?token=${token()}`)
  t.equal(refused.status, 503, 'a new upgrade during shutdown gets 503')

  await closing
  const elapsed = Date.now() - started
  t.ok(elapsed >= closeTimeout - 20, `waited for the handshake (${elapsed} ms)`)
  t.ok(elapsed < closeTimeout + 2000, `then terminated it (${elapsed} ms)`)
  t.equal(app.fanout.size, 0)
})

t.test('with return503OnClosing off, upgrades during shutdown get 503 FST_FANOUT_SHUTTING_DOWN on both endpoints, not 426', async (t) => {
  // @fastify/websocket stops taking upgrades once close begins: the upgrade
  // request then reaches the route as a plain GET, which must not be told to upgrade.
  const { app, url, wsUrl } = await build(t, { closeTimeout: 2000, centrifuge: true }, { return503OnClosing: false })
  const stuck = await connect(t, wsUrl)
  tcp(stuck).pause()
  const closing = app.close()
  await until(() => app.websocketServer.clients.values().next().value?.readyState === 2, 'the closing handshake to start')
  for (const endpoint of [`${wsUrl}?token=${token()}`, `${url.replace('http', 'ws')}/connection/websocket`]) {
    const refused = await rejectedUpgrade(endpoint)
    t.equal(refused.status, 503, endpoint)
    t.equal(refused.body.code, 'FST_FANOUT_SHUTTING_DOWN')
  }
  stuck.terminate()
  await closing
})

t.test('close with no clients is immediate', async (t) => {
  const { app } = await build(t)
  const started = Date.now()
  await app.close()
  t.ok(Date.now() - started < 1000)
})

t.test('a process that closes its app exits on its own: nothing outlives close', async (t) => {
  const fixture = fileURLToPath(new URL('./fixtures/close-and-exit.ts', import.meta.url))
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], { stdio: ['ignore', 'pipe', 'inherit'] })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
  const [code, signal] = await once(child, 'exit') as [number | null, string | null]
  clearTimeout(timer)
  t.equal(signal, null, 'it was not killed: it exited')
  t.equal(code, 0)
  t.match(output, 'closed 1001')
})
