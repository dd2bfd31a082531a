// Property-based: CommandParser (Centrifugo client protocol v2, JSON) never
// throws, whatever a client writes, and answers every generated command as
// an independent model of the rules predicts: the frame refused, a pong, 104,
// 107, or the command with exactly the values that were sent.
import fc from 'fast-check'
import t from 'tap'
import { CommandParser, MAX_COMMAND_ID, METHODS, type Method, type ParsedFrame, type ParsedLine } from '../../lib/protocols/centrifuge/commands.js'
import { RawNumber, toJson } from '../arbitraries.js'
import { fuzzParameters } from './harness.js'

// ---------------------------------------------------------------- the model

type Kind = 'string' | 'channel' | 'token' | 'bool' | 'uint' | 'int32' | 'subs' | 'headers' | 'since' | 'object' | 'json'

interface Field { kind: Kind, required?: true }

const channel: Field = { kind: 'channel', required: true }

/** Every method's known fields, restated from client.proto independently of the parser's schemas. */
const FIELDS: Record<Method, Record<string, Field>> = {
  connect: { token: { kind: 'string' }, data: { kind: 'json' }, name: { kind: 'string' }, version: { kind: 'string' }, subs: { kind: 'subs' }, headers: { kind: 'headers' } },
  subscribe: {
    channel,
    token: { kind: 'string' },
    data: { kind: 'json' },
    recover: { kind: 'bool' },
    offset: { kind: 'uint' },
    epoch: { kind: 'string' },
    positioned: { kind: 'bool' },
    recoverable: { kind: 'bool' },
    join_leave: { kind: 'bool' },
    flag: { kind: 'uint' },
    delta: { kind: 'string' },
    tf: { kind: 'object' },
    type: { kind: 'int32' }
  },
  unsubscribe: { channel },
  publish: { channel, data: { kind: 'json' }, type: { kind: 'int32' } },
  presence: { channel },
  presence_stats: { channel },
  history: { channel, limit: { kind: 'int32' }, since: { kind: 'since' }, reverse: { kind: 'bool' } },
  ping: {},
  send: { data: { kind: 'json' } },
  rpc: { method: { kind: 'string' }, data: { kind: 'json' } },
  refresh: { token: { kind: 'token', required: true } },
  sub_refresh: { channel, token: { kind: 'token', required: true }, type: { kind: 'int32' } }
}

const text = fc.oneof(fc.string({ maxLength: 12 }), fc.string({ maxLength: 6, unit: 'binary' }))
const nonEmpty = fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.string({ minLength: 1, maxLength: 6, unit: 'binary' }))
const uint = fc.oneof(fc.nat({ max: 1000 }), fc.maxSafeNat())
const int32 = fc.integer({ min: -0x80000000, max: 0x7FFFFFFF })
const position = fc.record({ offset: uint, epoch: text }, { requiredKeys: [] })
const json = fc.jsonValue({ maxDepth: 3 })

const VALID: Record<Kind, fc.Arbitrary<unknown>> = {
  string: text,
  channel: nonEmpty,
  token: nonEmpty,
  bool: fc.boolean(),
  uint,
  int32,
  subs: fc.dictionary(nonEmpty, fc.record({ recover: fc.boolean(), offset: uint, epoch: text }, { requiredKeys: [] }), { maxKeys: 3 }),
  headers: fc.dictionary(text, text, { maxKeys: 3 }),
  since: position,
  object: fc.dictionary(text, json, { maxKeys: 3 }),
  json
}

const notObject = fc.oneof(fc.integer(), fc.string({ maxLength: 4 }), fc.boolean(), fc.constant(null), fc.array(json, { maxLength: 2 }))
const notString = fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(json, { maxLength: 2 }), fc.dictionary(text, json, { maxKeys: 2 }))
const notBool = fc.oneof(fc.integer(), fc.string({ maxLength: 4 }), fc.constant(null), fc.constant([]), fc.constant({}))
const fraction = fc.double({ noInteger: true, noNaN: true, noDefaultInfinity: true })
const notUint = fc.oneof(
  fc.integer({ max: -1 }), fraction, fc.constant(2 ** 53), fc.string({ maxLength: 4 }), fc.constant(null), fc.boolean(),
  fc.constantFrom(new RawNumber('1e400'), new RawNumber('9007199254740993'), new RawNumber('-1e400'))
)
const notInt32 = fc.oneof(
  fc.integer({ min: 0x80000000, max: Number.MAX_SAFE_INTEGER }), fc.integer({ min: Number.MIN_SAFE_INTEGER, max: -0x80000001 }),
  fraction, fc.string({ maxLength: 4 }), fc.constant(null), fc.boolean(), fc.constant(new RawNumber('1e400'))
)

/** A value the field's schema must refuse (absent for `json`: any value is data). */
const INVALID: Record<Exclude<Kind, 'json'>, fc.Arbitrary<unknown>> = {
  string: notString,
  channel: fc.oneof(fc.constant(''), notString),
  token: fc.oneof(fc.constant(''), notString),
  bool: notBool,
  uint: notUint,
  int32: notInt32,
  subs: fc.oneof(
    notObject,
    fc.tuple(nonEmpty, fc.oneof(notObject, fc.record({ offset: notUint }), fc.record({ recover: notBool }), fc.record({ epoch: notString })))
      .map(([key, entry]) => ({ [key]: entry })),
    fc.constant({ '': {} })
  ),
  headers: fc.oneof(notObject, fc.tuple(text, notString).map(([key, value]) => ({ [key]: value }))),
  since: fc.oneof(notObject, fc.record({ offset: notUint }), fc.record({ epoch: notString })),
  object: notObject
}

/** Extra fields no method knows (kept as they are). */
function extras (known: string[]): fc.Arbitrary<Record<string, unknown>> {
  return fc.dictionary(fc.string({ maxLength: 8 }).filter((key) => !known.includes(key)), json, { maxKeys: 3 })
}

interface ParamsSpec { value: unknown, valid: boolean }

function params (method: Method): fc.Arbitrary<ParamsSpec> {
  const fields = FIELDS[method]
  const names = Object.keys(fields)
  const required = names.filter((name) => fields[name]?.required === true)
  const valid = fc.tuple(
    fc.record(Object.fromEntries(names.map((name) => [name, VALID[(fields[name] as Field).kind]])), { requiredKeys: required }),
    extras(names)
  ).map(([known, extra]) => ({ ...extra, ...known }))
  const breakable = names.filter((name) => (fields[name] as Field).kind !== 'json')
  const broken: Array<fc.Arbitrary<unknown>> = [notObject]
  if (breakable.length > 0) {
    broken.push(fc.tuple(valid, fc.constantFrom(...breakable)).chain(([value, name]) =>
      INVALID[(fields[name] as Field).kind as Exclude<Kind, 'json'>].map((bad) => ({ ...value, [name]: bad }))))
  }
  if (required.length > 0) {
    broken.push(fc.tuple(valid, fc.constantFrom(...required)).map(([value, name]) => Object.fromEntries(Object.entries(value).filter(([key]) => key !== name))))
  }
  return fc.oneof(
    { weight: 3, arbitrary: valid.map((value) => ({ value, valid: true })) },
    { weight: 2, arbitrary: fc.oneof(...broken).map((value) => ({ value, valid: false })) }
  )
}

const PARAMS = Object.fromEntries(METHODS.map((method) => [method, params(method)])) as Record<Method, fc.Arbitrary<ParamsSpec>>

type IdSpec = { kind: 'absent' } | { kind: 'valid', id: number } | { kind: 'invalid', id: unknown }

const idSpec: fc.Arbitrary<IdSpec> = fc.oneof(
  { weight: 2, arbitrary: fc.constant({ kind: 'absent' as const }) },
  { weight: 5, arbitrary: fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1, max: MAX_COMMAND_ID })).map((id) => ({ kind: 'valid' as const, id })) },
  {
    weight: 2,
    arbitrary: fc.oneof(
      fc.constant(0), fc.integer({ max: -1 }), fc.integer({ min: MAX_COMMAND_ID + 1, max: Number.MAX_SAFE_INTEGER }), fraction,
      fc.constant(null), fc.boolean(), fc.string({ maxLength: 4 }), fc.constant([1]),
      fc.constantFrom(new RawNumber('1e400'), new RawNumber('4294967296'), new RawNumber('99999999999999999999'))
    ).map((id) => ({ kind: 'invalid' as const, id }))
  }
)

interface LineSpec { id: IdSpec, methods: Array<[Method, ParamsSpec]>, extra: Record<string, unknown> }

type Methods = Array<[Method, ParamsSpec]>

const oneMethod: fc.Arbitrary<Methods> = fc.constantFrom(...METHODS).chain((m) => PARAMS[m].map((p): Methods => [[m, p]]))
const noMethod: fc.Arbitrary<Methods> = fc.constant([])
const severalMethods: fc.Arbitrary<Methods> = fc.uniqueArray(fc.constantFrom(...METHODS), { minLength: 2, maxLength: 3 })
  .chain((ms) => fc.tuple(...ms.map((m) => PARAMS[m].map((p): [Method, ParamsSpec] => [m, p]))))

const lineSpec: fc.Arbitrary<LineSpec> = fc.record({
  id: idSpec,
  methods: fc.oneof({ weight: 8, arbitrary: oneMethod }, { weight: 1, arbitrary: noMethod }, { weight: 1, arbitrary: severalMethods }),
  extra: extras(['id', ...METHODS])
})

function lineText (spec: LineSpec): string {
  const object: Record<string, unknown> = { ...spec.extra }
  if (spec.id.kind !== 'absent') object.id = spec.id.id
  for (const [method, p] of spec.methods) object[method] = p.value
  return toJson(object)
}

/** What the parser must make of the line: a ParsedLine, or `null` for a refused frame. */
function expected (spec: LineSpec): ParsedLine | null {
  if (spec.id.kind === 'invalid') return null
  const id = spec.id.kind === 'valid' ? spec.id.id : undefined
  if (spec.methods.length === 0) {
    return id === undefined ? { kind: 'pong' } : { kind: 'invalid', id, code: 104, message: 'method not found', detail: 'no known method' }
  }
  if (spec.methods.length > 1) {
    return id === undefined ? null : { kind: 'invalid', id, code: 107, message: 'bad request', detail: 'more than one method' }
  }
  const [method, p] = spec.methods[0] as [Method, ParamsSpec]
  if (method === 'send') return p.valid ? { kind: 'command', command: { id: 0, method, params: roundTrip(p.value) } } as ParsedLine : null
  if (id === undefined) return null
  if (!p.valid) return { kind: 'invalid', id, method, code: 107, message: 'bad request', detail: '(any)' }
  return { kind: 'command', command: { id, method, params: roundTrip(p.value) } } as ParsedLine
}

/** The value as JSON carries it (-0 becomes 0). */
function roundTrip (value: unknown): unknown {
  return JSON.parse(toJson(value))
}

/** Checks `frame`'s shape whatever it is, and returns why it is wrong (or null). */
function malformed (parsed: ParsedFrame, max: number): string | null {
  if (!parsed.ok) return typeof parsed.reason === 'string' && parsed.reason.length > 0 ? null : 'a refusal without a reason'
  if (parsed.lines.length === 0 || parsed.lines.length > max) return `${parsed.lines.length} lines`
  for (const line of parsed.lines) {
    if (line.kind === 'pong') continue
    if (line.kind === 'invalid') {
      if (!(Number.isInteger(line.id) && line.id >= 1 && line.id <= MAX_COMMAND_ID)) return `invalid with id ${line.id}`
      if (!((line.code === 104 && line.message === 'method not found') || (line.code === 107 && line.message === 'bad request'))) return `invalid ${line.code} ${line.message}`
      continue
    }
    if (line.kind !== 'command') return `kind ${String((line as { kind: unknown }).kind)}`
    const { id, method, params } = line.command
    if (!METHODS.includes(method)) return `method ${String(method)}`
    if (method === 'send' ? id !== 0 : !(Number.isInteger(id) && id >= 1 && id <= MAX_COMMAND_ID)) return `${method} with id ${id}`
    if (typeof params !== 'object' || params === null || Array.isArray(params)) return `${method} params ${JSON.stringify(params)}`
  }
  return null
}

// ---------------------------------------------------------------- properties

const parser = new CommandParser()
const MAX = 256

function parseSafely (frame: string): ParsedFrame {
  try {
    return parser.parse(frame)
  } catch (err) {
    throw new Error(`parse threw on ${JSON.stringify(frame.slice(0, 300))}`, { cause: err })
  }
}

t.test('any string: never a throw, always a well-formed answer', async (t) => {
  const fragment = fc.constantFrom('{', '}', '[', ']', ':', ',', '"', '\n', '\r', ' ', '\\', '"id"', '"connect"', '"subscribe"', '"send"',
    '"channel"', '1', '0', '-1', '1e400', '4294967296', 'null', 'true', '{}', '""', '"\\u0000"', '\u2028', '\ud800')
  const frames = fc.oneof(
    fc.string({ maxLength: 200, unit: 'binary' }),
    fc.string({ maxLength: 200, unit: fc.constantFrom('{', '}', '\n', '"', ':', ',', 'a', '1') }),
    fc.array(fragment, { maxLength: 60 }).map((parts) => parts.join(''))
  )
  fc.assert(fc.property(frames, (frame) => {
    const problem = malformed(parseSafely(frame), MAX)
    if (problem !== null) throw new Error(`${problem} for ${JSON.stringify(frame)}`)
  }), fuzzParameters(3000))
  t.pass()
})

t.test('any JSON values as lines: non-objects refuse the frame; objects get a well-formed answer', async (t) => {
  const value = fc.oneof({ weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }) }, { weight: 3, arbitrary: fc.dictionary(fc.constantFrom('id', ...METHODS, 'x'), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 4 }) })
  fc.assert(fc.property(fc.array(value, { minLength: 1, maxLength: 6 }), (values) => {
    const frame = values.map((v) => JSON.stringify(v)).join('\n')
    const parsed = parseSafely(frame)
    const problem = malformed(parsed, MAX)
    if (problem !== null) throw new Error(`${problem} for ${frame}`)
    const allObjects = values.every((v) => typeof v === 'object' && v !== null && !Array.isArray(v))
    if (!allObjects && parsed.ok) throw new Error(`accepted a non-object line: ${frame}`)
  }), fuzzParameters(2000))
  t.pass()
})

t.test('generated commands (extra fields, wrong types, huge ids, several methods) parse as the model predicts', async (t) => {
  const seen = new Map<string, number>()
  fc.assert(fc.property(fc.array(lineSpec, { minLength: 1, maxLength: 5 }), fc.array(fc.constantFrom('', ' ', '\r', '\t'), { maxLength: 5 }), (specs, blanks) => {
    const texts = specs.map(lineText)
    // Blank lines between the commands: they must not change anything.
    const frame = texts.flatMap((text, i) => i < blanks.length ? [text, blanks[i] as string] : [text]).join('\n')
    const parsed = parseSafely(frame)
    const wanted = specs.map(expected)
    const firstBad = wanted.indexOf(null)
    if (firstBad !== -1) {
      if (parsed.ok) throw new Error(`accepted ${frame}; line ${firstBad + 1} should refuse it`)
      seen.set('refused', (seen.get('refused') ?? 0) + 1)
      return
    }
    if (!parsed.ok) throw new Error(`refused ${frame}: ${parsed.reason}`)
    if (parsed.lines.length !== wanted.length) throw new Error(`${parsed.lines.length} lines for ${wanted.length}`)
    parsed.lines.forEach((got, i) => {
      const want = wanted[i] as ParsedLine
      const comparable = got.kind === 'invalid' && want.kind === 'invalid' && want.detail === '(any)' ? { ...got, detail: '(any)' } : got
      if (!deepEqual(comparable, want)) {
        throw new Error(`line ${i + 1} ${texts[i]}\n  got  ${JSON.stringify(got)}\n  want ${JSON.stringify(want)}`)
      }
      const key = got.kind === 'command' ? `command ${got.command.method}` : got.kind === 'invalid' ? `invalid ${got.code}` : 'pong'
      seen.set(key, (seen.get(key) ?? 0) + 1)
    })
  }), fuzzParameters(3000))
  // Every outcome was reached, not just the easy ones.
  for (const key of ['refused', 'pong', 'invalid 104', 'invalid 107', ...METHODS.map((m) => `command ${m}`)]) {
    t.ok((seen.get(key) ?? 0) > 0, `${key}: ${seen.get(key) ?? 0}`)
  }
})

t.test('valid commands keep every value, unknown fields included, and the parser does not change them', async (t) => {
  const valid = fc.constantFrom(...METHODS).chain((method) => fc.tuple(
    fc.constant(method),
    fc.integer({ min: 1, max: MAX_COMMAND_ID }),
    PARAMS[method].filter((p) => p.valid).map((p) => p.value as Record<string, unknown>)
  ))
  fc.assert(fc.property(valid, ([method, id, value]) => {
    const text = toJson(method === 'send' ? { [method]: value } : { id, [method]: value })
    const parsed = parseSafely(text)
    const line = parsed.ok ? parsed.lines[0] : undefined
    if (line?.kind !== 'command') throw new Error(`not a command: ${text} -> ${JSON.stringify(parsed)}`)
    if (line.command.method !== method || line.command.id !== (method === 'send' ? 0 : id)) throw new Error(`${text} -> ${JSON.stringify(line)}`)
    if (!deepEqual(line.command.params, roundTrip(value))) throw new Error(`params changed: ${text} -> ${JSON.stringify(line.command.params)}`)
  }), fuzzParameters(2000))
  t.pass()
})

t.test('the cap: frames of pongs just under, at and over it', async (t) => {
  const small = new CommandParser({ maxCommandsPerFrame: 8 })
  fc.assert(fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 10 }), (count, blanks) => {
    const frame = Array.from({ length: count }, () => '{}').join('\n') + '\n'.repeat(blanks)
    const parsed = small.parse(frame)
    if (parsed.ok !== (count <= 8)) throw new Error(`${count} pongs: ${JSON.stringify(parsed)}`)
  }), fuzzParameters(200))
  t.pass()
})

/** Structural equality of JSON values (key order ignored). */
function deepEqual (a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  if (ka.length !== kb.length) return false
  return ka.every((k) => Object.hasOwn(b, k) && deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
}
