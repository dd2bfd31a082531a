import { once } from 'node:events'
import t from 'tap'
import { WebSocket } from 'ws'
import { closed, collect, nextMessage, runExample, until } from './helpers.js'
import { canListen, freePort, startRedis } from './redis-helpers.js'

/** Two ports in a row that were free a moment ago (worker n serves metrics on METRICS_PORT + n). */
async function freePortPair (): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    if (await canListen(port + 1) || attempt === 20) return port
  }
}

t.test('the cluster example runs workers on one port joined by Redis, and shuts down cleanly', async (t) => {
  const redis = await startRedis(t)
  // A fixed port: with port 0 each cluster worker would listen on a port of its own.
  const port = await freePort()
  const metricsPort = await freePortPair()
  const { child, output, base, userToken, serviceToken } = await runExample(t, '../example/cluster.ts', { PORT: String(port), WORKERS: '2', REDIS_URL: redis.url, METRICS_PORT: String(metricsPort) })
  t.match(output, /backplane: Redis/)
  t.match(output, `metrics (internal) http://127.0.0.1:${metricsPort}/metrics, one port per worker from there`)
  // The banner comes from the first worker; the second may still be starting.
  const answers = async (port: number): Promise<boolean> => await fetch(`http://127.0.0.1:${port}/metrics`).then(async (response) => { await response.text(); return response.ok }, () => false)
  await until(async () => await answers(metricsPort) && await answers(metricsPort + 1), 'both workers to be ready', 20_000)

  // New connections go round-robin over the workers: keep opening until both answered.
  const clients: WebSocket[] = []
  for (let i = 0; i < 6; i++) {
    const ws = new WebSocket(`${base.replace('http', 'ws')}/ws`, ['fanout.v1', `bearer.${userToken}`])
    t.teardown(() => ws.terminate())
    collect(ws) // buffer from the start: messages may arrive before the test waits for them
    await once(ws, 'open')
    clients.push(ws)
  }
  // Wait until both workers have subscribed (the second one may still be starting).
  let instances = 0
  for (let attempt = 0; attempt < 50 && instances < 2; attempt++) {
    const response = await fetch(`${base}/broadcast`, {
      method: 'POST',
      headers: { authorization: `Bearer ${serviceToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ data: { attempt } })
    })
    t.equal(response.status, 202)
    instances = (await response.json() as { instances: number }).instances
    for (const ws of clients) t.same((await nextMessage(ws)).data, { attempt }, 'each client gets each message once, whichever worker holds it')
  }
  t.equal(instances, 2, 'both workers took the message from Redis')
  const connections = await Promise.all([metricsPort, metricsPort + 1].map(async (port) => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
    return Number(/^fanout_connections (\d+)$/m.exec(text)?.[1])
  }))
  t.equal(connections[0] + connections[1], clients.length, 'each worker answers on its own metrics port')

  const closings = clients.map(closed)
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  for (const closing of closings) t.equal((await closing).code, 1001)
  const [code] = await exited as [number]
  t.equal(code, 0, 'the primary exits once every worker has')
})
