// Properties of the origin policy, as a pure function: it never throws, and
// it admits exactly what its rules say: same scheme, host and port for the
// default policy, an entry's scheme, host (or subdomain) and port for an
// allowlist, and only origins written as browsers write them.
import fc from 'fast-check'
import t from 'tap'
import { parseOriginPolicy } from '../../lib/origin.js'
import { anyHost, anyOrigin, defaultPort, HOSTNAMES, originParts, originText, PORTS, type OriginParts } from '../arbitraries.js'
import { fuzzParameters } from './harness.js'

const schemes = fc.constantFrom('http', 'https', 'ftp', '', 'HTTP')

// What a browser could have sent: lower or upper case, a trailing slash at
// most, never a default port.
function asBrowserSends (origin: OriginParts): boolean {
  return ['plain', 'upper', 'slash'].includes(origin.variant) && (origin.port === undefined || origin.port !== defaultPort(origin.scheme))
}

function samePort (a: { scheme: string, port: number | undefined }, b: { scheme: string, port: number | undefined }): boolean {
  return (a.port ?? defaultPort(a.scheme)) === (b.port ?? defaultPort(b.scheme))
}

/** Origins like `target`: each part kept or changed, written in any variant. */
function near (target: { scheme: string, hostname: string, port: number | undefined }): fc.Arbitrary<OriginParts> {
  return fc.record({
    scheme: fc.oneof(fc.constant(target.scheme), originParts.map((p) => p.scheme)),
    hostname: fc.oneof(fc.constant(target.hostname), fc.constant(target.hostname.toUpperCase()), fc.constantFrom(...HOSTNAMES)),
    port: fc.oneof(fc.constant(target.port), fc.constantFrom(...PORTS)),
    variant: originParts.map((p) => p.variant)
  })
}

t.test('no policy throws, whatever the origin, host and scheme', async (t) => {
  const entries = fc.array(originParts.map((p) => `${p.scheme.toLowerCase()}://${p.hostname.replace(/^\[.*\]$/, 'v6.example')}${p.port === undefined ? '' : ':' + p.port}`), { maxLength: 4 })
  const wildcards = fc.array(fc.constantFrom('https://*.example', 'http://*.app.example:3000', 'capacitor://*.localhost'), { maxLength: 2 })
  await fc.assert(fc.property(entries, wildcards, anyOrigin, anyHost, schemes, (exact, wild, origin, host, scheme) => {
    for (const policy of [parseOriginPolicy(undefined), parseOriginPolicy([...exact, ...wild]), parseOriginPolicy(['*'])]) {
      if (typeof policy(origin, host, scheme) !== 'boolean') throw new Error('not a boolean')
    }
  }), fuzzParameters(300))
  t.pass()
})

t.test('same-origin admits exactly the request\'s scheme, host and port', async (t) => {
  const request = fc.record({
    scheme: fc.constantFrom('http', 'https'),
    hostname: fc.constantFrom(...HOSTNAMES),
    port: fc.constantFrom(...PORTS),
    explicitDefault: fc.boolean()
  })
  const same = parseOriginPolicy(undefined)
  let admittedCount = 0
  // Half the origins are the request's own, each part possibly changed.
  const pair = request.chain((req) => fc.tuple(fc.oneof(originParts, near(req)), fc.constant(req)))
  await fc.assert(fc.property(pair, ([origin, req]) => {
    const port = req.port ?? (req.explicitDefault ? defaultPort(req.scheme) : undefined) // Host may spell the default port
    const host = req.hostname + (port === undefined ? '' : `:${port}`)
    const expected = asBrowserSends(origin) && origin.scheme.toLowerCase() === req.scheme &&
      origin.hostname.toLowerCase() === req.hostname.toLowerCase() && samePort({ scheme: origin.scheme.toLowerCase(), port: origin.port }, req)
    const admitted = same(originText(origin), host, req.scheme)
    if (admitted) admittedCount++
    if (admitted !== expected) throw new Error(`${originText(origin)} for ${req.scheme}://${host}: ${admitted ? 'admitted' : 'refused'}`)
  }), fuzzParameters(300))
  t.ok(admittedCount > 5, `some origins were admitted (${admittedCount})`)

  // The same pairs must be admitted however the Origin is cased.
  await fc.assert(fc.property(fc.constantFrom('http', 'https'), fc.constantFrom(...HOSTNAMES), fc.constantFrom(3000, 8443, undefined), (scheme, hostname, port) => {
    const authority = hostname + (port === undefined ? '' : `:${port}`)
    if (!same(`${scheme}://${authority}`.toUpperCase(), authority, scheme)) throw new Error(`${scheme}://${authority} refused`)
  }), fuzzParameters(50))
  t.pass()
})

t.test('an allowlist admits exactly its entries and their subdomains', async (t) => {
  const entry = fc.record({
    scheme: fc.constantFrom('http', 'https', 'capacitor'),
    hostname: fc.constantFrom('app.example', 'b.app.example', 'example', 'localhost', '127.0.0.1'),
    port: fc.constantFrom(...PORTS),
    wildcard: fc.boolean(),
    upper: fc.boolean()
  }).map((e) => ({ ...e, wildcard: e.wildcard && e.hostname !== '127.0.0.1' })) // no subdomains of an IP address
  let admittedCount = 0
  const pair = fc.array(entry, { minLength: 1, maxLength: 4 }).chain((entries) => fc.tuple(
    fc.constant(entries),
    fc.oneof(originParts, fc.constantFrom(...entries).chain((e) => near({ ...e, hostname: e.wildcard ? `x.${e.hostname}` : e.hostname })))
  ))
  await fc.assert(fc.property(pair, ([entries, origin]) => {
    const texts = entries.map((e) => {
      const text = `${e.scheme}://${e.wildcard ? '*.' : ''}${e.hostname}${e.port === undefined ? '' : ':' + e.port}`
      return e.upper ? text.toUpperCase() : text
    })
    const policy = parseOriginPolicy(texts)
    const scheme = origin.scheme.toLowerCase()
    const hostname = origin.hostname.toLowerCase()
    const expected = asBrowserSends(origin) && entries.some((e) => e.scheme === scheme && samePort({ scheme, port: origin.port }, e) &&
      (e.wildcard ? hostname.endsWith('.' + e.hostname) : hostname === e.hostname))
    const admitted = policy(originText(origin), undefined, 'https')
    if (admitted) admittedCount++
    if (admitted !== expected) throw new Error(`${originText(origin)} with ${JSON.stringify(texts)}: ${admitted ? 'admitted' : 'refused'}`)
    if (policy('null', undefined, 'https')) throw new Error(`${JSON.stringify(texts)} admits the opaque origin`)
  }), fuzzParameters(300))
  t.ok(admittedCount > 5, `some origins were admitted (${admittedCount})`)
})
