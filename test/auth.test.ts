import { once } from 'node:events'
import t from 'tap'
import { WebSocket } from 'ws'
import { SUBPROTOCOL } from '../lib/index.js'
import { build, connect, nextMessage, rejectedUpgrade, sample, serviceToken, token } from './helpers.js'

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
  const missing = await rejectedUpgrade(`${wsUrl}?token=${token({ sub: 'no-uid' })}`)
  t.equal(missing.status, 401)
  t.equal(missing.body.code, 'FST_FANOUT_TOKEN_INVALID')
  t.match(missing.body.message, /no `uid` claim/)
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

t.test('a malformed Authorization header is a missing token', async (t) => {
  const { wsUrl } = await build(t)
  const rejection = await rejectedUpgrade(wsUrl, { headers: { authorization: 'Basic dXNlcjpwYXNz' } })
  t.equal(rejection.status, 401)
  t.equal(rejection.body.code, 'FST_FANOUT_TOKEN_MISSING')
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
