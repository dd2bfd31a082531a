import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import Fastify from 'fastify'
import fastifyMetricsModule from 'fastify-metrics'
import { Gauge, Registry } from 'prom-client'
import fanout, { type MetricsListenOptions } from '../lib/index.js'
import { broadcast, build, connect, messages, sample, SECRET, token, until } from './helpers.js'

t.test('metrics after known traffic', async (t) => {
  const { app, url, wsUrl } = await build(t)
  const a = await connect(t, wsUrl, token({ sub: 'a' }))
  const b = await connect(t, wsUrl, token({ sub: 'b' }))
  const both = [messages(a, 3), messages(b, 2)]
  await app.fanout.broadcast('one')
  const response = await broadcast(url, { data: 'two' })
  const { id } = await response.json() as { id: string }
  await app.fanout.sendToUser('a', 'three')
  await Promise.all(both)
  const bytes = (data: string, messageId: string): number => Buffer.byteLength(JSON.stringify({ type: 'message', id: messageId, data }))

  const text = await (await fetch(`${url}/metrics`)).text()
  t.equal(sample(text, 'fanout_connections'), 2)
  t.equal(sample(text, 'fanout_connections_accepted_total'), 2)
  t.equal(sample(text, 'fanout_broadcasts_total'), 3)
  t.equal(sample(text, 'fanout_messages_sent_total'), 5)
  t.equal(sample(text, 'fanout_broadcast_duration_seconds_count'), 3)
  t.equal(sample(text, 'fanout_bytes_sent_total'), 2 * bytes('two', id) + 2 * bytes('one', id) + bytes('three', id) + 0,
    'payload bytes, as written')
  t.match(text, /# TYPE fanout_messages_dropped_total counter/)
  t.match(text, /# TYPE fanout_disconnects_total counter/)
  t.match(text, /# TYPE fanout_broadcast_duration_seconds histogram/)
  t.match(text, /http_request_duration_seconds_count\{method="POST",route="\/broadcast",status_code="202"\} 1/, "fastify-metrics' HTTP metrics")
  t.match(text, /process_cpu_user_seconds_total/, 'default process metrics')

  a.close(4321, 'bye')
  await until(() => app.fanout.size === 1, 'the server to see the close')
  const after = await (await fetch(`${url}/metrics`)).text()
  t.equal(sample(after, 'fanout_connections'), 1)
  t.equal(sample(after, 'fanout_disconnects_total', 'code="4xxx"'), 1, 'client codes fold into ranges: clients cannot grow the label set')
})

t.test('two Fastify instances in one process keep separate metrics', async (t) => {
  const first = await build(t)
  const second = await build(t)
  await connect(t, first.wsUrl)
  const [one, two] = await Promise.all([first.url, second.url].map(async (url) => await (await fetch(`${url}/metrics`)).text()))
  t.equal(sample(one as string, 'fanout_connections'), 1)
  t.equal(sample(two as string, 'fanout_connections'), 0)
})

t.test('metrics: false serves no /metrics but still collects', async (t) => {
  const { app, url, wsUrl } = await build(t, { metrics: false })
  await connect(t, wsUrl)
  t.equal((await fetch(`${url}/metrics`)).status, 404)
  const text = await app.fanout.metricsRegistry.metrics()
  t.equal(sample(text, 'fanout_connections'), 1)
})

t.test('metrics endpoint and registry are configurable', async (t) => {
  const registry = new Registry()
  const { url } = await build(t, { metrics: { endpoint: '/internal/metrics', registry } })
  const text = await (await fetch(`${url}/internal/metrics`)).text()
  t.match(text, /fanout_connections 0/)
  t.match(await registry.metrics(), /fanout_connections 0/, 'collected into the given registry')
})

t.test('an app that registered fastify-metrics itself is told what to do', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyMetricsModule.default, { endpoint: '/metrics', defaultMetrics: { enabled: false }, routeMetrics: { enabled: false } })
  await t.rejects(async () => { await app.register(fanout, { jwt: { secret: SECRET } }) }, { code: 'FST_FANOUT_INVALID_OPTION', message: /serve: false/ })

  const ok = Fastify()
  t.teardown(() => ok.close())
  await ok.register(fastifyMetricsModule.default, { endpoint: '/metrics', defaultMetrics: { enabled: false }, routeMetrics: { enabled: false } })
  await ok.register(fanout, { jwt: { secret: SECRET }, metrics: { serve: false } })
  await ok.ready()
  t.ok(ok.fanout.metricsRegistry)
})

/** A port that was free a moment ago (listen on 0, read it, close). */
async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

t.test('metrics.listen serves metrics on an internal address, not on the public port', async (t) => {
  const port = await freePort()
  const { app, url, wsUrl } = await build(t, { metrics: { listen: { port } } })
  await connect(t, wsUrl)
  t.equal((await broadcast(url, { data: 'x' })).status, 202)

  const publicAnswer = await fetch(`${url}/metrics`)
  t.equal(publicAnswer.status, 404, 'the public port has no /metrics')
  await publicAnswer.text()

  const internal = await fetch(`http://127.0.0.1:${port}/metrics`)
  t.equal(internal.status, 200)
  t.match(internal.headers.get('content-type'), /^text\/plain/)
  const text = await internal.text()
  t.equal(sample(text, 'fanout_connections'), 1)
  t.match(text, /http_request_duration_seconds_count\{method="POST",route="\/broadcast",status_code="202"\} 1/, 'fastify-metrics still measures the app\'s routes')
  t.match(text, /process_cpu_user_seconds_total/)
  t.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404)
  t.equal((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status, 405)

  // A scraper's keep-alive connection (fetch keeps one) must not hold close() up.
  const closing = Date.now()
  await app.close()
  t.ok(Date.now() - closing < 2000, 'closed promptly')
  await t.rejects(fetch(`http://127.0.0.1:${port}/metrics`), 'the internal listener is closed with the app')
})

t.test('metrics.listen with serve: false serves the registry without fastify-metrics; a taken port fails ready()', async (t) => {
  const port = await freePort()
  const { url } = await build(t, { metrics: { serve: false, listen: { port, host: '127.0.0.1' } } })
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  t.equal(sample(text, 'fanout_connections'), 0)
  t.notMatch(text, /http_request_duration_seconds/)
  t.equal((await fetch(`${url}/metrics`)).status, 404)

  const clash = Fastify()
  t.teardown(() => clash.close())
  await clash.register(fanout, { jwt: { secret: SECRET }, metrics: { listen: { port } } })
  await t.rejects(async () => { await clash.ready() }, { code: 'EADDRINUSE' }, 'the port is taken by the first app')
})

t.test('metrics.listen answers 500 (and logs) when collecting fails', async (t) => {
  const port = await freePort()
  const registry = new Registry()
  const { app } = await build(t, { metrics: { registry, serve: false, listen: { port } } })
  // eslint-disable-next-line no-new -- registered on creation
  new Gauge({ name: 'broken', help: 'throws when collected', registers: [registry], collect () { throw new Error('broken gauge') } })
  const logged: unknown[] = []
  app.log.error = ((entry: unknown) => { logged.push(entry) }) as typeof app.log.error
  t.equal((await fetch(`http://127.0.0.1:${port}/metrics`)).status, 500)
  t.match(logged, [{ err: { message: 'broken gauge' } }])
})

t.test('bad metrics.listen options say what to fix', async (t) => {
  // Types: a port is required, the host is optional.
  const listen: MetricsListenOptions = { port: 9091 }
  // @ts-expect-error metrics.listen needs a port
  const portless: MetricsListenOptions = { host: '127.0.0.1' }
  t.ok(listen !== undefined && portless !== undefined)

  for (const [listen, message] of [
    [9091, /`metrics.listen` must be \{ port, host\? \}/],
    [{ port: 0 }, /`metrics.listen.port` must be an integer number of a TCP port from 1 to 65535, got 0/],
    [{ port: '9091' }, /`metrics.listen.port`/],
    [{ port: 9091, host: '' }, /`metrics.listen.host` must be a non-empty string/]
  ] as const) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(fanout, { jwt: { secret: SECRET }, metrics: { listen: listen as never } }) }, { code: 'FST_FANOUT_INVALID_OPTION', message })
  }
})
