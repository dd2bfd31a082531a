import { once } from 'node:events'
import { Writable } from 'node:stream'
import t from 'tap'
import { WebSocket } from 'ws'
import { SUBPROTOCOL } from '../lib/index.js'
import { broadcast, build, connect, forge, nextMessage, rejectedUpgrade, sample, SECRET, serviceToken, token } from './helpers.js'

t.test('a valid token is accepted from the query, the Authorization header or the subprotocol', async (t) => {
  const { app, wsUrl } = await build(t)

  await connect(t, wsUrl, token({ sub: 'by-query' }))

  const byHeader = new WebSocket(wsUrl, { headers: { authorization: `Bearer ${token({ sub: 'by-header' })}` } })
  t.teardown(() => byHeader.terminate())
  await once(byHeader, 'open')

  const byProtocol = new WebSocket(wsUrl, [SUBPROTOCOL, `bearer.${token({ sub: 'by-protocol' })}`])
  t.teardown(() => byProtocol.terminate())
  await once(byProtocol, 'open')
  t.equal(byProtocol.protocol, SUBPROTOCOL, 'the server answers with fanout.v1, never echoing the token')

  t.same([...app.fanout.connections()].map((c) => c.userId).sort(), ['by-header', 'by-protocol', 'by-query'])
})

t.test('the user id comes from the configured claim; numeric ids become strings', async (t) => {
  const { app, wsUrl } = await build(t, { userClaim: 'uid' })
  await connect(t, wsUrl, token({ uid: 42 }))
  t.equal(app.fanout.connectionsOf('42').size, 1)
  await connect(t, wsUrl, token({ uid: Number.MAX_SAFE_INTEGER }))
  t.equal(app.fanout.connectionsOf('9007199254740991').size, 1, 'the largest safe integer is exact')
  const missing = await rejectedUpgrade(`${wsUrl}?token=${token({ sub: 'no-uid' })}`)
  t.equal(missing.status, 401)
  t.equal(missing.body.code, 'FST_FANOUT_TOKEN_INVALID')
  t.match(missing.body.message, /no `uid` claim/)
})

t.test('a numeric user id beyond 2^53 or with a fraction is refused: it could name another user', async (t) => {
  const { app, url, wsUrl } = await build(t)
  // 9007199254740993 parses to 9007199254740992: it used to connect as
  // user ...992 and receive that user's messages.
  const victim = await connect(t, wsUrl, token({ sub: '9007199254740992' }))
  for (const [payload, why] of [
    ['{"sub":9007199254740993}', '2^53 + 1'],
    ['{"sub":9007199254740992}', '2^53 (not safe: 2^53 + 1 parses to it)'],
    ['{"sub":1e300}', 'huge'],
    ['{"sub":1.5}', 'a fraction'],
    ['{"sub":-9007199254740993}', 'below -2^53']
  ]) {
    const rejection = await rejectedUpgrade(`${wsUrl}?token=${forge({ alg: 'HS256' }, payload, { raw: true })}`)
    t.equal(rejection.status, 401, `${why}: 401`)
    t.equal(rejection.body.code, 'FST_FANOUT_TOKEN_INVALID')
    t.match(rejection.body.message, /`sub` claim is a number but not an integer up to 2\^53 - 1/)
  }
  t.equal(app.fanout.connectionsOf('9007199254740992').size, 1, 'only the real user is connected')
  const next = nextMessage(victim)
  t.equal((await broadcast(url, { data: 'mine', users: ['9007199254740992'] })).status, 202)
  t.equal((await next).data, 'mine')
})

t.test('a user id has one length limit everywhere: what connects can be targeted', async (t) => {
  const { MAX_USER_ID_LENGTH } = await import('../lib/index.js')
  t.equal(MAX_USER_ID_LENGTH, 512)
  const { url, wsUrl } = await build(t)
  const longest = 'x'.repeat(MAX_USER_ID_LENGTH)
  const astral = '😀'.repeat(MAX_USER_ID_LENGTH) // 1024 UTF-16 units, 512 characters
  for (const sub of [longest, astral]) {
    const ws = await connect(t, wsUrl, token({ sub }))
    const next = nextMessage(ws)
    const response = await broadcast(url, { data: 'reachable', users: [sub] })
    t.equal(response.status, 202, 'the route accepts the id')
    t.equal((await next).data, 'reachable', 'the user receives it')
  }
  for (const sub of [longest + 'x', astral + '😀']) {
    const rejection = await rejectedUpgrade(`${wsUrl}?token=${token({ sub })}`)
    t.equal(rejection.status, 401)
    t.equal(rejection.body.code, 'FST_FANOUT_TOKEN_INVALID')
    t.match(rejection.body.message, /`sub` claim must be at most 512 characters/)
    t.equal((await broadcast(url, { data: 1, users: [sub] })).status, 400, 'and the route refuses it too')
  }
})

t.test('bad tokens get 401 with a specific code and never become sockets', async (t) => {
  const { app, url, wsUrl } = await build(t)
  const past = Math.floor(Date.now() / 1000) - 60
  const cases: Array<[string, string, string, RegExp]> = [
    ['missing', wsUrl, 'FST_FANOUT_TOKEN_MISSING', /No token/],
    ['malformed', `${wsUrl}?token=not.a.jwt`, 'FST_FANOUT_TOKEN_INVALID', /not a valid|malformed/i],
    ['badly signed', `${wsUrl}?token=${token({ sub: 'eve' }, 'another-secret-another-secret-xx')}`, 'FST_FANOUT_TOKEN_INVALID', /signature/i],
    ['expired', `${wsUrl}?token=${token({ sub: 'alice', exp: past })}`, 'FST_FANOUT_TOKEN_EXPIRED', /expired/i],
    ['unsigned (alg none)', `${wsUrl}?token=${unsigned({ sub: 'mallory' })}`, 'FST_FANOUT_TOKEN_INVALID', /./]
  ]
  for (const [name, target, code, message] of cases) {
    const rejection = await rejectedUpgrade(target)
    t.equal(rejection.status, 401, `${name}: 401`)
    t.equal(rejection.body.code, code, `${name}: ${code}`)
    t.match(rejection.body.message, message, `${name}: says why`)
    t.match(rejection.headers['www-authenticate'], /^Bearer/, `${name}: WWW-Authenticate`)
  }
  t.equal(app.fanout.size, 0, 'no socket was registered')

  const metrics = await (await fetch(`${url}/metrics`)).text()
  t.equal(sample(metrics, 'fanout_connections_rejected_total', 'reason="token_missing"'), 1)
  t.equal(sample(metrics, 'fanout_connections_rejected_total', 'reason="token_invalid"'), 3)
  t.equal(sample(metrics, 'fanout_connections_rejected_total', 'reason="token_expired"'), 1)
})

t.test('every token problem is a 401 with its reason, counted, never a 500', async (t) => {
  // Each of these was answered 500 (fast-jwt errors @fastify/jwt passes on
  // unwrapped), logged with a stack at error level and not counted.
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  const { app, url, wsUrl } = await build(t, {}, { logger: { level: 'info', stream } })
  const soon = Math.floor(Date.now() / 1000) + 3600
  const HS256 = { alg: 'HS256', typ: 'JWT' }
  const cases: Array<[string, string, RegExp]> = [
    ['an algorithm it was not signed with', forge({ alg: 'RS256' }, { sub: 'a' }), /algorithm is invalid/],
    ['alg none with a signature', forge({ alg: 'none' }, { sub: 'a' }), /algorithm is invalid/],
    ['alg not a string', forge({ alg: 1 }, { sub: 'a' }), /algorithm is invalid/],
    ['nbf in the future', forge(HS256, { sub: 'a', nbf: soon }), /will be active at/],
    ['exp a string', forge(HS256, { sub: 'a', exp: String(soon) }), /exp claim must be a number/],
    ['exp null', forge(HS256, { sub: 'a', exp: null }), /exp claim must be a number/],
    ['nbf a string', forge(HS256, { sub: 'a', nbf: 'tomorrow' }), /nbf claim must be a number/],
    ['nbf null', forge(HS256, { sub: 'a', nbf: null }), /nbf claim must be a number/],
    ['payload an array', forge(HS256, [{ sub: 'a' }]), /payload must be an object/],
    ['payload a number', forge(HS256, 42), /payload must be an object/],
    ['payload a string', forge(HS256, '"a"', { raw: true }), /payload must be an object/],
    ['payload null', forge(HS256, 'null', { raw: true }), /payload must be an object/],
    ['unknown crit header', forge({ ...HS256, crit: ['x-ext'], 'x-ext': 1 }, { sub: 'a' }), /critical extension "x-ext" is not supported/],
    ['crit not an array', forge({ ...HS256, crit: 'x-ext' }, { sub: 'a' }), /crit header must be a non-empty array/],
    // Accepted before: JSON's 1e400 is Infinity, which never expires.
    ['exp Infinity', forge(HS256, '{"sub":"a","exp":1e400}', { raw: true }), /`exp` claim must be a number of seconds within the range of dates/],
    ['exp beyond the year 275760', forge(HS256, '{"sub":"a","exp":1e300}', { raw: true }), /`exp` claim must be a number of seconds within the range of dates/],
    // Found by test/fuzz/tokens.test.ts: fast-jwt's message for these throws a RangeError (500).
    ['nbf Infinity', forge(HS256, '{"sub":"a","nbf":1e400}', { raw: true }), /`nbf` claim must be a number of seconds within the range of dates/],
    ['nbf beyond the range of dates', forge(HS256, '{"sub":"a","nbf":1e300}', { raw: true }), /`nbf` claim must be a number of seconds within the range of dates/],
    ['exp before the range of dates', forge(HS256, '{"sub":"a","exp":-1e300}', { raw: true }), /`exp` claim must be a number of seconds within the range of dates/]
  ]
  for (const [name, jwt, reason] of cases) {
    const rejection = await rejectedUpgrade(`${wsUrl}?token=${jwt}`)
    t.equal(rejection.status, 401, `${name}: 401`)
    t.equal(rejection.body.code, 'FST_FANOUT_TOKEN_INVALID', `${name}: FST_FANOUT_TOKEN_INVALID`)
    t.match(rejection.body.message, reason, `${name}: says why`)
    t.equal(rejection.headers['www-authenticate'], 'Bearer error="invalid_token"', `${name}: WWW-Authenticate`)

    const route = await broadcast(url, { data: 1 }, jwt)
    t.equal(route.status, 401, `${name}: 401 on the broadcast route too`)
    t.equal((await route.json() as { code: string }).code, 'FST_FANOUT_TOKEN_INVALID')
  }
  const metrics = await (await fetch(`${url}/metrics`)).text()
  t.equal(sample(metrics, 'fanout_connections_rejected_total', 'reason="token_invalid"'), cases.length, 'each counted once')
  t.equal(lines.filter((line) => (JSON.parse(line) as { level: number }).level >= 50).length, 0, 'nothing logged as a server error')
  t.equal(app.fanout.size, 0)
})

t.test("a failing key provider is the server's problem: 500, logged", async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  const { wsUrl } = await build(t, { jwt: { secret: async () => { throw new Error('key service unreachable') } } }, { logger: { level: 'error', stream } })
  const rejection = await rejectedUpgrade(`${wsUrl}?token=${token()}`)
  t.equal(rejection.status, 500)
  t.match(lines.join(''), /key service unreachable/, 'logged as an error')

  const sync = await build(t, { jwt: { secret: () => { throw new Error('no key') } } })
  t.equal((await rejectedUpgrade(`${sync.wsUrl}?token=${token()}`)).status, 500, 'a provider that throws')

  const working = await build(t, { jwt: { secret: async () => SECRET } })
  await connect(t, working.wsUrl, token({ sub: 'through-a-provider' }))
  const bad = await rejectedUpgrade(`${working.wsUrl}?token=${forge({ alg: 'HS256' }, { sub: 'a', nbf: Math.floor(Date.now() / 1000) + 3600 })}`)
  t.equal(bad.status, 401, 'with a provider, a bad token is still a 401')
})

t.test("clock tolerance: 2 s by default for exp and nbf, or the app's jwt.verify.clockTolerance", async (t) => {
  const { resolveOptions } = await import('../lib/options.js')
  t.equal(resolveOptions({ jwt: { secret: SECRET } }).clockTolerance, 2000)
  t.equal(resolveOptions({ jwt: { secret: SECRET, verify: { clockTolerance: 0 } } }).clockTolerance, 0)
  t.equal(resolveOptions({ jwt: { secret: SECRET, verify: { clockTolerance: 30_000 } } }).jwt.verify?.clockTolerance, 30_000)

  // Read after the server is up, and `exp` at the current second (at most 1 s
  // ago), so a slow start cannot push an accepted token past the 2 s tolerance.
  const { wsUrl } = await build(t)
  const now = Math.floor(Date.now() / 1000)
  await connect(t, wsUrl, token({ sub: 'a', nbf: now + 1 }))
  await connect(t, wsUrl, token({ sub: 'a', exp: now }))
  t.equal((await rejectedUpgrade(`${wsUrl}?token=${token({ sub: 'a', exp: now - 5 })}`)).body.code, 'FST_FANOUT_TOKEN_EXPIRED')
  t.equal((await rejectedUpgrade(`${wsUrl}?token=${token({ sub: 'a', nbf: now + 5 })}`)).body.code, 'FST_FANOUT_TOKEN_INVALID')

  const strict = await build(t, { jwt: { secret: SECRET, verify: { clockTolerance: 0 } } })
  t.equal((await rejectedUpgrade(`${strict.wsUrl}?token=${token({ sub: 'a', exp: now - 1 })}`)).body.code, 'FST_FANOUT_TOKEN_EXPIRED')
})

t.test('apps pin algorithms and require exp through jwt.verify', async (t) => {
  const { wsUrl } = await build(t, { jwt: { secret: SECRET, verify: { algorithms: ['HS256'], requiredClaims: ['exp'] } } })
  const exp = Math.floor(Date.now() / 1000) + 60
  await connect(t, wsUrl, token({ sub: 'a', exp }))
  const noExp = await rejectedUpgrade(`${wsUrl}?token=${token({ sub: 'a' })}`)
  t.equal(noExp.status, 401)
  t.equal(noExp.body.code, 'FST_FANOUT_TOKEN_INVALID')
  t.match(noExp.body.message, /the exp claim is required/)
  const hs512 = await rejectedUpgrade(`${wsUrl}?token=${forge({ alg: 'HS512' }, { sub: 'a', exp }, { hash: 'sha512' })}`)
  t.equal(hs512.status, 401, 'a correctly signed HS512 token, but only HS256 is allowed')
  t.match(hs512.body.message, /algorithm is invalid/)
})

t.test('another Authorization scheme does not hide the query or subprotocol token', async (t) => {
  // Browsers resend cached Basic credentials on every request to the site.
  const { app, url, wsUrl } = await build(t)
  const basic = { authorization: 'Basic dXNlcjpwYXNz' }
  await connect(t, wsUrl, token({ sub: 'by-query' }), { headers: basic })
  const byProtocol = new WebSocket(wsUrl, [SUBPROTOCOL, `bearer.${token({ sub: 'by-protocol' })}`], { headers: basic })
  t.teardown(() => byProtocol.terminate())
  await once(byProtocol, 'open')
  t.same([...app.fanout.connections()].map((c) => c.userId).sort(), ['by-protocol', 'by-query'])

  const alone = await rejectedUpgrade(wsUrl, { headers: basic })
  t.equal(alone.status, 401)
  t.equal(alone.body.code, 'FST_FANOUT_TOKEN_MISSING', 'Basic and nothing else: no token')
  const route = await fetch(`${url}/broadcast`, { method: 'POST', headers: { ...basic, 'content-type': 'application/json' }, body: '{"data":1}' })
  t.equal(route.status, 401, 'the broadcast route takes Bearer only')
  t.equal((await route.json() as { code: string }).code, 'FST_FANOUT_TOKEN_MISSING')
})

t.test('a malformed Bearer header is an invalid token, not replaced by another one', async (t) => {
  const { wsUrl } = await build(t)
  for (const authorization of ['Bearer', 'Bearer ', 'Bearer a b', 'bearer\tx y']) {
    const rejection = await rejectedUpgrade(`${wsUrl}?token=${token()}`, { headers: { authorization } })
    t.equal(rejection.status, 401, `${JSON.stringify(authorization)}: 401`)
    t.equal(rejection.body.code, 'FST_FANOUT_TOKEN_INVALID')
    t.match(rejection.body.message, /Authorization header is not `Bearer <token>`/)
    t.match(rejection.headers['www-authenticate'], /^Bearer error="invalid_token"/)
  }
})

t.test("claims an app's formatUser turns into something other than an object are refused", async (t) => {
  const { wsUrl } = await build(t, { jwt: { secret: SECRET, formatUser: () => 'not claims' as never } })
  const rejection = await rejectedUpgrade(`${wsUrl}?token=${token()}`)
  t.equal(rejection.status, 401)
  t.match(rejection.body.message, /its payload is not a JSON object/)
})

t.test('jwt verify options apply (issuer)', async (t) => {
  const { wsUrl } = await build(t, { jwt: { secret: (await import('./helpers.js')).SECRET, verify: { allowedIss: 'https://issuer.example' } } })
  await connect(t, wsUrl, token({ sub: 'alice', iss: 'https://issuer.example' }))
  const rejection = await rejectedUpgrade(`${wsUrl}?token=${token({ sub: 'alice', iss: 'https://evil.example' })}`)
  t.equal(rejection.status, 401)
  t.equal(rejection.body.code, 'FST_FANOUT_TOKEN_INVALID')
  t.match(rejection.body.message, /iss/)
})

t.test('a plain HTTP GET on the WebSocket path is told to upgrade', async (t) => {
  const { url } = await build(t)
  const response = await fetch(`${url}/ws`, { headers: { authorization: `Bearer ${token()}` } })
  t.equal(response.status, 426)
  t.equal((await response.json() as { code: string }).code, 'FST_FANOUT_UPGRADE_REQUIRED')
})

t.test('the app can use its own @fastify/jwt next to fastify-fanout', async (t) => {
  const Fastify = (await import('fastify')).default
  const fastifyJwt = (await import('@fastify/jwt')).default
  const fanout = (await import('../lib/index.js')).default
  const { SECRET } = await import('./helpers.js')
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyJwt, { secret: 'the-apps-own-secret-the-apps-own' })
  await app.register(fanout, { jwt: { secret: SECRET } })
  app.get('/me', async (request) => await request.jwtVerify())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const appToken = app.jwt.sign({ sub: 'app-user' })
  const me = await fetch(`http://127.0.0.1:${port}/me`, { headers: { authorization: `Bearer ${appToken}` } })
  t.equal(me.status, 200, 'the app verifies its own tokens')
  const ws = await connect(t, `ws://127.0.0.1:${port}/ws`, token({ sub: 'fan' }))
  const got = nextMessage(ws)
  await app.fanout.broadcast('hi')
  t.equal((await got).data, 'hi', 'fastify-fanout verifies with its own secret')
  const rejection = await rejectedUpgrade(`ws://127.0.0.1:${port}/ws?token=${appToken}`)
  t.equal(rejection.status, 401, "the app's tokens are not fanout's")
  t.equal(serviceToken().length > 0, true)
})

function unsigned (claims: Record<string, unknown>): string {
  const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  return `${part({ alg: 'none', typ: 'JWT' })}.${part(claims)}.`
}
