import { once } from 'node:events'
import { connect as tcp, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { WebSocket } from 'ws'
import { publicServerOptions } from '../example/http-options.js'
import { broadcast, build, connect, nextMessage, serviceToken, token } from './helpers.js'

// The same deadlines as example/http-options.ts, scaled down 20x so a test
// can wait them out.
const scaled = {
  requestTimeout: 1000,
  keepAliveTimeout: 250,
  connectionTimeout: 1500,
  http: { headersTimeout: 500, connectionsCheckingInterval: 100 }
}

interface Held {
  /** ms from the first byte sent to the server closing the socket */
  heldMs: number
  answer: string
}

/** Opens a raw connection, writes `first`, then `trickle` every 100 ms until the server closes it. */
async function hold (t: Test, url: string, first: string, trickle: string): Promise<Held> {
  const socket: Socket = tcp({ host: '127.0.0.1', port: Number(new URL(url).port) })
  t.teardown(() => socket.destroy())
  socket.on('error', () => {}) // the server may reset what it drops
  await once(socket, 'connect')
  let answer = ''
  socket.setEncoding('latin1')
  socket.on('data', (chunk: string) => { answer += chunk })
  const started = Date.now()
  socket.write(first)
  const timer = setInterval(() => { if (socket.writable) socket.write(trickle) }, 100)
  const safety = setTimeout(() => { socket.destroy() }, 10_000)
  // Not events.once: it rejects on the 'error' of a reset, which is expected here.
  await new Promise((resolve) => socket.once('close', resolve))
  clearInterval(timer)
  clearTimeout(safety)
  return { heldMs: Date.now() - started, answer }
}

t.test('the example\'s timeouts reach Node\'s HTTP server through Fastify', async (t) => {
  const app = Fastify(publicServerOptions)
  t.teardown(() => app.close())
  const server = app.server as typeof app.server & { connectionsCheckingInterval: number }
  t.equal(server.headersTimeout, 10_000)
  t.equal(server.requestTimeout, 20_000)
  t.equal(server.keepAliveTimeout, 5_000)
  t.equal(server.timeout, 30_000)
  t.equal(server.connectionsCheckingInterval, 2_000)
})

t.test('with these timeouts half-sent requests are dropped and open WebSockets are not', async (t) => {
  const { url, wsUrl } = await build(t, { heartbeatInterval: 0 }, scaled)
  const ws = await connect(t, wsUrl, token({ sub: 'idle' }))
  const openedAt = Date.now()

  const [upgrade, body, keepAlive] = await Promise.all([
    // Slowloris: an upgrade whose headers never end, a header line at a time.
    hold(t, url, `GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nauthorization: Bearer ${token()}\r\n`, 'x-more: 1\r\n'),
    // A valid broadcast token and a body that never ends.
    hold(t, url, `POST /broadcast HTTP/1.1\r\nHost: localhost\r\nauthorization: Bearer ${serviceToken()}\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n{"data":"`, 'x'),
    // One complete request, then an idle keep-alive connection.
    hold(t, url, 'GET /fanout/ready HTTP/1.1\r\nHost: localhost\r\n\r\n', '')
  ])
  t.ok(upgrade.heldMs >= 450 && upgrade.heldMs < 1000, `unfinished upgrade headers dropped after the header timeout (${upgrade.heldMs} ms)`)
  t.match(upgrade.answer, /^HTTP\/1.1 408 /, 'with 408')
  t.ok(body.heldMs >= 950 && body.heldMs < 1500, `a trickled body dropped after the request timeout (${body.heldMs} ms)`)
  t.match(body.answer, /^HTTP\/1.1 408 /)
  // Node waits a second longer than it advertises, so clients close first.
  t.ok(keepAlive.heldMs >= 1200 && keepAlive.heldMs < 2000, `an idle keep-alive connection closed (${keepAlive.heldMs} ms)`)
  t.match(keepAlive.answer, /^HTTP\/1.1 200 /)

  // Idle since it opened, twice as long as the longest deadline.
  await new Promise((resolve) => setTimeout(resolve, openedAt + 2 * scaled.connectionTimeout - Date.now()))
  t.equal(ws.readyState, WebSocket.OPEN, 'the idle WebSocket is still open')
  const arrival = nextMessage(ws)
  t.equal((await broadcast(url, { data: 'still here' })).status, 202)
  t.equal((await arrival).data, 'still here', 'and receives messages')
})
