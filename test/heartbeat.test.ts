import t from 'tap'
import { build, closed, connect, sample, token, until } from './helpers.js'

const INTERVAL = 100

t.test('a client that stops answering pings is terminated; one that answers stays', async (t) => {
  const { app, url, wsUrl } = await build(t, { heartbeatInterval: INTERVAL })
  const alive = await connect(t, wsUrl, token({ sub: 'alive' }))
  const silent = await connect(t, wsUrl, token({ sub: 'silent' }), { autoPong: false })
  let pings = 0
  alive.on('ping', () => { pings++ })

  const started = Date.now()
  const { code } = await closed(silent)
  const elapsed = Date.now() - started
  t.equal(code, 1006, 'terminated without a closing handshake')
  t.ok(elapsed >= 2 * INTERVAL, `not before two silent intervals (${elapsed} ms)`)
  await until(() => app.fanout.connectionsOf('silent').size === 0, 'the server to drop the silent connection')

  await until(() => pings >= 5, 'five pings to the live client')
  t.equal(app.fanout.connectionsOf('alive').size, 1, 'the answering client is kept')

  const metrics = await (await fetch(`${url}/metrics`)).text()
  t.equal(sample(metrics, 'fanout_heartbeat_timeouts_total'), 1)
  t.equal(sample(metrics, 'fanout_disconnects_total', 'code="1006"'), 1)
})

t.test('any frame from the client counts as a sign of life', async (t) => {
  const { app, wsUrl } = await build(t, { heartbeatInterval: INTERVAL })
  const chatty = await connect(t, wsUrl, token({ sub: 'chatty' }), { autoPong: false })
  let ticks = 0
  chatty.on('ping', () => { chatty.send('still here'); ticks++ })
  await until(() => ticks >= 5, 'five heartbeat ticks')
  t.equal(app.fanout.connectionsOf('chatty').size, 1)
})

t.test('heartbeatInterval: 0 turns heartbeats off', async (t) => {
  const { wsUrl } = await build(t, { heartbeatInterval: 0 })
  const ws = await connect(t, wsUrl)
  let pinged = false
  ws.on('ping', () => { pinged = true })
  await new Promise((resolve) => setTimeout(resolve, 150))
  t.equal(pinged, false)
})
