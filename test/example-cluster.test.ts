import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { promisify } from 'node:util'
import t from 'tap'
import { WebSocket } from 'ws'
import { closed, collect, nextMessage, runExample, sample, until } from './helpers.js'
import { freePort, startRedis } from './redis-helpers.js'

/** The pids of the cluster workers of the primary `pid` (its children that run the script). */
async function workersOf (pid: number): Promise<number[]> {
  const { stdout } = await promisify(execFile)('pgrep', ['-P', String(pid), '-f', 'example/cluster.ts'])
  return stdout.trim().split('\n').map(Number)
}

/** Every sample of a scrape's counters, by series. */
function counters (text: string): Map<string, number> {
  const names = new Set([...text.matchAll(/^# TYPE (\S+) counter$/gm)].map((match) => match[1] as string))
  const series = new Map<string, number>()
  for (const [, key, name, value] of text.matchAll(/^((\w+)(?:\{[^}]*\})?) (\S+)$/gm) as IterableIterator<[string, string, string, string]>) {
    if (names.has(name)) series.set(key, Number(value))
  }
  return series
}

t.test('the cluster example runs workers on one port joined by Redis, serves the whole machine\'s metrics, and shuts down cleanly', async (t) => {
  const redis = await startRedis(t)
  // A fixed port: with port 0 each cluster worker would listen on a port of its own.
  const port = await freePort()
  const metricsPort = await freePort()
  const { child, output, base, userToken, serviceToken } = await runExample(t, '../example/cluster.ts', { PORT: String(port), WORKERS: '2', REDIS_URL: redis.url, METRICS_PORT: String(metricsPort) })
  t.match(output, /backplane: Redis/)
  t.match(output, `metrics (internal) http://127.0.0.1:${metricsPort}/metrics, the whole machine's (served by the primary)`)
  const scrapes: string[] = []
  const scrape = async (): Promise<string> => {
    const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
    t.equal(response.status, 200, 'the primary answers every scrape')
    const text = await response.text()
    const previous = scrapes.at(-1)
    if (previous !== undefined) {
      const before = counters(previous)
      const after = counters(text)
      t.same([...before].filter(([series, value]) => (after.get(series) ?? 0) < value).map(([series]) => series), [], 'no counter went back since the last scrape')
    }
    scrapes.push(text)
    return text
  }
  // The banner comes from the first worker; the second may still be starting.
  await until(async () => sample(await scrape(), 'fanout_cluster_workers', 'state="reporting"') === 2, 'both workers to report', 20_000)

  // New connections go round-robin over the workers.
  const clients: WebSocket[] = []
  for (let i = 0; i < 6; i++) {
    const ws = new WebSocket(`${base.replace('http', 'ws')}/ws`, ['fanout.v1', `bearer.${userToken}`])
    t.teardown(() => ws.terminate())
    collect(ws) // buffer from the start: messages may arrive before the test waits for them
    await once(ws, 'open')
    clients.push(ws)
  }
  const broadcast = async (data: unknown): Promise<number> => {
    const response = await fetch(`${base}/broadcast`, {
      method: 'POST',
      headers: { authorization: `Bearer ${serviceToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ data })
    })
    t.equal(response.status, 202)
    const { instances } = await response.json() as { instances: number }
    for (const ws of clients) {
      if (ws.readyState === WebSocket.OPEN) t.same((await nextMessage(ws)).data, data, 'each client gets each message once, whichever worker holds it')
    }
    return instances
  }
  // Wait until both workers have subscribed (the second one may still be starting).
  let instances = 0
  for (let attempt = 0; attempt < 50 && instances < 2; attempt++) instances = await broadcast({ attempt })
  t.equal(instances, 2, 'both workers took the message from Redis')

  // Broadcasts reach the clients of both workers: the machine's counts are the sum over them.
  let text = await scrape()
  t.equal(sample(text, 'fanout_connections'), clients.length, 'connections of every worker')
  for (let round = 0; round < 3; round++) {
    const before = text
    for (let i = 0; i < 2; i++) await broadcast({ round, i })
    text = await scrape()
    const added = (name: string): number => (sample(text, name) ?? NaN) - (sample(before, name) ?? NaN)
    t.equal(added('fanout_messages_sent_total'), 2 * clients.length, 'deliveries of every worker')
    t.equal(added('fanout_broadcasts_total'), 2 * 2, 'each worker fanned each broadcast out')
    t.equal(added('fanout_backplane_published_total'), 2, 'each broadcast published once')
  }
  t.equal(sample(text, 'fanout_backplane_up'), 1)

  // A worker that dies: the scrape still answers, and what it counted stays.
  const [victim] = await workersOf(child.pid as number)
  const beforeKill = await scrape()
  process.kill(victim as number, 'SIGKILL')
  await until(() => clients.some((ws) => ws.readyState === WebSocket.CLOSED), 'its clients to see it die')
  const afterKill = await scrape() // it checks that no counter went back
  t.ok((sample(afterKill, 'fanout_messages_sent_total') ?? 0) >= (sample(beforeKill, 'fanout_messages_sent_total') ?? Infinity), 'its deliveries stay counted')
  await until(async () => sample(await scrape(), 'fanout_cluster_workers', 'state="reporting"') === 2, 'the primary to start another worker', 20_000)
  const open = clients.filter((ws) => ws.readyState === WebSocket.OPEN)
  t.equal(sample(await scrape(), 'fanout_connections'), open.length, 'the dead worker\'s connections are gone')
  t.ok(scrapes.length >= 8, 'many scrapes, none went back')

  const closings = open.map(closed)
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  for (const closing of closings) t.equal((await closing).code, 1001)
  const [code] = await exited as [number]
  t.equal(code, 0, 'the primary exits once every worker has')
  await t.rejects(fetch(`http://127.0.0.1:${metricsPort}/metrics`), 'the metrics server closed with the primary')
})
