import { once } from 'node:events'
import t from 'tap'
import { WebSocket } from 'ws'
import { closed, collect, nextMessage, runExample } from './helpers.js'
import { freePort, startRedis } from './redis-helpers.js'

t.test('the cluster example runs workers on one port joined by Redis, and shuts down cleanly', async (t) => {
  const redis = await startRedis(t)
  // A fixed port: with port 0 each cluster worker would listen on a port of its own.
  const port = await freePort()
  const { child, output, base, userToken, serviceToken } = await runExample(t, '../example/cluster.ts', { PORT: String(port), WORKERS: '2', REDIS_URL: redis.url })
  t.match(output, /backplane: Redis/)

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

  const closings = clients.map(closed)
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  for (const closing of closings) t.equal((await closing).code, 1001)
  const [code] = await exited as [number]
  t.equal(code, 0, 'the primary exits once every worker has')
})
