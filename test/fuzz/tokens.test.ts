// Property: whatever token a client sends, in whatever way, the answer is the
// one the model predicts: 101 for a valid token naming a user, otherwise 401
// with FST_FANOUT_TOKEN_* and WWW-Authenticate; on /broadcast 202, 403 or
// 401. Never a 500.
import fc from 'fast-check'
import t from 'tap'
import { hasBroadcastScope, isUserClaim, tokenOf, tokenSpec, verdictOf } from '../arbitraries.js'
import { build } from '../helpers.js'
import { fuzzParameters, upgrade, type Answer } from './harness.js'

const TOKEN_CODES = { invalid: 'FST_FANOUT_TOKEN_INVALID', expired: 'FST_FANOUT_TOKEN_EXPIRED' } as const

function expectUnauthorized (answer: Answer, code: string): void {
  if (answer.status !== 401 || answer.body.code !== code) {
    throw new Error(`expected 401 ${code}, got ${answer.status} ${JSON.stringify(answer.body)}`)
  }
  if (!/^Bearer( |$)/.test(String(answer.headers['www-authenticate']))) {
    throw new Error(`401 without a Bearer WWW-Authenticate header: ${String(answer.headers['www-authenticate'])}`)
  }
}

t.test('/ws answers every token as the model predicts', async (t) => {
  const { app, wsUrl } = await build(t)
  const port = Number(new URL(wsUrl).port)
  let upgraded = 0
  let refused = 0

  await fc.assert(fc.asyncProperty(tokenSpec, fc.constantFrom('query', 'header', 'subprotocol'), async (spec, transport) => {
    const now = Math.floor(Date.now() / 1000)
    const jwt = tokenOf(spec, now)
    const { verdict, claims } = verdictOf(spec, now)
    const answer = transport === 'query'
      ? await upgrade(port, `/ws?token=${encodeURIComponent(jwt)}`)
      : transport === 'header'
        ? await upgrade(port, '/ws', { authorization: `Bearer ${jwt}` })
        : await upgrade(port, '/ws', { 'sec-websocket-protocol': `fanout.v1, bearer.${jwt}` })
    if (verdict === 'valid' && isUserClaim(claims?.sub)) {
      if (answer.status !== 101) throw new Error(`a valid token was refused: ${answer.status} ${JSON.stringify(answer.body)}`)
      upgraded++
      return
    }
    expectUnauthorized(answer, TOKEN_CODES[verdict === 'expired' ? 'expired' : 'invalid'])
    refused++
  }), fuzzParameters(300))

  t.ok(upgraded > 10 && refused > 10, `both outcomes were exercised (${upgraded} upgraded, ${refused} refused)`)
  await app.close()
})

t.test('/ws answers random text in the token parameter with a 401', async (t) => {
  const { wsUrl } = await build(t)
  const port = Number(new URL(wsUrl).port)
  await fc.assert(fc.asyncProperty(fc.oneof(fc.string({ maxLength: 60 }), fc.string({ unit: 'binary', maxLength: 30 }), fc.stringMatching(/^[\w-]*\.[\w-]*\.[\w-]*$/)), async (text) => {
    const answer = await upgrade(port, `/ws?token=${encodeURIComponent(text)}`)
    expectUnauthorized(answer, text === '' ? 'FST_FANOUT_TOKEN_MISSING' : 'FST_FANOUT_TOKEN_INVALID')
  }), fuzzParameters(150))
  t.pass()
})

t.test('POST /broadcast answers every token as the model predicts', async (t) => {
  const { url } = await build(t)
  await fc.assert(fc.asyncProperty(tokenSpec, async (spec) => {
    const now = Math.floor(Date.now() / 1000)
    const jwt = tokenOf(spec, now)
    const { verdict, claims } = verdictOf(spec, now)
    const response = await fetch(`${url}/broadcast`, {
      method: 'POST',
      headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
      body: '{"data":1}'
    })
    const answer: Answer = { status: response.status, headers: Object.fromEntries(response.headers), body: await response.json() as Answer['body'] }
    if (verdict !== 'valid') return expectUnauthorized(answer, TOKEN_CODES[verdict])
    const expected = claims !== undefined && hasBroadcastScope(claims) ? 202 : 403
    if (answer.status !== expected) throw new Error(`expected ${expected}, got ${answer.status} ${JSON.stringify(answer.body)}`)
    if (expected === 403 && answer.body.code !== 'FST_FANOUT_SCOPE_FORBIDDEN') throw new Error(`403 with ${String(answer.body.code)}`)
  }), fuzzParameters(200))
  t.pass()
})
