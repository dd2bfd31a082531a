import t from 'tap'
import type { Socket } from 'node:net'
import { WebSocket } from 'ws'
import { build, connect, nextMessage, token } from './helpers.js'

const bytesRead = (ws: WebSocket): number => (ws as unknown as { _socket: Socket })._socket.bytesRead

/** Wire bytes the client read for one message. */
async function wireSize (ws: WebSocket, send: () => Promise<unknown>): Promise<number> {
  const before = bytesRead(ws)
  const next = nextMessage(ws)
  await send()
  await next
  return bytesRead(ws) - before
}

t.test('permessage-deflate compresses messages above the threshold only', async (t) => {
  const { app, wsUrl } = await build(t, { compression: { threshold: 1024 } })
  const ws = await connect(t, wsUrl) // ws clients offer permessage-deflate by default
  t.match(ws.extensions, /permessage-deflate/, 'negotiated')
  const negotiated = new Promise<string | undefined>((resolve) => {
    const probe = new WebSocket(`${wsUrl}?token=${token()}`)
    probe.on('upgrade', (response) => { resolve(response.headers['sec-websocket-extensions']); probe.terminate() })
    probe.on('error', () => {}) // terminated on purpose right after the upgrade
  })
  t.match(await negotiated, /server_no_context_takeover/, 'every message compressed on its own')

  const small = 'a'.repeat(900)
  const smallSize = await wireSize(ws, async () => await app.fanout.broadcast(small))
  t.ok(smallSize > small.length, `below the threshold it goes as is (${smallSize} bytes on the wire)`)

  const large = 'a'.repeat(20_000)
  const largeSize = await wireSize(ws, async () => await app.fanout.broadcast(large))
  t.ok(largeSize < 1000, `above the threshold it is compressed (${largeSize} bytes on the wire for ${large.length})`)
})

t.test('compression is off by default and not negotiated', async (t) => {
  const { app, wsUrl } = await build(t)
  const ws = await connect(t, wsUrl)
  t.equal(ws.extensions, '')
  const large = 'a'.repeat(20_000)
  t.ok(await wireSize(ws, async () => await app.fanout.broadcast(large)) > large.length)
})

t.test('clients that do not offer deflate still get uncompressed frames', async (t) => {
  const { app, wsUrl } = await build(t, { compression: true })
  const ws = await connect(t, wsUrl, undefined, { perMessageDeflate: false })
  t.equal(ws.extensions, '')
  const large = 'a'.repeat(20_000)
  t.ok(await wireSize(ws, async () => await app.fanout.broadcast(large)) > large.length)
})

t.test('the level option reaches zlib', async (t) => {
  // Pseudo-random text compresses measurably better at level 9 than level 1.
  let seed = 7
  const text = Array.from({ length: 40_000 }, () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return 'abcdefghij'[seed % 10]
  }).join('')
  const sizes: number[] = []
  for (const level of [1, 9]) {
    const { app, wsUrl } = await build(t, { compression: { level } })
    const ws = await connect(t, wsUrl)
    sizes.push(await wireSize(ws, async () => await app.fanout.broadcast(text)))
  }
  t.ok((sizes[1] as number) < (sizes[0] as number), `level 9 (${sizes[1]} bytes) beats level 1 (${sizes[0]} bytes)`)
})
