import type { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import type { WebSocket } from 'ws'
import type { FanoutConnection } from '../lib/index.js'
import { build, closed, connect, messages, sample, token } from './helpers.js'

const BOUND = 64 * 1024
const MESSAGE = 'x'.repeat(16 * 1024)
const MAX_MESSAGES = 4000 // far more than loopback's kernel buffers hold

/** The client's TCP socket: pausing it makes a client that stops reading. */
function tcp (ws: WebSocket): Socket {
  return (ws as unknown as { _socket: Socket })._socket
}

const turn = async (): Promise<void> => await new Promise((resolve) => setImmediate(resolve))

/** A client of user `slow` that has stopped reading, and its server-side connection. */
async function stalledClient (t: Test, app: FastifyInstance, wsUrl: string): Promise<{ slow: WebSocket, slowConnection: FanoutConnection }> {
  const slow = await connect(t, wsUrl, token({ sub: 'slow' }))
  const [slowConnection] = [...app.fanout.connectionsOf('slow')]
  if (slowConnection === undefined) throw new Error('slow client not registered')
  tcp(slow).pause()
  return { slow, slowConnection }
}

t.test("a client that stops reading is closed with 4008 and bounds the server's memory; others are not slowed", async (t) => {
  const { app, url, wsUrl } = await build(t, { maxBufferedBytes: BOUND })
  const fast = await connect(t, wsUrl, token({ sub: 'fast' }))
  const { slow, slowConnection } = await stalledClient(t, app, wsUrl)

  let sent = 0
  let maxBuffered = 0
  let dropped = 0
  while (dropped === 0 && sent < MAX_MESSAGES) {
    dropped = (await app.fanout.broadcast(MESSAGE)).dropped ?? 0
    sent++
    maxBuffered = Math.max(maxBuffered, slowConnection.bufferedAmount)
    await turn() // let the fast client read, as a real one would
  }
  t.ok(sent < MAX_MESSAGES, `the slow consumer was detected after ${sent} messages`)
  t.ok(maxBuffered <= BOUND + MESSAGE.length + 64, `buffered bytes stayed bounded (max ${maxBuffered})`)

  const received = await messages(fast, sent)
  t.equal(received.length, sent, 'the fast client got every message')

  const closing = closed(slow)
  tcp(slow).resume()
  const { code, reason } = await closing
  t.equal(code, 4008)
  t.equal(reason, 'slow consumer')

  const metrics = await (await fetch(`${url}/metrics`)).text()
  t.equal(sample(metrics, 'fanout_messages_dropped_total', 'reason="slow_consumer"'), 1)
  t.equal(sample(metrics, 'fanout_disconnects_total', 'code="4008"'), 1)
})

t.test("with slowConsumer: 'drop' the connection stays and what does not fit is dropped and counted", async (t) => {
  const { app, url, wsUrl } = await build(t, { maxBufferedBytes: BOUND, slowConsumer: 'drop' })
  const { slow, slowConnection } = await stalledClient(t, app, wsUrl)

  let dropped = 0
  let maxBuffered = 0
  let sent = 0
  for (; sent < MAX_MESSAGES && dropped < 20; sent++) {
    dropped += (await app.fanout.broadcast(MESSAGE)).dropped ?? 0
    maxBuffered = Math.max(maxBuffered, slowConnection.bufferedAmount)
    await turn()
  }
  t.equal(dropped, 20, `messages were dropped once the client fell behind (after ${sent - 20})`)
  t.ok(maxBuffered <= BOUND + MESSAGE.length + 64, `buffered bytes stayed bounded (max ${maxBuffered})`)
  t.equal(app.fanout.connectionsOf('slow').size, 1, 'the connection is kept')

  const metrics = await (await fetch(`${url}/metrics`)).text()
  t.equal(sample(metrics, 'fanout_messages_dropped_total', 'reason="slow_consumer"'), 20)

  // Once it reads again it gets what was buffered, then new messages.
  tcp(slow).resume()
  await messages(slow, sent - 20)
  const next = messages(slow, 1)
  await app.fanout.broadcast('after')
  t.equal((await next)[0]?.data, 'after')
})
