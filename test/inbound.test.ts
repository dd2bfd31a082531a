import { once } from 'node:events'
import t from 'tap'
import { clientFrame } from './frames.js'
import { build, closed, connect, nextMessage, rejectedUpgrade, sample, SECRET, token, until } from './helpers.js'
import { RawClient } from './raw-client.js'

async function metricsOf (url: string): Promise<string> {
  return await (await fetch(`${url}/metrics`)).text()
}

t.test('a client past its frames-per-second budget is closed with 4009; the others are not held up', async (t) => {
  // closeTimeout: the server stops reading a flooder, so its socket goes when the close handshake times out.
  const { app, url, wsUrl } = await build(t, { inbound: { messages: 20, bytes: 1 << 20 }, closeTimeout: 200 })
  const flooder = await connect(t, wsUrl, token({ sub: 'flooder' }))
  const bystander = await connect(t, wsUrl, token({ sub: 'bystander' }))
  const closing = closed(flooder)
  for (let i = 0; i < 500; i++) flooder.send('x')
  const { code, reason } = await closing
  t.equal(code, 4009)
  t.equal(reason, 'inbound budget exceeded')

  const next = nextMessage(bystander)
  await app.fanout.broadcast({ still: 'here' })
  t.same((await next).data, { still: 'here' }, 'the other client still gets messages')

  await until(() => app.fanout.connectionsOf('flooder').size === 0, 'the flooder to leave the registry')
  const metrics = await metricsOf(url)
  t.equal(sample(metrics, 'fanout_disconnects_total', 'code="4009"'), 1, 'counted by its close code')
  t.equal(sample(metrics, 'fanout_messages_received_total'), 20, 'frames past the budget never reach the app')
})

t.test('pings count against the budget; so do bytes', async (t) => {
  const { wsUrl } = await build(t, { inbound: { messages: 10, bytes: 1000 }, closeTimeout: 200 })
  const pinger = await connect(t, wsUrl, token({ sub: 'pinger' }))
  const pinged = closed(pinger)
  for (let i = 0; i < 50; i++) pinger.ping()
  t.equal((await pinged).code, 4009, 'pings')

  const sender = await connect(t, wsUrl, token({ sub: 'sender' }))
  const sent = closed(sender)
  for (let i = 0; i < 3; i++) sender.send('y'.repeat(500))
  t.equal((await sent).code, 4009, '1,500 bytes against a budget of 1,000')
})

t.test('a client within its budget over several windows stays connected', async (t) => {
  const { app, wsUrl } = await build(t, { inbound: { messages: 20, bytes: 1000 } })
  const steady = await connect(t, wsUrl, token({ sub: 'steady' }))
  // 8 frames every 500 ms: 16 a second, under 20, across three windows.
  for (let round = 0; round < 6; round++) {
    for (let i = 0; i < 8; i++) steady.send('z')
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
  t.equal(app.fanout.connectionsOf('steady').size, 1)
})

t.test('inbound: false turns the budget off', async (t) => {
  const { app, url, wsUrl } = await build(t, { inbound: false })
  const chatty = await connect(t, wsUrl, token({ sub: 'chatty' }))
  for (let i = 0; i < 500; i++) chatty.send('x')
  await until(async () => sample(await metricsOf(url), 'fanout_messages_received_total') === 500, 'all 500 frames')
  t.equal(app.fanout.connectionsOf('chatty').size, 1)
})

t.test('defaults: 4 KiB messages and 100 connections per user', async (t) => {
  const { app, wsUrl } = await build(t)
  const ws = await connect(t, wsUrl)
  ws.send('a'.repeat(4096))
  const closing = closed(ws)
  ws.send('a'.repeat(4097))
  t.equal((await closing).code, 1009, 'a message over 4096 bytes')

  const jwt = token({ sub: 'many' })
  for (let i = 0; i < 100; i++) await connect(t, wsUrl, jwt)
  const refused = await rejectedUpgrade(`${wsUrl}?token=${jwt}`)
  t.equal(refused.status, 429, 'the 101st connection of one user')
  t.equal(app.fanout.connectionsOf('many').size, 100)
})

t.test('a message left unfinished past messageTimeout is closed with 1008, even while pings answer', async (t) => {
  const { app, url, wsUrl } = await build(t, { messageTimeout: 300, heartbeatInterval: 100 })
  const keeper = await connect(t, wsUrl, token({ sub: 'keeper' }))

  // A fragmented message whose last fragment never comes; the client answers every ping.
  const fragments = await connect(t, wsUrl, token({ sub: 'fragments' }))
  let pongs = 0
  fragments.on('ping', () => { pongs++ })
  const started = Date.now()
  const closing = closed(fragments)
  fragments.send('first part', { fin: false })
  const { code, reason } = await closing
  const elapsed = Date.now() - started
  t.equal(code, 1008)
  t.equal(reason, 'message unfinished')
  t.ok(elapsed >= 300 && elapsed < 1000, `closed ${elapsed} ms after the first fragment (bound 300 ms)`)
  t.ok(pongs >= 1, 'it was answering pings meanwhile')

  // One frame announced at 1,000 bytes, of which 10 are sent (from a client
  // that answers no pings, so on a server without heartbeats).
  const quiet = await build(t, { messageTimeout: 300, heartbeatInterval: 0, closeTimeout: 200 })
  const { port } = quiet.app.server.address() as { port: number }
  const trickle = await RawClient.open('127.0.0.1', port, `/ws?token=${token({ sub: 'trickle' })}`)
  t.teardown(() => trickle.close())
  trickle.socket.write(clientFrame('0123456789', 0x1, true, 1000))
  await once(trickle.socket, 'close')
  const close = trickle.frames.find((frame) => frame.opcode === 0x8)
  t.equal(close?.payload.readUInt16BE(0), 1008, 'a frame left unfinished too')
  t.equal(sample(await metricsOf(quiet.url), 'fanout_disconnects_total', 'code="1008"'), 1)

  // A client whose fragmented messages complete stays.
  for (let i = 0; i < 5; i++) {
    keeper.send('part', { fin: false })
    await new Promise((resolve) => setTimeout(resolve, 100))
    keeper.send('end', { fin: true })
  }
  t.equal(app.fanout.connectionsOf('keeper').size, 1)
  await until(async () => sample(await metricsOf(url), 'fanout_disconnects_total', 'code="1008"') === 1, 'counted')
})

t.test('a connection is closed with 4001 within a second of its token\'s exp plus the clock tolerance; one without exp stays', async (t) => {
  const { app, url, wsUrl } = await build(t, { jwt: { secret: SECRET, verify: { clockTolerance: 500 } } })
  const exp = Math.floor(Date.now() / 1000) + 2
  const expiring = await connect(t, wsUrl, token({ sub: 'expiring', exp }))
  const lasting = await connect(t, wsUrl, token({ sub: 'lasting' }))
  const later = await connect(t, wsUrl, token({ sub: 'later', exp: exp + 60 }))
  const { code, reason } = await closed(expiring)
  const late = Date.now() - exp * 1000
  t.equal(code, 4001)
  t.equal(reason, 'token expired')
  t.ok(late >= 500 && late <= 1500 + 700, `closed ${late} ms after exp (tolerance 500 ms, then one tick of 1 s; 700 ms for a busy machine)`)
  t.equal(lasting.readyState, lasting.OPEN, 'no exp: not closed')
  t.equal(later.readyState, later.OPEN, 'a later exp: not yet')
  await until(() => app.fanout.size === 2, 'the expired connection to leave the registry')
  t.equal(sample(await metricsOf(url), 'fanout_disconnects_total', 'code="4001"'), 1)
})
