// Property-based: whatever bytes a client writes after its upgrade, the
// server answers only with documented close codes, never crashes, and goes on
// serving everyone else.
import { once } from 'node:events'
import fc from 'fast-check'
import t from 'tap'
import { build, connect, nextMessage, token } from '../helpers.js'
import { clientFrame } from '../frames.js'
import { RawClient } from '../raw-client.js'
import { fuzzParameters } from './harness.js'

/** What a client's bytes may earn it (RFC 6455 codes ws sends, and ours). */
const DOCUMENTED = new Set([1002, 1007, 1008, 1009, 4009])

interface FrameSpec {
  fin: boolean
  rsv: number
  opcode: number
  masked: boolean
  payload: Uint8Array
  /** How the length is written: as it is, or a lie. */
  length: 'exact' | 'shorter' | 'longer' | 'huge'
}

const frameSpec: fc.Arbitrary<FrameSpec> = fc.record({
  fin: fc.boolean(),
  rsv: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, fc.integer({ min: 0, max: 7 })),
  // Mostly real opcodes (continuation, text, binary, close, ping, pong), sometimes reserved ones.
  opcode: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(0x0, 0x1, 0x2, 0x8, 0x9, 0xa) }, fc.integer({ min: 0, max: 15 })),
  masked: fc.oneof({ weight: 8, arbitrary: fc.constant(true) }, fc.constant(false)),
  payload: fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    fc.string({ maxLength: 100, unit: 'binary' }).map((text) => new Uint8Array(Buffer.from(text)))
  ),
  length: fc.constantFrom('exact', 'exact', 'exact', 'shorter', 'longer', 'huge')
})

function encode (spec: FrameSpec): Buffer {
  const payload = Buffer.from(spec.payload)
  const announced = spec.length === 'exact'
    ? payload.length
    : spec.length === 'shorter' ? Math.max(0, payload.length - 1) : spec.length === 'longer' ? payload.length + 10 : 2 ** 40
  const extended = announced < 126 ? 0 : announced < 65536 ? 2 : 8
  const header = Buffer.alloc(2 + extended + (spec.masked ? 4 : 0))
  header[0] = (spec.fin ? 0x80 : 0) | (spec.rsv << 4) | spec.opcode
  header[1] = (spec.masked ? 0x80 : 0) | (extended === 0 ? announced : extended === 2 ? 126 : 127)
  if (extended === 2) header.writeUInt16BE(announced, 2)
  if (extended === 8) header.writeBigUInt64BE(BigInt(announced), 2)
  if (spec.masked) {
    const mask = header.subarray(2 + extended)
    mask.set([0x12, 0x34, 0x56, 0x78])
    for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (mask[i & 3] as number)
  }
  return Buffer.concat([header, payload])
}

/** A chunk a client writes, and the close code it carries if it is a close frame (ws echoes it). */
interface Chunk { bytes: Buffer, closeCode?: number }

const chunk: fc.Arbitrary<Chunk> = fc.oneof(
  // Well-formed messages, whole or in fragments, between the odd ones.
  { weight: 4, arbitrary: fc.tuple(fc.string({ maxLength: 300 }), fc.boolean()).map(([text, fin]) => ({ bytes: clientFrame(text, 0x1, fin) })) },
  { weight: 5, arbitrary: frameSpec.map((spec) => ({ bytes: encode(spec), closeCode: spec.opcode === 0x8 && spec.payload.length >= 2 ? Buffer.from(spec.payload).readUInt16BE(0) : undefined })) },
  fc.uint8Array({ minLength: 1, maxLength: 64 }).map((bytes) => ({ bytes: Buffer.from(bytes) }))
)

t.test('any sequence of frames or bytes from a client gets a documented close code or none', async (t) => {
  const { app } = await build(t, { inbound: { messages: 20, bytes: 4096 }, closeTimeout: 100 })
  const { port } = app.server.address() as { port: number }
  const wsUrl = `ws://127.0.0.1:${port}/ws`
  const bystander = await connect(t, wsUrl, token({ sub: 'bystander' }))
  const jwt = token({ sub: 'fuzzer' })
  let runs = 0
  const seen = new Map<string, number>()

  await fc.assert(fc.asyncProperty(
    fc.array(chunk, { minLength: 1, maxLength: 8 }),
    async (chunks) => {
      runs++
      const client = await RawClient.open('127.0.0.1', port, `/ws?token=${jwt}`)
      try {
        for (const { bytes } of chunks) client.socket.write(bytes)
        // Either the server closes, or the connection is still fine after a moment.
        const ended = once(client.socket, 'close').then(() => true)
        const settled = await Promise.race([ended, new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 60))])
        const close = client.frames.find((frame) => frame.opcode === 0x8)
        const code = close !== undefined && close.payload.length >= 2 ? close.payload.readUInt16BE(0) : undefined
        const outcome = String(code ?? (settled ? 'dropped' : 'open'))
        seen.set(outcome, (seen.get(outcome) ?? 0) + 1)
        if (code === undefined) return true
        // A client's own well-formed close frame is answered with its code.
        return DOCUMENTED.has(code) || chunks.some((sent) => sent.closeCode === code)
      } finally {
        client.close()
      }
    }
  ), fuzzParameters(150))

  // The instance still serves everyone else.
  const next = nextMessage(bystander)
  await app.fanout.broadcast('still serving')
  t.equal((await next).data, 'still serving')
  t.ok(runs > 0, `${runs} runs; outcomes ${JSON.stringify(Object.fromEntries(seen))}`)
})
