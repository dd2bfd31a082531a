import t from 'tap'
import { parseOriginPolicy } from '../lib/origin.js'
import { build, connect, rejectedUpgrade, sample, token } from './helpers.js'

t.test('by default only same-origin browsers and non-browser clients may connect', async (t) => {
  const { url, wsUrl } = await build(t)
  const host = new URL(url).host

  await connect(t, wsUrl, token(), {}) // ws sends no Origin: a non-browser client
  await connect(t, wsUrl, token(), { origin: `http://${host}` })

  const foreign = await rejectedUpgrade(`${wsUrl}?token=${token()}`, { origin: 'https://evil.example' })
  t.equal(foreign.status, 403)
  t.equal(foreign.body.code, 'FST_FANOUT_ORIGIN_FORBIDDEN')
  t.match(foreign.body.message, 'https://evil.example')

  const opaque = await rejectedUpgrade(`${wsUrl}?token=${token()}`, { origin: 'null' })
  t.equal(opaque.status, 403, 'opaque origins (sandboxed frames) are not same-origin')

  const metrics = await (await fetch(`${url}/metrics`)).text()
  t.equal(sample(metrics, 'fanout_connections_rejected_total', 'reason="origin"'), 2)
})

t.test('same-origin compares the scheme: an http server admits only http:// pages of its host and port', async (t) => {
  const { url, wsUrl } = await build(t)
  const host = new URL(url).host
  // Each of these was admitted before: only host:port was compared.
  for (const origin of [`https://${host}`, `ftp://${host}`, `ws://${host}`, `http://${host}/x`, `http://user@${host}`]) {
    const rejection = await rejectedUpgrade(`${wsUrl}?token=${token()}`, { origin })
    t.equal(rejection.status, 403, `${origin} refused`)
    t.equal(rejection.body.code, 'FST_FANOUT_ORIGIN_FORBIDDEN')
  }
  await connect(t, wsUrl, token(), { origin: `HTTP://${host.toUpperCase()}` }) // origins compare without case
})

t.test('behind a TLS proxy with trustProxy, X-Forwarded-Proto and -Host make the page origin', async (t) => {
  const { wsUrl } = await build(t, {}, { trustProxy: true })
  const headers = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.example.com' }
  await connect(t, wsUrl, token(), { origin: 'https://app.example.com', headers })
  for (const origin of ['http://app.example.com', 'https://app.example.com:8443', 'https://evil.example']) {
    const rejection = await rejectedUpgrade(`${wsUrl}?token=${token()}`, { origin, headers })
    t.equal(rejection.status, 403, `${origin} refused`)
  }
  const untrusted = await build(t)
  const rejection = await rejectedUpgrade(`${untrusted.wsUrl}?token=${token()}`, { origin: 'https://app.example.com', headers })
  t.equal(rejection.status, 403, 'without trustProxy the forwarded headers count for nothing')
})

t.test('the origin is checked before the token: a foreign page learns nothing about tokens', async (t) => {
  const { wsUrl } = await build(t)
  const rejection = await rejectedUpgrade(wsUrl, { origin: 'https://evil.example' })
  t.equal(rejection.status, 403)
})

t.test('an allowlist takes exact origins and subdomain wildcards', async (t) => {
  const { wsUrl } = await build(t, { allowedOrigins: ['https://app.example.com', 'https://*.example.org'] })
  await connect(t, wsUrl, token(), { origin: 'https://app.example.com' })
  await connect(t, wsUrl, token(), { origin: 'https://eu.example.org' })
  for (const origin of ['https://example.org', 'http://eu.example.org', 'https://app.example.com.evil.net', 'https://other.example.com']) {
    const rejection = await rejectedUpgrade(`${wsUrl}?token=${token()}`, { origin })
    t.equal(rejection.status, 403, `${origin} refused`)
  }
})

t.test('origin policy rules', async (t) => {
  const exact = parseOriginPolicy(['https://App.Example.com:443', 'http://localhost:5173'])
  t.ok(exact('https://app.example.com', undefined, 'http'), 'case and default port do not matter')
  t.ok(exact('http://localhost:5173', undefined, 'http'))
  t.notOk(exact('http://localhost:5174', undefined, 'http'), 'ports must match')

  const wildcard = parseOriginPolicy(['https://*.example.com'])
  t.ok(wildcard('https://a.b.example.com', undefined, 'https'), 'any depth of subdomain')
  t.notOk(wildcard('https://example.com', undefined, 'https'), 'not the apex')
  t.notOk(wildcard('https://badexample.com', undefined, 'https'))
  t.notOk(wildcard('https://a.example.com:8443', undefined, 'https'), 'ports must match')
  t.notOk(wildcard('not a url', undefined, 'https'))

  const any = parseOriginPolicy(['*'])
  t.ok(any('https://anything.test', undefined, 'http'))

  const same = parseOriginPolicy(undefined)
  t.ok(same('http://127.0.0.1:3000', '127.0.0.1:3000', 'http'))
  t.ok(same('https://app.example.com', 'app.example.com', 'https'))
  t.ok(same('https://app.example.com', 'app.example.com:443', 'https'), 'the default port, as Host may spell it')
  t.ok(same('http://[::1]:3000', '[::1]:3000', 'http'))
  t.notOk(same('http://127.0.0.1:3001', '127.0.0.1:3000', 'http'))
  t.notOk(same('https://127.0.0.1:3000', '127.0.0.1:3000', 'http'), 'scheme must match')
  t.notOk(same('http://127.0.0.1:3000', '127.0.0.1:3000', 'https'), 'scheme must match')
  t.notOk(same('http://app.example.com:443', 'app.example.com:443', 'https'))
  t.notOk(same('http://127.0.0.1:3000', '127.0.0.1:3000', 'ftp'), 'only http and https requests')
  t.notOk(same('http://127.0.0.1:3000', undefined, 'http'), 'no Host header, no same origin')
  t.notOk(same('http://127.0.0.1:3000', '', 'http'))
  t.notOk(same('http://127.0.0.1', 'evil@127.0.0.1', 'http'), 'a Host that is not a plain host[:port]')
  t.notOk(same('http://127.0.0.1', '127.0.0.1/x', 'http'))
  t.notOk(same('null', 'null', 'http'))

  // URL#origin is 'null' for such schemes: an entry for an app shell used to
  // admit every opaque origin (sandboxed frames, file: pages) instead of itself.
  const custom = parseOriginPolicy(['capacitor://localhost', 'https://*.example.net:443'])
  t.ok(custom('capacitor://localhost', undefined, 'https'))
  t.notOk(custom('null', undefined, 'https'), 'an opaque origin is not capacitor://localhost')
  t.ok(custom('https://a.example.net', undefined, 'https'), 'a default port in a wildcard entry is no port')
  for (const origin of ['https://user@a.example.net', 'https://a.example.net/x', 'https://a.example.net:443', 'https://a.example.net?x']) {
    t.notOk(custom(origin, undefined, 'https'), `${origin}: not how a browser writes an origin`)
  }

  t.throws(() => parseOriginPolicy(['https://app.example.com:65536']), /not an origin/)
  t.throws(() => parseOriginPolicy(['https://*.127.0.0.1']), /wildcard over an IP address/)
  t.throws(() => parseOriginPolicy(['app.example.com']), /not an origin/)
  t.throws(() => parseOriginPolicy(['https://app.example.com/path']), /not an origin/)
})
