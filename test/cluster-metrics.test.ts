import cluster, { type Worker } from 'node:cluster'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import fanout, { clusterMetrics, type ClusterMetricsOptions } from '../lib/index.js'
import { aggregate, retire } from '../lib/cluster/aggregate.js'
import type { MetricSnapshot } from '../lib/cluster/messages.js'
import { build, closed, connect, messages, sample, SECRET, serviceToken, until } from './helpers.js'

// This test's process is the cluster's primary; its workers run test/fixtures/cluster-metrics-worker.ts.
cluster.setupPrimary({
  exec: fileURLToPath(new URL('./fixtures/cluster-metrics-worker.ts', import.meta.url)),
  execArgv: ['--import', 'tsx']
})

interface Told { listening?: number, listeners?: number, closed?: boolean, errors?: Array<{ code?: string, message: string }> }
interface Forked { worker: Worker, url: string, wsUrl: string, told: Told, next: () => Promise<Told> }

/** A cluster worker running the fixture, once it told it is ready; killed when the test ends. */
async function fork (t: Test, fixture: 'fanout' | 'silent' | 'misuse'): Promise<Forked> {
  const worker = cluster.fork({ FIXTURE: fixture })
  t.teardown(() => { if (!worker.isDead()) worker.process.kill('SIGKILL') })
  const inbox: Told[] = []
  const waiting: Array<(told: Told) => void> = []
  worker.on('message', (message: { fixture?: Told }) => {
    if (message.fixture === undefined) return
    const waiter = waiting.shift()
    if (waiter === undefined) inbox.push(message.fixture)
    else waiter(message.fixture)
  })
  const next = async (): Promise<Told> => inbox.shift() ?? await new Promise<Told>((resolve, reject) => {
    waiting.push(resolve)
    worker.once('exit', (code) => { reject(new Error(`the ${fixture} worker exited with ${code}`)) })
  })
  const told = await next()
  const url = `http://127.0.0.1:${told.listening ?? 0}`
  return { worker, url, wsUrl: `${url.replace('http', 'ws')}/ws`, told, next }
}

/** The primary's metrics app (clusterMetrics on port 0); closed when the test ends. */
async function primary (t: Test, options: ClusterMetricsOptions = {}): Promise<() => Promise<{ text: string, ms: number }>> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(clusterMetrics, options)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}${options.path ?? '/metrics'}`
  return async () => {
    const start = Date.now()
    const response = await fetch(url)
    const text = await response.text()
    if (response.status !== 200) throw new Error(`scrape answered ${response.status}: ${text}`)
    return { text, ms: Date.now() - start }
  }
}

/** Every sample of a scrape's counters, histograms and summaries' sums and counts (what must only grow), by series. */
function monotonicSeries (text: string): Map<string, number> {
  const growing = new Set<string>()
  const series = new Map<string, number>()
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (counter|histogram|summary)$/.exec(line)
    if (type !== null) growing.add(type[1] as string)
    const match = /^((\w+?)(_bucket|_sum|_count)?(?:\{[^}]*\})?) (\S+)$/.exec(line)
    if (match === null || line.includes('quantile=')) continue
    const [, key, name, suffix, value] = match as unknown as [string, string, string, string | undefined, string]
    if (growing.has(name) || (suffix !== undefined && growing.has(name))) series.set(key, Number(value))
    else if (growing.has(key.split('{')[0] as string)) series.set(key, Number(value))
  }
  return series
}

/** Asserts that no counter of `next` went below its value in `previous`. */
function assertMonotonic (t: Test, previous: string, next: string, when: string): void {
  const before = monotonicSeries(previous)
  const after = monotonicSeries(next)
  const back = [...before].filter(([series, value]) => (after.get(series) ?? 0) < value).map(([series]) => series)
  t.same(back, [], `no counter went back ${when}`)
}

async function exited (worker: Worker): Promise<[number | null, string | null]> {
  return worker.isDead() ? [worker.process.exitCode, worker.process.signalCode] : await once(worker, 'exit') as [number | null, string | null]
}

t.test('the primary serves the sum over its workers, and no counter goes back when a worker closes, crashes or starts', async (t) => {
  const scrape = await primary(t, { timeout: 2000 })
  const [a, b] = await Promise.all([fork(t, 'fanout'), fork(t, 'fanout')]) as [Forked, Forked]
  t.equal((await fetch(`${a.url}/metrics`)).status, 404, 'a worker serves no /metrics of its own')

  const onA = await connect(t, a.wsUrl)
  const onB = [await connect(t, b.wsUrl), await connect(t, b.wsUrl)]
  const post = async (url: string, data: unknown): Promise<void> => {
    const response = await fetch(`${url}/broadcast`, { method: 'POST', headers: { authorization: `Bearer ${serviceToken()}`, 'content-type': 'application/json' }, body: JSON.stringify({ data }) })
    t.equal(response.status, 202)
  }
  // The embedded backplane: a broadcast reaches the clients of its own worker only.
  await post(a.url, 1)
  await post(a.url, 2)
  await post(b.url, 3)
  await Promise.all([messages(onA, 2), ...onB.map(async (ws) => await messages(ws, 1))])

  const first = (await scrape()).text
  t.equal(sample(first, 'fanout_connections'), 3, 'connections of both workers')
  t.equal(sample(first, 'fanout_connections_accepted_total'), 3)
  t.equal(sample(first, 'fanout_broadcasts_total'), 3)
  t.equal(sample(first, 'fanout_messages_sent_total'), 2 * 1 + 1 * 2, 'deliveries of both workers')
  t.equal(sample(first, 'fanout_broadcast_duration_seconds_count'), 3, 'histograms add up')
  t.equal(sample(first, 'http_request_duration_seconds_count', 'method="POST",route="/broadcast",status_code="202"'), 3, "fastify-metrics' histograms too")
  t.equal(sample(first, 'fanout_backplane_up'), 1)
  t.equal(sample(first, 'fanout_cluster_workers', 'state="reporting"'), 2)
  t.match(first, /^nodejs_eventloop_lag_p99_seconds \d/m, 'default metrics')
  t.notMatch(first, /^process_start_time_seconds/m, 'what cannot be combined is left out')
  const again = (await scrape()).text
  assertMonotonic(t, first, again, 'between two scrapes')
  t.equal(sample(again, 'fanout_messages_sent_total'), 4, 'nothing counted twice')

  // A graceful close: the worker hands its final counts over, then exits by itself.
  t.equal(a.told.listeners, 1, 'a reporting instance listens to the primary')
  const goneA = closed(onA)
  t.same(await (await fetch(`${a.url}/close`, { method: 'POST' })).json(), { closing: true })
  t.equal((await goneA).code, 1001)
  t.same(await a.next(), { closed: true, listeners: 0 }, 'a closed instance no longer does')
  t.same(await exited(a.worker), [0, null], 'nothing of fastify-fanout holds a closed worker up')
  const afterClose = (await scrape()).text
  assertMonotonic(t, again, afterClose, 'when a worker closed')
  t.equal(sample(afterClose, 'fanout_connections'), 2, 'its connections are gone')
  t.equal(sample(afterClose, 'fanout_messages_sent_total'), 4, 'what it delivered stays counted')
  t.equal(sample(afterClose, 'fanout_connections_accepted_total'), 3)
  t.equal(sample(afterClose, 'fanout_cluster_workers', 'state="reporting"'), 1)

  // A crash: what it counted until the last scrape stays.
  await post(b.url, 4)
  await Promise.all(onB.map(async (ws) => await messages(ws, 1)))
  const beforeCrash = (await scrape()).text
  t.equal(sample(beforeCrash, 'fanout_messages_sent_total'), 6)
  b.worker.process.kill('SIGKILL')
  await exited(b.worker)
  const afterCrash = (await scrape()).text
  assertMonotonic(t, beforeCrash, afterCrash, 'when a worker crashed')
  t.equal(sample(afterCrash, 'fanout_connections'), undefined, 'no gauge while no worker reports')
  t.equal(sample(afterCrash, 'fanout_cluster_workers', 'state="reporting"'), 0)
  t.equal(sample(afterCrash, 'fanout_messages_sent_total'), 6)
  t.equal(sample(afterCrash, 'fanout_broadcasts_total'), 4)

  // A new worker starts from zero; the machine's totals go on from where they were.
  const c = await fork(t, 'fanout')
  await connect(t, c.wsUrl)
  const withNew = (await scrape()).text
  assertMonotonic(t, afterCrash, withNew, 'when a worker started')
  t.equal(sample(withNew, 'fanout_connections'), 1)
  t.equal(sample(withNew, 'fanout_connections_accepted_total'), 4)
  t.equal(sample(withNew, 'fanout_messages_sent_total'), 6)
  t.equal(sample(withNew, 'fanout_cluster_workers', 'state="reporting"'), 1)
})

t.test('a worker that does not answer in time counts with its last answer; one without fastify-fanout counts as silent', async (t) => {
  const timeout = 300
  const scrape = await primary(t, { timeout, path: '/machine' })
  const [a] = await Promise.all([fork(t, 'fanout'), fork(t, 'silent')])
  await connect(t, a.wsUrl)
  const answered = await scrape()
  t.ok(answered.ms < timeout, `a silent worker is not waited for (${answered.ms} ms)`)
  t.equal(sample(answered.text, 'fanout_connections'), 1)
  t.equal(sample(answered.text, 'fanout_cluster_workers', 'state="reporting"'), 1)
  t.equal(sample(answered.text, 'fanout_cluster_workers', 'state="silent"'), 1)

  // A stopped process is a worker whose event loop is stuck.
  a.worker.process.kill('SIGSTOP')
  t.teardown(() => { a.worker.process.kill('SIGCONT') })
  const late = await scrape()
  t.ok(late.ms >= timeout && late.ms < timeout + 2000, `answered after the timeout (${late.ms} ms)`)
  t.equal(sample(late.text, 'fanout_cluster_workers', 'state="late"'), 1)
  t.equal(sample(late.text, 'fanout_connections'), 1, 'its last answer counts')
  assertMonotonic(t, answered.text, late.text, 'while a worker is late')

  a.worker.process.kill('SIGCONT')
  await until(async () => sample((await scrape()).text, 'fanout_cluster_workers', 'state="reporting"') === 1, 'the worker to answer again')
})

t.test('clusterMetrics closes with its app: a waiting scrape is answered at once, its listeners go', async (t) => {
  const listeners = { message: cluster.listenerCount('message'), exit: cluster.listenerCount('exit') }
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(clusterMetrics, { timeout: 60_000 })
  let arrived: () => void = () => {}
  const scraping = new Promise<void>((resolve) => { arrived = resolve })
  app.addHook('onRequest', async () => { arrived() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.equal(cluster.listenerCount('message'), listeners.message + 1)
  const a = await fork(t, 'fanout')
  a.worker.process.kill('SIGSTOP')
  t.teardown(() => { a.worker.process.kill('SIGCONT') })
  const waiting = fetch(`http://127.0.0.1:${(app.server.address() as { port: number }).port}/metrics`)
  await scraping
  // The scrape waits for the stopped worker: close() must not wait 60 s for it.
  const started = Date.now()
  await app.close()
  t.ok(Date.now() - started < 5000, 'closed promptly')
  const answer = await waiting
  t.equal(answer.status, 200, 'the waiting scrape was answered')
  await answer.text()
  t.same({ message: cluster.listenerCount('message'), exit: cluster.listenerCount('exit') }, listeners, 'no listener left on cluster')
})

t.test('what a cluster needs is asked for where it belongs, and bad options say what to fix', async (t) => {
  const misuse = await fork(t, 'misuse')
  t.match(misuse.told.errors, [
    { code: 'FST_FANOUT_NOT_CLUSTER_PRIMARY', message: /register it there \(where cluster.isPrimary\)/ },
    { code: 'FST_FANOUT_INVALID_OPTION', message: /`metrics.listen` cannot be set with `metrics.cluster`/ }
  ])
  await exited(misuse.worker)

  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(fanout, { jwt: { secret: SECRET }, metrics: { cluster: true } }) },
    { code: 'FST_FANOUT_INVALID_OPTION', message: /`metrics.cluster` is for the workers of a node:cluster, and this process is not one/ })
  for (const [options, message] of [
    [{ path: 'metrics' }, /`clusterMetrics.path` must be a path starting with '\/'/],
    [{ timeout: 0 }, /`clusterMetrics.timeout` must be an integer number of milliseconds from 1 to 60000, got 0/],
    [{ timout: 100 }, /`clusterMetrics.timout` is unknown; did you mean `clusterMetrics.timeout`\?/]
  ] as const) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(clusterMetrics, options as ClusterMetricsOptions) }, { code: 'FST_FANOUT_INVALID_OPTION', message })
  }
  const wrongType = Fastify()
  t.teardown(() => wrongType.close())
  await t.rejects(async () => { await wrongType.register(fanout, { jwt: { secret: SECRET }, metrics: { cluster: 'yes' as never } }) },
    { code: 'FST_FANOUT_INVALID_OPTION', message: /`metrics.cluster` must be true or false, got "yes"/ })
})

t.test('each metric combines over workers as the machine needs it', async (t) => {
  // Two real registries' snapshots, as two workers would send them.
  const one = await build(t, { metrics: { serve: false } })
  const two = await build(t, { metrics: { serve: false } })
  await connect(t, one.wsUrl)
  const snapshot = async (app: typeof one.app): Promise<MetricSnapshot[]> => await app.fanout.metricsRegistry.getMetricsAsJSON() as unknown as MetricSnapshot[]
  const up = await snapshot(one.app)
  const down = (await snapshot(two.app)).map((metric) => metric.name === 'fanout_backplane_up' ? { ...metric, values: [{ value: 0, labels: {} }] } : metric)
  const text = await aggregate([up, down]).metrics()
  t.equal(sample(text, 'fanout_backplane_up'), 0, 'the backplane is up only where every worker has it')
  t.equal(sample(text, 'fanout_connections'), 1, 'connections add up')

  const lag = (value: number): MetricSnapshot => ({ name: 'nodejs_eventloop_lag_p99_seconds', help: 'p99', type: 'gauge', aggregator: 'average', values: [{ value, labels: {} }] })
  const summary = (p99: number, sum: number, count: number): MetricSnapshot => ({
    name: 'request_seconds',
    help: 'a summary',
    type: 'summary',
    values: [
      { value: p99, labels: { quantile: 0.99, route: '/' } },
      { value: sum, labels: { route: '/' }, metricName: 'request_seconds_sum' },
      { value: count, labels: { route: '/' }, metricName: 'request_seconds_count' }
    ]
  })
  const combined = await aggregate([[lag(0.01), summary(0.2, 3, 10)], [lag(0.5), summary(0.9, 4, 5)]]).metrics()
  t.equal(sample(combined, 'nodejs_eventloop_lag_p99_seconds'), 0.5, "event-loop delay: the worst worker's")
  t.equal(sample(combined, 'request_seconds', 'quantile="0.99",route="/"'), 0.9, "a summary's quantile: the worst worker's")
  t.equal(sample(combined, 'request_seconds_sum', 'route="/"'), 7, 'its sum and count add up')
  t.equal(sample(combined, 'request_seconds_count', 'route="/"'), 15)
  t.throws(() => aggregate([[{ ...lag(1), name: 'odd', aggregator: 'median' }]]), /metric odd: unknown aggregator 'median'/)

  // What a departed worker leaves: its counters, histograms and a summary's sum and count; not its gauges or quantiles.
  let retired = retire([], up)
  retired = retire(retired, [...up, summary(0.9, 4, 5)])
  const left = await aggregate([retired]).metrics()
  t.equal(sample(left, 'fanout_connections_accepted_total'), 2, 'counters of both departed workers')
  t.equal(sample(left, 'fanout_connections'), undefined, 'no gauge')
  t.equal(sample(left, 'fanout_backplane_up'), undefined)
  t.equal(sample(left, 'request_seconds_count', 'route="/"'), 5)
  t.equal(sample(left, 'request_seconds', 'quantile="0.99",route="/"'), undefined, 'no quantile')
  t.equal(retired.filter((metric) => metric.name === 'fanout_connections_accepted_total').length, 1, 'one entry per metric, however many workers departed')
})
