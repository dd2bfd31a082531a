// Property-based, against the real /connection/websocket endpoint: random
// frames (commands of every method with extra fields, wrong types, ids of
// every size, batches, nested data, frames that are not the protocol, binary
// and oversized frames) from a raw client that has connected. Whatever it
// sends, the server answers each command in order with its result or its
// code, or closes with the code the frame deserves; it never writes a line
// that is not a JSON object, never logs a failure, never leaves an unhandled
// rejection; and a well-behaved SDK client on the same server receives every
// publication throughout.
import { once } from 'node:events'
import { Writable } from 'node:stream'
import fc from 'fast-check'
import t from 'tap'
import { WebSocket } from 'ws'
import { METHODS, MAX_COMMAND_ID, type Method } from '../../lib/protocols/centrifuge/commands.js'
import { RawNumber, toJson } from '../arbitraries.js'
import { token, until } from '../helpers.js'
import { buildCentrifuge, sdk, subscription } from '../centrifuge-helpers.js'
import { fuzzParameters } from './harness.js'

const MAX_PAYLOAD = 8 * 1024
const MAX_LINES = 256
const USER = 'alice'

// ---------------------------------------------------------------- what a line must get

/** What one line of an accepted frame must get. */
type Expect =
  /** Nothing: a pong, a blank line, a send. */
  | { readonly kind: 'none' }
  /** `{id, <method>: {…}}`, or an error with one of `errors`, or a close with one of `closes`. */
  | { readonly kind: 'reply', readonly id: number, readonly method: Method, readonly errors: readonly number[], readonly closes: readonly number[] }
  /** This error and no other answer (the parser's 104 and 107). */
  | { readonly kind: 'error', readonly id: number, readonly code: 104 | 107 }
  /** The connection closes with this code. */
  | { readonly kind: 'close', readonly code: number }

interface Line {
  readonly text: string
  /** Absent: the line breaks the whole frame (3501, nothing of the frame runs). */
  readonly expect?: Expect
  readonly label: string
}

type Frame =
  | { readonly kind: 'text', readonly lines: readonly Line[], readonly separator: string }
  | { readonly kind: 'binary', readonly bytes: Uint8Array }
  | { readonly kind: 'invalid utf-8' }
  | { readonly kind: 'pongs', readonly count: number }
  | { readonly kind: 'pings', readonly count: number }

// ---------------------------------------------------------------- arbitraries

const json = fc.jsonValue({ maxDepth: 3 })
/** Arrays nested `depth` deep: the server refuses data past 100 levels in publications. */
const nested = fc.integer({ min: 95, max: 110 }).map((depth) => JSON.parse('['.repeat(depth) + ']'.repeat(depth)) as unknown)
const data = fc.oneof(
  { weight: 6, arbitrary: json },
  { weight: 1, arbitrary: nested },
  { weight: 1, arbitrary: fc.integer({ min: 3000, max: 10_000 }).map((n) => 'd'.repeat(n)) }
)
const text = fc.oneof(fc.string({ maxLength: 12 }), fc.string({ maxLength: 6, unit: 'binary' }))
const uint = fc.oneof(fc.nat({ max: 1000 }), fc.maxSafeNat())
const int32 = fc.integer({ min: -0x80000000, max: 0x7FFFFFFF })
/** The probe subscribes to these first (with tokens). */
const SUBSCRIBED = ['news', 'chat:a', 'private:p']
const channel = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...SUBSCRIBED) },
  { weight: 3, arbitrary: fc.constantFrom('chat:b', '$x', 'nope:x', 'dialog:x#alice', 'dialog:y#bob', 'live:other') },
  { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 10 }) },
  { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 5, unit: 'binary' }) }
)
const subToken = (channel: string): string => token({ sub: USER, channel })
const seconds = (n: number): number => Math.floor(Date.now() / 1000) + n

/** Fields no method knows, kept on the command and ignored. */
function extras (known: readonly string[]): fc.Arbitrary<Record<string, unknown>> {
  return fc.dictionary(fc.string({ maxLength: 8 }).filter((key) => !known.includes(key)), json, { maxKeys: 2 })
}

const validId = fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: MAX_COMMAND_ID }), fc.constantFrom(1, MAX_COMMAND_ID))
const badId = fc.constantFrom<unknown>(0, -1, 1.5, MAX_COMMAND_ID + 1, '1', null, true, [1], {}, new RawNumber('1e400'), new RawNumber('99999999999999999999'), new RawNumber('-0.0'))

interface Valid { readonly params: Record<string, unknown>, readonly errors: readonly number[], readonly closes: readonly number[], readonly label: string }

const ok = (params: Record<string, unknown>, label: string, errors: readonly number[] = [], closes: readonly number[] = []): Valid => ({ params, errors, closes, label })

/** Parameters each method accepts, with every answer they may get after connect. */
const VALID: Record<Exclude<Method, 'send' | 'connect'>, fc.Arbitrary<Valid>> = {
  subscribe: fc.tuple(channel, fc.record({
    recover: fc.boolean(),
    offset: uint,
    epoch: text,
    positioned: fc.boolean(),
    recoverable: fc.boolean(),
    join_leave: fc.boolean(),
    flag: fc.constantFrom(0, 1, 2, 3, 1024),
    data: json,
    delta: text,
    tf: fc.dictionary(text, json, { maxKeys: 2 }),
    type: fc.constantFrom(0, 0, 0, 1, 4)
  }, { requiredKeys: [] }), fc.constantFrom('none', 'right', 'garbage', 'expired'), extras(['channel', 'token', 'recover', 'offset', 'epoch', 'positioned', 'recoverable', 'join_leave', 'flag', 'data', 'delta', 'tf', 'type']))
    .map(([channel, fields, kind, extra]) => {
      const tokenField = kind === 'none'
        ? {}
        : { token: kind === 'right' ? subToken(channel) : kind === 'expired' ? token({ sub: USER, channel, exp: seconds(-60) }) : 'not.a.token' }
      // Centrifugo's map and shared-poll subscriptions (type 1, 4) are not served: 108 before anything else.
      const errors = (fields.type ?? 0) !== 0 ? [108] : [102, 103, 105, 106, 107, 109, 112]
      return ok({ ...extra, ...fields, ...tokenField, channel }, `subscribe ${kind}`, errors)
    }),
  unsubscribe: fc.tuple(channel, extras(['channel'])).map(([channel, extra]) => ok({ ...extra, channel }, 'unsubscribe')),
  publish: fc.tuple(channel, data, fc.constantFrom(undefined, 0, 1), extras(['channel', 'data', 'type']))
    .map(([channel, value, type, extra]) => ok({ ...extra, channel, data: value, type }, 'publish', (type ?? 0) !== 0 ? [108] : [103, 107])),
  presence: fc.tuple(channel, extras(['channel'])).map(([channel, extra]) => ok({ ...extra, channel }, 'presence', [102, 103, 108])),
  presence_stats: fc.tuple(channel, extras(['channel'])).map(([channel, extra]) => ok({ ...extra, channel }, 'presence_stats', [102, 103, 108])),
  history: fc.tuple(channel, fc.record({ limit: int32, since: fc.record({ offset: uint, epoch: text }, { requiredKeys: [] }), reverse: fc.boolean() }, { requiredKeys: [] }), extras(['channel', 'limit', 'since', 'reverse']))
    .map(([channel, fields, extra]) => ok({ ...extra, ...fields, channel }, 'history', [102, 103, 108, 112])),
  ping: extras([]).map((extra) => ok(extra, 'ping')),
  rpc: fc.tuple(fc.option(text, { nil: undefined }), data, extras(['method', 'data'])).map(([method, value, extra]) => ok({ ...extra, method, data: value }, 'rpc')),
  refresh: fc.constantFrom('same user', 'another user', 'expired', 'garbage').map((kind) => {
    if (kind === 'same user') return ok({ token: token({ sub: USER }) }, 'refresh same user')
    if (kind === 'another user') return ok({ token: token({ sub: 'mallory' }) }, 'refresh another user', [], [3500])
    if (kind === 'expired') return ok({ token: token({ sub: USER, exp: seconds(-60) }) }, 'refresh expired', [], [3005])
    return ok({ token: 'garbage' }, 'refresh garbage', [], [3500])
  }),
  sub_refresh: fc.tuple(channel, fc.boolean()).map(([channel, right]) => ok({ channel, token: right ? subToken(channel) : 'garbage' }, 'sub_refresh', [103, 109]))
}

const notObject = fc.constantFrom<unknown>(null, 5, 'x', [], [{}], true)
/** A value of the wrong type for a known field (or parameters that are not an object): 107. */
const BROKEN: Record<Exclude<Method, 'send'>, fc.Arbitrary<unknown>> = {
  connect: fc.constantFrom({ token: 5 }, { name: [] }, { subs: { '': {} } }, { subs: { x: { offset: -1 } } }, { headers: { a: 1 } }),
  subscribe: fc.constantFrom({}, { channel: '' }, { channel: 7 }, { channel: 'news', offset: -1 }, { channel: 'news', offset: 1.5 },
    { channel: 'news', offset: 2 ** 53 }, { channel: 'news', flag: 'x' }, { channel: 'news', recover: 'yes' }, { channel: 'news', type: 2 ** 31 }, { channel: 'news', tf: [] }),
  unsubscribe: fc.constantFrom({}, { channel: '' }, { channel: null }),
  publish: fc.constantFrom({ data: 1 }, { channel: ['news'] }, { channel: 'news', type: 0.5 }),
  presence: fc.constantFrom({}, { channel: false }),
  presence_stats: fc.constantFrom({}, { channel: {} }),
  history: fc.constantFrom({ channel: 'news', limit: 2 ** 31 }, { channel: 'news', limit: 1.5 }, { channel: 'news', since: 5 }, { channel: 'news', since: { offset: -1 } }, { channel: 'news', reverse: 'no' }),
  ping: notObject,
  rpc: fc.constantFrom({ method: 5 }, { method: null }),
  refresh: fc.constantFrom({}, { token: '' }, { token: 5 }),
  sub_refresh: fc.constantFrom({ channel: 'news' }, { channel: 'news', token: '' }, { token: 'x' }, { channel: 'news', token: 'x', type: 'a' })
}

type Answered = Exclude<Method, 'send' | 'connect'>
const ANSWERED = METHODS.filter((m): m is Answered => m !== 'send' && m !== 'connect')

const goodLine: fc.Arbitrary<Line> = fc.oneof(
  // A valid command of every method but connect, answered by the session.
  {
    weight: 24,
    arbitrary: fc.tuple(validId, fc.constantFrom(...ANSWERED), extras(['id', ...METHODS])).chain(([id, method, extra]) => VALID[method].map((valid): Line => ({
      text: toJson({ ...extra, id, [method]: valid.params }),
      expect: { kind: 'reply', id, method, errors: valid.errors, closes: valid.closes },
      label: valid.label
    })))
  },
  // A second connect: the connection is already identified.
  { weight: 1, arbitrary: validId.map((id): Line => ({ text: toJson({ id, connect: { token: token({ sub: USER }) } }), expect: { kind: 'close', code: 3501 }, label: 'connect again' })) },
  // Broken parameters: 107, and the frame goes on.
  {
    weight: 6,
    arbitrary: fc.tuple(validId, fc.constantFrom(...METHODS.filter((m) => m !== 'send'))).chain(([id, method]) =>
      fc.oneof(BROKEN[method], notObject).map((params): Line => ({ text: toJson({ id, [method]: params }), expect: { kind: 'error', id, code: 107 }, label: `${method} broken` })))
  },
  // No known method: 104. Two methods: 107.
  {
    weight: 2,
    arbitrary: fc.tuple(validId, fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }).filter((key) => key !== 'id' && !(METHODS as readonly string[]).includes(key)), json, { minKeys: 1, maxKeys: 2 }))
      .map(([id, fields]): Line => ({ text: toJson({ ...fields, id }), expect: { kind: 'error', id, code: 104 }, label: 'unknown method' }))
  },
  {
    weight: 1,
    arbitrary: fc.tuple(validId, fc.uniqueArray(fc.constantFrom(...METHODS), { minLength: 2, maxLength: 3 }))
      .map(([id, methods]): Line => ({ text: toJson({ id, ...Object.fromEntries(methods.map((m) => [m, {}])) }), expect: { kind: 'error', id, code: 107 }, label: 'two methods' }))
  },
  // Nothing to answer: pongs, blank lines, send (with an id or without).
  { weight: 3, arbitrary: fc.constantFrom('{}', ' {} ', '{"x":1}', '', ' ', '\t', '\r').map((text): Line => ({ text, expect: { kind: 'none' }, label: 'pong or blank' })) },
  { weight: 3, arbitrary: fc.tuple(fc.option(validId, { nil: undefined }), data).map(([id, value]): Line => ({ text: toJson({ id, send: { data: value } }), expect: { kind: 'none' }, label: 'send' })) }
)

/** Lines that break the frame they are in: 3501, nothing of the frame runs. */
const breakingLine: fc.Arbitrary<Line> = fc.oneof(
  {
    weight: 1,
    arbitrary: fc.oneof(
      fc.constantFrom('{', 'not json', '{"id":1,', '[1', '{"id":2,"ping":{}}}', '\u0000'),
      fc.string({ minLength: 1, maxLength: 10 }).filter((s) => !s.includes('\n') && s.trim() !== '' && !parses(s))
    ).map((text): Line => ({ text, label: 'not JSON' }))
  },
  { weight: 1, arbitrary: fc.constantFrom('5', 'null', '"ping"', 'true', '[]', '[{"id":1,"ping":{}}]').map((text): Line => ({ text, label: 'not an object' })) },
  { weight: 1, arbitrary: badId.map((id): Line => ({ text: toJson({ id, ping: {} }), label: 'bad id' })) },
  { weight: 1, arbitrary: fc.constantFrom(...ANSWERED).map((method): Line => ({ text: toJson({ [method]: {} }), label: 'no id' })) },
  { weight: 1, arbitrary: notObject.map((params): Line => ({ text: toJson({ send: params }), label: 'bad send' })) }
)

function parses (text: string): boolean {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

const frame: fc.Arbitrary<Frame> = fc.oneof(
  { weight: 16, arbitrary: fc.record({ kind: fc.constant('text' as const), lines: fc.array(goodLine, { minLength: 1, maxLength: 6 }), separator: fc.constantFrom('\n', '\r\n') }) },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.array(goodLine, { maxLength: 4 }), breakingLine, fc.nat(), fc.constantFrom('\n', '\r\n'))
      .map(([lines, bad, at, separator]): Frame => ({ kind: 'text', lines: [...lines.slice(0, at % (lines.length + 1)), bad, ...lines.slice(at % (lines.length + 1))], separator }))
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 20 }).map((bytes): Frame => ({ kind: 'binary', bytes })) },
  { weight: 1, arbitrary: fc.constant<Frame>({ kind: 'invalid utf-8' }) },
  { weight: 1, arbitrary: fc.constantFrom(0, MAX_LINES, MAX_LINES + 1).map((count): Frame => ({ kind: 'pongs', count })) },
  { weight: 1, arbitrary: fc.integer({ min: 100, max: MAX_LINES }).map((count): Frame => ({ kind: 'pings', count })) }
)

// ---------------------------------------------------------------- the client

/** The frame's text as sent, and what the frame as a whole gets: the lines' answers, or one close. */
function plan (f: Frame): { send: string | Buffer, binary: boolean, expects: Expect[] } {
  if (f.kind === 'binary') return { send: Buffer.from(f.bytes), binary: true, expects: [{ kind: 'close', code: 3501 }] }
  if (f.kind === 'invalid utf-8') return { send: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), binary: false, expects: [{ kind: 'close', code: 1007 }] }
  if (f.kind === 'pongs') {
    return { send: Array.from({ length: f.count }, () => '{}').join('\n'), binary: false, expects: f.count >= 1 && f.count <= MAX_LINES ? [] : [{ kind: 'close', code: 3501 }] }
  }
  if (f.kind === 'pings') {
    const ids = Array.from({ length: f.count }, (_, i) => i + 2)
    return { send: ids.map((id) => `{"id":${id},"ping":{}}`).join('\n'), binary: false, expects: ids.map((id) => ({ kind: 'reply', id, method: 'ping', errors: [], closes: [] })) }
  }
  const text = f.lines.map((l) => l.text).join(f.separator)
  if (Buffer.byteLength(text) > MAX_PAYLOAD) return { send: text, binary: false, expects: [{ kind: 'close', code: 1009 }] }
  const blank = (l: Line): boolean => l.text.trim() === ''
  // '\r\n': a line is its text plus '\r', which JSON and the blank test both treat as whitespace.
  if (f.lines.every(blank) || f.lines.some((l) => l.expect === undefined)) return { send: text, binary: false, expects: [{ kind: 'close', code: 3501 }] }
  return { send: text, binary: false, expects: f.lines.map((l) => l.expect as Expect) }
}

/** A raw connection that has sent `connect`; every line it receives is checked to be a JSON object. */
class Probe {
  readonly ws: WebSocket
  readonly #lines: unknown[] = []
  #waiter: (() => void) | undefined
  closed: [number, string] | undefined
  readonly problems: string[] = []

  constructor (url: string, protocol: string | undefined) {
    this.ws = new WebSocket(url, protocol === undefined ? [] : [protocol])
    this.ws.on('message', (raw: Buffer, isBinary: boolean) => {
      if (isBinary) this.problems.push('a binary frame')
      for (const text of raw.toString().split('\n')) {
        let value: unknown
        try {
          value = JSON.parse(text)
        } catch {
          this.problems.push(`a line that is not JSON: ${JSON.stringify(text.slice(0, 200))}`)
          continue
        }
        if (typeof value !== 'object' || value === null || Array.isArray(value)) {
          this.problems.push(`a line that is not an object: ${text.slice(0, 200)}`)
          continue
        }
        const line = value as Record<string, unknown>
        if (line.push !== undefined) {
          if (line.id !== undefined) this.problems.push(`a push with an id: ${text.slice(0, 200)}`)
          continue // pushes of channels the probe subscribed to
        }
        this.#lines.push(line)
        this.#waiter?.()
      }
    })
    this.ws.on('close', (code: number, reason: Buffer) => {
      this.closed = [code, reason.toString()]
      this.#waiter?.()
    })
  }

  /** The next reply, or 'closed'; throws after `timeout` ms of neither. */
  async next (timeout = 3000): Promise<Record<string, unknown> | 'closed'> {
    const deadline = Date.now() + timeout
    for (;;) {
      const line = this.#lines.shift()
      if (line !== undefined) return line as Record<string, unknown>
      if (this.closed !== undefined) return 'closed'
      const left = deadline - Date.now()
      if (left <= 0) throw new Error('no answer within 3 s')
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.#waiter = () => { clearTimeout(timer); this.#waiter = undefined; resolve() }
      })
    }
  }

  async close (): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return
    const gone = once(this.ws, 'close')
    this.ws.terminate()
    await gone
  }
}

/** Why a reply does not fit `expect`, or null. */
function mismatch (reply: Record<string, unknown>, expect: Expect): string | null {
  const keys = Object.keys(reply).sort()
  if (expect.kind === 'error') {
    const error = reply.error as Record<string, unknown> | undefined
    return reply.id === expect.id && keys.join() === 'error,id' && error?.code === expect.code ? null : `wanted error ${expect.code} for id ${expect.id}`
  }
  if (expect.kind !== 'reply') return `wanted ${JSON.stringify(expect)}`
  if (reply.id !== expect.id) return `wanted the answer to id ${expect.id}`
  if (keys.join() === 'error,id') {
    const error = reply.error as Record<string, unknown>
    const shape = typeof error.code === 'number' && typeof error.message === 'string' && (error.temporary === undefined || error.temporary === true) &&
      Object.keys(error).every((key) => ['code', 'message', 'temporary'].includes(key))
    return shape && expect.errors.includes(error.code as number) ? null : `error not in [${expect.errors.join(', ')}]`
  }
  const result = reply[expect.method]
  const isObject = typeof result === 'object' && result !== null && !Array.isArray(result)
  return keys.join() === [expect.method, 'id'].sort().join() && isObject ? null : `wanted a ${expect.method} result`
}

// ---------------------------------------------------------------- the property

t.test('random frames against the real endpoint: every command answered or the right close; nothing else breaks', async (t) => {
  const failures: string[] = []
  const logged = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString().split('\n')) {
        if (text === '') continue
        const entry = JSON.parse(text) as { level: number, msg: string }
        if (entry.level >= 50) failures.push(`logged: ${text.slice(0, 500)}`)
      }
      done()
    }
  })
  const rejections: unknown[] = []
  const onRejection = (reason: unknown): void => { rejections.push(reason) }
  process.on('unhandledRejection', onRejection)
  t.teardown(() => { process.off('unhandledRejection', onRejection) })

  let sends = 0
  const built = await buildCentrifuge(t, {
    inbound: false,
    heartbeatInterval: 0,
    centrifuge: {
      maxPayload: MAX_PAYLOAD,
      connectTimeout: 2000,
      onRpc: (_connection, method, value) => ({ method, value }),
      onSend: () => { sends++ }
    },
    channels: {
      namespaces: {
        live: { historySize: 1000, historyTtl: 300_000, recovery: true },
        dialog: { userLimited: true }
      }
    }
  }, { logger: { level: 'error', stream: logged } })

  // The bystander: a well-behaved SDK client that must see every publication, in order.
  const bystander = sdk(t, built.sdkUrl, { token: token({ sub: 'bystander' }) })
  bystander.client.connect()
  const feed = subscription(bystander.client, 'live:feed')
  feed.sub.subscribe()
  await feed.events.next('subscribed')
  let published = 0

  const seen = new Map<string, number>()
  const count = (key: string): void => { seen.set(key, (seen.get(key) ?? 0) + 1) }

  const subprotocol = fc.oneof(
    { weight: 8, arbitrary: fc.constant(undefined) },
    { weight: 2, arbitrary: fc.constant('centrifuge-json') },
    { weight: 1, arbitrary: fc.constant('centrifuge-protobuf') }
  )
  await fc.assert(fc.asyncProperty(subprotocol, fc.array(frame, { minLength: 1, maxLength: 5 }), async (protocol, frames) => {
    const probe = new Probe(built.sdkUrl, protocol)
    try {
      await once(probe.ws, 'open')
      if (protocol === 'centrifuge-protobuf') {
        // A Protobuf connection that sends JSON text: the protocol is broken (3501), before any command.
        probe.ws.send(JSON.stringify({ id: 1, connect: { token: token({ sub: USER }) } }))
        if (await probe.next() !== 'closed' || probe.closed?.[0] !== 3501) throw new Error(`protobuf: ${String(probe.closed)}`)
        count('close 3501 (text on protobuf)')
        return
      }
      probe.ws.send(JSON.stringify({ id: 1, connect: { token: token({ sub: USER }), name: 'fuzz' } }))
      const connected = await probe.next()
      if (connected === 'closed' || connected.connect === undefined) throw new Error(`connect: ${JSON.stringify(connected)} ${String(probe.closed)}`)
      // Subscribed to some channels first, so that publish, history and presence find some.
      probe.ws.send(SUBSCRIBED.map((channel, i) => JSON.stringify({ id: i + 2, subscribe: { channel, token: subToken(channel) } })).join('\n'))
      for (const id of [2, 3, 4]) {
        const subscribed = await probe.next()
        if (subscribed === 'closed' || subscribed.id !== id || subscribed.subscribe === undefined) throw new Error(`subscribe: ${JSON.stringify(subscribed)}`)
      }
      let open = true
      for (const [index, f] of frames.entries()) {
        const { send, binary, expects } = plan(f)
        probe.ws.send(send, { binary })
        for (const expect of expects) {
          if (expect.kind === 'none') continue
          const answer = await probe.next()
          if (answer === 'closed') {
            const code = probe.closed?.[0] as number
            const allowed = expect.kind === 'close' ? [expect.code] : expect.kind === 'reply' ? expect.closes : []
            if (!allowed.includes(code)) throw new Error(`frame ${index + 1}: closed with ${code} ${probe.closed?.[1]}; wanted ${JSON.stringify(expect)}`)
            count(`close ${code}`)
            open = false
            break
          }
          const problem = mismatch(answer, expect)
          if (problem !== null) throw new Error(`frame ${index + 1}: ${problem}, got ${JSON.stringify(answer).slice(0, 300)}`)
          count(answer.error === undefined ? `result ${String((expect as { method?: string }).method)}` : `error ${(answer.error as { code: number }).code}`)
        }
        if (!open) break
      }
      if (open) {
        // A last command: its answer must come next, so nothing was answered that should not have been.
        probe.ws.send(JSON.stringify({ id: 4242, ping: {} }))
        const last = await probe.next()
        if (last === 'closed') throw new Error(`closed with ${String(probe.closed)} where nothing should close`)
        if (last.id !== 4242) throw new Error(`an answer nothing asked for: ${JSON.stringify(last).slice(0, 300)}`)
      }
      if (probe.problems.length > 0) throw new Error(probe.problems.join('; '))
    } finally {
      await probe.close()
    }
    // The bystander still gets publications, at once.
    const next = feed.events.next('publication', feed.events.events.length)
    await built.app.fanout.publish('live:feed', published++)
    await Promise.race([next, new Promise((resolve, reject) => setTimeout(() => reject(new Error('the bystander missed a publication')), 2000))])
  }), fuzzParameters(100))

  t.same(failures, [], 'nothing logged at error level')
  t.same(rejections, [], 'no unhandled rejection')
  t.same(feed.events.all('publication').map((p) => [p.data, p.offset]), Array.from({ length: published }, (_, i) => [i, i + 1]), 'the bystander got every publication, in order')
  t.equal(bystander.events.all('connecting').length, 1, 'the bystander never reconnected')
  t.equal(feed.events.all('subscribing').length, 1, 'nor resubscribed')
  await until(() => built.app.fanout.size === 1, 'the probes to be gone')
  t.comment(`outcomes: ${[...seen].sort().map(([key, n]) => `${key} ${n}`).join(', ')}; ${sends} sends`)
})
