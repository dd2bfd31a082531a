import { constants, inflateRawSync } from 'node:zlib'
import t from 'tap'
import { OutboundFrame } from '../lib/core/frame.js'
import { build, closed, connect, messages, token } from './helpers.js'
import { RawClient } from './raw-client.js'

const compression = { threshold: 100, level: 1 }

/** What a permessage-deflate receiver does: put back the flush tail and inflate. */
function inflate (body: Buffer): Buffer {
  return inflateRawSync(Buffer.concat([body, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: constants.Z_SYNC_FLUSH })
}

t.test('a message is framed once and the frame is reused', async (t) => {
  const frame = new OutboundFrame(Buffer.from('{"type":"message","id":"x","data":1}'), compression)
  t.equal(frame.plain(), frame.plain(), 'the same Buffer every time')
  t.equal(frame.plain()[0], 0x81, 'FIN + text opcode')
  t.equal(frame.plain()[1], frame.payload.length, 'unmasked, 7-bit length')
  t.equal(frame.forDeflate(15), frame.plain(), 'below the threshold: the plain frame')

  const big = new OutboundFrame(Buffer.from(JSON.stringify({ text: 'a'.repeat(5000) })), compression)
  const deflated = big.forDeflate(15)
  t.equal(big.forDeflate(15), deflated, 'compressed once per window size')
  t.equal(deflated[0], 0xc1, 'FIN + RSV1 (compressed) + text')
  const body = deflated.subarray(deflated[1] === 126 ? 4 : 2)
  t.same(inflate(body), big.payload, 'inflates back to the payload')
  t.not(big.forDeflate(10), deflated, 'another window size, another frame')

  const random = new OutboundFrame(Buffer.from(JSON.stringify({ noise: Buffer.from(Array.from({ length: 600 }, (_, i) => (i * 7919) % 251)).toString('base64') })), compression)
  const noisy = random.forDeflate(15)
  t.ok(noisy.length <= random.plain().length, 'never larger than plain')
})

t.test('frames queued in one turn leave together in one write', async (t) => {
  const { app, url } = await build(t)
  const { port } = new URL(url)
  const client = await RawClient.open('127.0.0.1', Number(port), `/ws?token=${token()}`)
  t.teardown(() => client.close())
  await new Promise((resolve) => setTimeout(resolve, 20)) // let the registration settle
  // Ten broadcasts in one turn (the embedded backplane delivers within the call).
  const results = Array.from({ length: 10 }, async (_, i) => await app.fanout.broadcast(i))
  await Promise.all(results)
  const frames = await client.waitForFrames(10)
  t.same(frames.map((f) => JSON.parse(f.payload.toString()).data), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'in order')
  t.ok(client.chunks.length <= 2, `arrived in ${client.chunks.length} read(s) of ${client.chunks.join(', ')} bytes`)
})

t.test('compressed frames are shared and marked RSV1 on the wire', async (t) => {
  const { app, url } = await build(t, { compression: { threshold: 100 } })
  const { port } = new URL(url)
  const client = await RawClient.open('127.0.0.1', Number(port), `/ws?token=${token()}`, { 'Sec-WebSocket-Extensions': 'permessage-deflate' })
  t.teardown(() => client.close())
  await new Promise((resolve) => setTimeout(resolve, 20))
  await app.fanout.broadcast('small')
  await app.fanout.broadcast('b'.repeat(4000))
  const [small, large] = await client.waitForFrames(2)
  t.equal(small?.rsv1, false, 'below the threshold: not compressed')
  t.equal(large?.rsv1, true, 'above: compressed')
  const inflated = inflate(large?.payload as Buffer)
  t.equal(JSON.parse(inflated.toString()).data, 'b'.repeat(4000))
})

t.test('messages queued before a close arrive before the close frame', async (t) => {
  const { app, wsUrl } = await build(t)
  const ws = await connect(t, wsUrl, token({ sub: 'leaving' }))
  const got = messages(ws, 3)
  const closing = closed(ws)
  const sent = ['one', 'two', 'three'].map(async (data) => await app.fanout.broadcast(data))
  const disconnected = app.fanout.disconnectUser('leaving', 4000, 'bye') // same turn: the three are still queued
  await Promise.all([...sent, disconnected])
  t.same((await got).map((m) => m.data), ['one', 'two', 'three'])
  t.equal((await closing).code, 4000)
})

t.test('the flusher writes a slice of connections per turn and yields in between', async (t) => {
  const { Flusher } = await import('../lib/core/flusher.js')
  const flusher = new Flusher(2)
  const flushed: number[] = []
  for (let i = 0; i < 5; i++) flusher.mark({ flush: () => flushed.push(i) })
  t.same(flushed, [], 'nothing is written in the turn that queued it')
  const turn = async (): Promise<void> => await new Promise((resolve) => setImmediate(resolve))
  await turn()
  t.same(flushed, [0, 1], 'one slice per turn')
  await turn()
  t.same(flushed, [0, 1, 2, 3])
  flusher.mark({ flush: () => flushed.push(5) })
  await turn()
  t.same(flushed, [0, 1, 2, 3, 4, 5], 'marks made meanwhile join the same pass')
  flusher.mark({ flush: () => flushed.push(6) })
  flusher.flushAll()
  t.same(flushed, [0, 1, 2, 3, 4, 5, 6], 'flushAll writes everything at once (shutdown)')
})
