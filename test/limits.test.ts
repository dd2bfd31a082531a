import t from 'tap'
import { build, closed, connect, rejectedUpgrade, sample, token, until } from './helpers.js'

t.test('maxConnections: beyond it upgrades get 503 before any upgrade', async (t) => {
  const { app, url, wsUrl } = await build(t, { maxConnections: 2 })
  await connect(t, wsUrl, token({ sub: 'a' }))
  await connect(t, wsUrl, token({ sub: 'b' }))
  const rejection = await rejectedUpgrade(`${wsUrl}?token=${token({ sub: 'c' })}`)
  t.equal(rejection.status, 503)
  t.equal(rejection.body.code, 'FST_FANOUT_TOO_MANY_CONNECTIONS')
  t.equal(app.fanout.size, 2)
  const metrics = await (await fetch(`${url}/metrics`)).text()
  t.equal(sample(metrics, 'fanout_connections_rejected_total', 'reason="instance_limit"'), 1)
})

t.test('maxConnectionsPerUser: beyond it upgrades get 429; other users still connect', async (t) => {
  const { app, url, wsUrl } = await build(t, { maxConnectionsPerUser: 2 })
  await connect(t, wsUrl, token({ sub: 'alice' }))
  const second = await connect(t, wsUrl, token({ sub: 'alice' }))
  const rejection = await rejectedUpgrade(`${wsUrl}?token=${token({ sub: 'alice' })}`)
  t.equal(rejection.status, 429)
  t.equal(rejection.body.code, 'FST_FANOUT_TOO_MANY_USER_CONNECTIONS')
  t.match(rejection.body.message, /2 connections/)
  await connect(t, wsUrl, token({ sub: 'bob' }))

  // A slot frees when a connection closes.
  const gone = closed(second)
  second.close()
  await gone
  await connect(t, wsUrl, token({ sub: 'alice' }))
  t.equal(app.fanout.connectionsOf('alice').size, 2)
  const metrics = await (await fetch(`${url}/metrics`)).text()
  t.equal(sample(metrics, 'fanout_connections_rejected_total', 'reason="user_limit"'), 1)
})

t.test('upgrades admitted together cannot overshoot the per-user limit', async (t) => {
  const { app, wsUrl } = await build(t, { maxConnectionsPerUser: 1 })
  const { WebSocket } = await import('ws')
  const attempts = Array.from({ length: 5 }, () => new WebSocket(`${wsUrl}?token=${token({ sub: 'burst' })}`))
  for (const ws of attempts) t.teardown(() => ws.terminate())
  const outcomes: string[] = []
  for (const ws of attempts) {
    ws.on('error', () => {}) // a refused upgrade also emits error; the outcome is recorded below
    ws.on('unexpected-response', (_req, res) => outcomes.push(String(res.statusCode)))
    ws.on('close', (code) => { if (code !== 1006) outcomes.push(String(code)) })
  }
  await until(() => outcomes.length === 4, 'four refusals')
  t.equal(app.fanout.connectionsOf('burst').size, 1, 'exactly one stays open')
  t.ok(outcomes.every((o) => o === '429' || o === '4029'), `the rest got 429 or close code 4029 (${outcomes.join(', ')})`)
})

t.test('maxPayload: a larger frame from a client closes it with 1009', async (t) => {
  const { app, url, wsUrl } = await build(t, { maxPayload: 1024 })
  const ws = await connect(t, wsUrl)
  ws.send('small')
  const closing = closed(ws)
  ws.send('x'.repeat(2048))
  t.equal((await closing).code, 1009)
  const metrics = await (await fetch(`${url}/metrics`)).text()
  t.equal(sample(metrics, 'fanout_messages_received_total'), 1)
  await until(() => app.fanout.size === 0, 'the server to drop the connection')
  t.equal(sample(await (await fetch(`${url}/metrics`)).text(), 'fanout_disconnects_total', 'code="1009"'), 1)
})
