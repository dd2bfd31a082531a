// fast-check arbitraries for everything a client can send, and models of
// what the server must answer. Shared by the property tests in test/fuzz/;
// a new parser of client input adds its arbitrary and its model here.
import { createHmac } from 'node:crypto'
import fc from 'fast-check'
import { SECRET } from './helpers.js'

/** A number written into JSON as is: values JSON.stringify cannot write (1e400, 2^53 + 1). */
export class RawNumber {
  constructor (readonly text: string) {}
}

/** JSON text for `value`, writing RawNumber instances verbatim. */
export function toJson (value: unknown): string {
  if (value instanceof RawNumber) return value.text
  if (Array.isArray(value)) return '[' + value.map(toJson).join(',') + ']'
  if (value !== null && typeof value === 'object') {
    return '{' + Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => JSON.stringify(k) + ':' + toJson(v)).join(',') + '}'
  }
  return JSON.stringify(value) ?? 'null'
}

// ---------------------------------------------------------------- tokens

/** A date claim: seconds from now (never within a minute of it), a fixed value, or raw JSON. */
export type DateClaim = { offset: number } | { value: unknown }

export interface TokenSpec {
  header: unknown
  /** Claims, with date claims as DateClaim; or the payload's JSON text as is. */
  payload: { claims: Record<string, unknown>, dates: Record<string, DateClaim> } | { text: string }
  signature: 'right' | 'other hash' | 'wrong key' | 'empty' | { garbage: string }
}

const HS = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' } as const

const alg = fc.oneof(
  { weight: 14, arbitrary: fc.constantFrom('HS256', 'HS384', 'HS512') },
  { weight: 2, arbitrary: fc.constantFrom('RS256', 'ES256', 'PS256', 'EdDSA', 'none', 'None', 'hs256', '') },
  { weight: 1, arbitrary: fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.constant(null), fc.constant(['HS256'])) }
)

const crit = fc.oneof(
  { weight: 12, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.constant([]) },
  { weight: 1, arbitrary: fc.array(fc.string({ maxLength: 6 }), { minLength: 1, maxLength: 3 }) },
  { weight: 2, arbitrary: fc.constantFrom<unknown>('b64', 0, false, null, '', 1, { x: 1 }) }
)

const header = fc.oneof(
  { weight: 9, arbitrary: fc.record({ alg, typ: fc.constantFrom(undefined, 'JWT', 'at+jwt', 7), crit, kid: fc.option(fc.string({ maxLength: 8 }), { nil: undefined }) }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) }
)

const userClaim = fc.oneof(
  { weight: 6, arbitrary: fc.string({ minLength: 1, maxLength: 24 }) },
  { weight: 1, arbitrary: fc.integer({ min: 505, max: 520 }).map((n) => 'x'.repeat(n)) },
  { weight: 1, arbitrary: fc.integer({ min: 505, max: 520 }).map((n) => '😀'.repeat(n)) },
  { weight: 2, arbitrary: fc.oneof(fc.integer(), fc.maxSafeInteger(), fc.constant(-Number.MAX_SAFE_INTEGER)) },
  {
    weight: 2,
    arbitrary: fc.oneof(
      fc.constantFrom(new RawNumber('9007199254740993'), new RawNumber('9007199254740992'), new RawNumber('1e300'), new RawNumber('-1e400')),
      fc.double({ noNaN: true, noDefaultInfinity: true }).filter((n) => !Number.isInteger(n))
    )
  },
  { weight: 1, arbitrary: fc.constantFrom<unknown>('', null, true, [], {}, ['alice'], undefined) }
)

// Far from now, so that the 2 s tolerance and the time between signing and
// checking never decide the outcome.
const dateClaim: fc.Arbitrary<DateClaim> = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 60, max: 10_000_000 }).chain((s) => fc.constantFrom({ offset: s }, { offset: -s }, { offset: s + 0.5 }, { offset: -s - 0.5 })) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>('1700000000', null, true, {}, [1], new RawNumber('1e400'), new RawNumber('-1e400'), new RawNumber('1e300'), new RawNumber('-1e300'), 8.64e12, 8.64e12 + 1, 0).map((value) => ({ value })) }
)

const scope = fc.constantFrom<unknown>(undefined, 'broadcast', 'read broadcast', 'broadcastx', ['broadcast'], ['read'], 7, '')

const claims = fc.record({
  sub: userClaim,
  scope,
  extra: fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined })
}, { requiredKeys: ['sub'] }) // userClaim includes undefined: no `sub`

const dates = fc.record({ exp: dateClaim, nbf: dateClaim, iat: dateClaim }, { requiredKeys: [] })

const payload = fc.oneof(
  { weight: 9, arbitrary: fc.record({ claims, dates }) },
  { weight: 1, arbitrary: fc.oneof(fc.string({ maxLength: 20 }), fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v))).map((text) => ({ text })) }
)

const signature = fc.oneof(
  { weight: 14, arbitrary: fc.constant<TokenSpec['signature']>('right') },
  { weight: 3, arbitrary: fc.constantFrom<TokenSpec['signature']>('other hash', 'wrong key', 'empty') },
  { weight: 1, arbitrary: fc.oneof(fc.stringMatching(/^[\w-]{0,60}$/), fc.string({ maxLength: 20 })).map((garbage) => ({ garbage })) }
)

/** Tokens built from parts: most are plausible, each part may be wrong. */
export const tokenSpec: fc.Arbitrary<TokenSpec> = fc.record({ header, payload, signature })

function payloadText (spec: TokenSpec, now: number): string {
  if ('text' in spec.payload) return spec.payload.text
  const values: Record<string, unknown> = { ...spec.payload.claims }
  for (const [claim, date] of Object.entries(spec.payload.dates)) {
    values[claim] = 'offset' in date ? now + date.offset : date.value
  }
  return toJson(values)
}

/** The compact token for `spec`, its times relative to `now` (seconds). */
export function tokenOf (spec: TokenSpec, now: number): string {
  const input = Buffer.from(toJson(spec.header)).toString('base64url') + '.' + Buffer.from(payloadText(spec, now)).toString('base64url')
  const alg = (spec.header as { alg?: unknown } | null)?.alg
  const hash = typeof alg === 'string' && Object.hasOwn(HS, alg) ? HS[alg as keyof typeof HS] : 'sha256'
  const sign = (key: string, algorithm: string): string => createHmac(algorithm, key).update(input).digest('base64url')
  switch (spec.signature) {
    case 'right': return `${input}.${sign(SECRET, hash)}`
    case 'other hash': return `${input}.${sign(SECRET, hash === 'sha256' ? 'sha512' : 'sha256')}`
    case 'wrong key': return `${input}.${sign('another-secret-another-secret-xx', hash)}`
    case 'empty': return `${input}.`
    default: return `${input}.${spec.signature.garbage}`
  }
}

export type TokenVerdict = 'valid' | 'invalid' | 'expired'

/**
 * What verifying `spec` must conclude with the plugin's defaults (HS256/384/
 * 512 on SECRET, 2 s tolerance, no crit extension): an independent model of
 * fast-jwt's checks, in its order, and of ours after them.
 */
export function verdictOf (spec: TokenSpec, now: number): { verdict: TokenVerdict, claims?: Record<string, unknown> } {
  const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)
  const head: unknown = spec.header
  let claims: unknown
  try {
    claims = JSON.parse(payloadText(spec, now))
  } catch {
    return { verdict: 'invalid' }
  }
  if (!isObject(head) || !isObject(claims)) return { verdict: 'invalid' }
  const alg = head.alg
  if (spec.signature !== 'right' || typeof alg !== 'string' || !Object.hasOwn(HS, alg)) return { verdict: 'invalid' }
  if (head.crit !== undefined && head.crit !== null && head.crit !== false && head.crit !== 0 && head.crit !== '') return { verdict: 'invalid' }
  // A NumericDate must be a time a JavaScript Date holds (year 275760).
  const isDate = (v: unknown): boolean => typeof v === 'number' && Math.abs(v) <= 8.64e12
  const tolerance = 2
  // fast-jwt checks nbf, then exp; the plugin then requires both to be dates.
  if ('nbf' in claims) {
    if (typeof claims.nbf !== 'number' || claims.nbf - tolerance > now) return { verdict: 'invalid' }
  }
  if ('exp' in claims) {
    if (typeof claims.exp !== 'number') return { verdict: 'invalid' }
    if (claims.exp + tolerance < now) return { verdict: isDate(claims.exp) ? 'expired' : 'invalid' }
  }
  if (('exp' in claims && !isDate(claims.exp)) || ('nbf' in claims && !isDate(claims.nbf))) return { verdict: 'invalid' }
  return { verdict: 'valid', claims }
}

/** Whether `value` names a user as the plugin accepts it. */
export function isUserClaim (value: unknown): boolean {
  if (typeof value === 'number') return Number.isSafeInteger(value)
  return typeof value === 'string' && value !== '' && [...value].length <= 512
}

/** Whether claims grant the `broadcast` scope. */
export function hasBroadcastScope (claims: Record<string, unknown>): boolean {
  const scope = claims.scope
  if (typeof scope === 'string') return scope.split(' ').includes('broadcast')
  return Array.isArray(scope) && scope.includes('broadcast')
}

// ---------------------------------------------------------------- origins

export const HOSTNAMES = ['app.example', 'APP.example', 'b.app.example', 'evil.example', '127.0.0.1', '[::1]', 'localhost'] as const
export const PORTS = [undefined, 80, 443, 3000, 8443] as const

export interface OriginParts {
  scheme: string
  hostname: string
  port: number | undefined
  /** How the text is written: as a browser does, or with parts a browser never sends. */
  variant: 'plain' | 'upper' | 'slash' | 'user' | 'path' | 'query'
}

export const originParts: fc.Arbitrary<OriginParts> = fc.record({
  scheme: fc.constantFrom('http', 'https', 'HTTPS', 'ftp', 'ws', 'wss', 'file', 'javascript'),
  hostname: fc.constantFrom(...HOSTNAMES),
  port: fc.constantFrom(...PORTS),
  variant: fc.constantFrom('plain', 'plain', 'plain', 'upper', 'slash', 'user', 'path', 'query')
})

export function originText ({ scheme, hostname, port, variant }: OriginParts): string {
  const authority = hostname + (port === undefined ? '' : `:${port}`)
  switch (variant) {
    case 'plain': return `${scheme}://${authority}`
    case 'upper': return `${scheme}://${authority}`.toUpperCase()
    case 'slash': return `${scheme}://${authority}/`
    case 'user': return `${scheme}://user@${authority}`
    case 'path': return `${scheme}://${authority}/app`
    case 'query': return `${scheme}://${authority}?x`
  }
}

/** Origin strings of every shape: from parts, random URLs, random text. */
export const anyOrigin: fc.Arbitrary<string> = fc.oneof(
  originParts.map(originText),
  fc.webUrl({ withQueryParameters: true, withFragments: true }),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom('null', '', '*', 'http://', 'http://:80', 'http://[::1', 'https://a..b', 'http://%00', 'http://a b')
)

/** Host header values of every shape. */
export const anyHost: fc.Arbitrary<string | undefined> = fc.oneof(
  fc.record({ hostname: fc.constantFrom(...HOSTNAMES), port: fc.constantFrom(...PORTS) }).map(({ hostname, port }) => hostname + (port === undefined ? '' : `:${port}`)),
  fc.string({ maxLength: 30 }),
  fc.constantFrom(undefined, '', 'user@app.example', 'app.example/x', 'app.example:99999', 'app.example:')
)

export function defaultPort (scheme: string): number | undefined {
  return { http: 80, https: 443 }[scheme.toLowerCase()]
}

// ---------------------------------------------------------------- broadcast bodies

const userId = fc.oneof(
  { weight: 8, arbitrary: fc.string({ minLength: 1, maxLength: 16 }) },
  { weight: 1, arbitrary: fc.constantFrom('x'.repeat(512), '😀'.repeat(512)) }
)
// Not ['a']: Fastify's Ajv coerces a one-item array to its item (coerceTypes: 'array').
const badUserId = fc.constantFrom<unknown>('', 'x'.repeat(513), '😀'.repeat(513), null, {}, [], ['a', 'b'])

/** Text of bodies the route must accept (202). */
export const validBody: fc.Arbitrary<string> = fc.record({
  data: fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.integer({ min: 0, max: 100 }).map(nestedArrays)),
  users: fc.option(fc.array(userId, { maxLength: 5 }), { nil: undefined }),
  except: fc.option(fc.array(userId, { maxLength: 5 }), { nil: undefined })
}, { requiredKeys: ['data'] }).map((body) => JSON.stringify(body))

/** Text of bodies the route must refuse with 400 FST_FANOUT_INVALID_BROADCAST. */
export const invalidBody: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom({}, { users: ['a'] }, { except: [] }).map((v) => JSON.stringify(v)), // no data
  fc.jsonValue({ maxDepth: 2 }).filter((v) => v === null || typeof v !== 'object' || Array.isArray(v)).map((v) => JSON.stringify(v)), // not an object
  fc.tuple(fc.jsonValue({ maxDepth: 2 }), fc.string({ minLength: 1, maxLength: 8 }).filter((k) => !['data', 'users', 'except'].includes(k)), fc.jsonValue({ maxDepth: 1 }))
    .map(([data, key, value]) => JSON.stringify({ data, [key]: value })), // unknown property
  fc.tuple(fc.constantFrom('users', 'except'), fc.array(userId, { maxLength: 3 }), badUserId, fc.nat(3))
    .map(([key, ids, bad, at]) => JSON.stringify({ data: 1, [key]: [...ids.slice(0, at), bad, ...ids.slice(at)] })), // one bad id
  fc.constantFrom('users', 'except').map((key) => JSON.stringify({ data: 1, [key]: { id: 'a' } })), // not a list
  fc.constantFrom('users', 'except').map((key) => JSON.stringify({ data: 1, [key]: Array.from({ length: 10_001 }, (_, i) => `u${i}`) })), // too many
  // Too deep: written as text, as JSON.stringify could not write it.
  fc.tuple(fc.integer({ min: 101, max: 50_000 }), fc.boolean()).map(([depth, objects]) => objects
    ? '{"data":' + '{"a":'.repeat(depth) + '0' + '}'.repeat(depth) + '}'
    : '{"data":' + '['.repeat(depth) + ']'.repeat(depth) + '}')
// fc.jsonValue may write a "__proto__" key, which Fastify's parser refuses
// before the schema sees the body (FST_ERR_CTP_INVALID_JSON_BODY): those
// bodies belong to anyBodyText's documented answers, not to the schema's.
).filter((body) => !body.includes('"__proto__"'))

/** Any body text at all, parsable or not. */
export const anyBodyText: fc.Arbitrary<string> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 40 }),
  fc.constantFrom('', ' ', '{', '{"data":', '{"__proto__":{"x":1},"data":1}', '{"constructor":{"prototype":{}},"data":1}', '{"data":1}{"data":2}', '{"data":1e400}', '{"data":-0}')
)

/** [[...]] nested `depth` levels (0 is the number 0). */
export function nestedArrays (depth: number): unknown {
  let value: unknown = 0
  for (let i = 0; i < depth; i++) value = [value]
  return value
}
