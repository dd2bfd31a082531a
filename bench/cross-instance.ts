// Cross-instance latency and recovery after a Redis restart.
//
//   npm run bench:redis
//
// Starts its own redis-server on a free port and three fastify-fanout
// instances in three processes joined by it, plus, as the baseline in the
// same run, one instance on the embedded backplane. Clients (in this
// process) connect to every instance; a publisher posts to instance A over
// HTTP at a fixed rate. Latency is post-to-receipt, both ends timed by this
// process's clock. Then Redis is killed and restarted on the same port while
// posting goes on, and the time from the restart to the first message that
// crosses instances again is the recovery time. Results: JSON on stdout and
// in bench/results/cross-instance.json. Bounded: a few thousand messages, a
// few seconds, loopback only.
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { createSigner } from 'fast-jwt'
import { WebSocket } from 'ws'
import { freePort, spawnRedis as startRedis } from '../test/redis-helpers.js'
import { machine, sleep, spawn } from './harness.js'

const SECRET = 'bench-secret-bench-secret-bench-secret'
const CLIENTS_PER_INSTANCE = Number(process.env.CLIENTS ?? 20)
const MESSAGES = Number(process.env.MESSAGES ?? 2000)
const RATE = Number(process.env.RATE ?? 200) // messages per second
const sign = createSigner({ key: SECRET })
const now = (): number => performance.timeOrigin + performance.now()

async function startInstance (env: Record<string, string>): Promise<{ child: ChildProcess, port: number }> {
  const child = spawn('./servers/fanout.ts', { JWT_SECRET: SECRET, ...env })
  const [ready] = await once(child, 'message') as [{ port: number }]
  return { child, port: ready.port }
}

interface Client { ws: WebSocket, instance: string }

async function connectClients (port: number, instance: string, onMessage: (instance: string, data: { seq: number, sent: number }) => void, count = CLIENTS_PER_INSTANCE): Promise<Client[]> {
  const clients: Client[] = []
  for (let i = 0; i < count; i++) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${sign({ sub: `${instance}-${i}` })}`, { perMessageDeflate: false })
    ws.on('message', (raw: Buffer) => { onMessage(instance, (JSON.parse(raw.toString()) as { data: { seq: number, sent: number } }).data) })
    await once(ws, 'open')
    clients.push({ ws, instance })
  }
  return clients
}

function percentiles (values: number[]): Record<string, number> {
  const sorted = [...values].sort((a, b) => a - b)
  const at = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number
  const round = (ms: number): number => Math.round(ms * 1000) / 1000
  return { count: sorted.length, p50_ms: round(at(0.5)), p90_ms: round(at(0.9)), p99_ms: round(at(0.99)), max_ms: round(sorted[sorted.length - 1] ?? 0) }
}

async function post (port: number, data: unknown, token: string): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${port}/broadcast`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ data })
  })
  await response.arrayBuffer()
  return response.status
}

/** Posts MESSAGES messages at RATE; resolves once `expected` arrivals were recorded per instance (or 10 s passed). */
async function measure (publishPort: number, latencies: Map<string, number[]>, token: string, expected: number): Promise<void> {
  const interval = 1000 / RATE
  const start = now()
  for (let seq = 0; seq < MESSAGES; seq++) {
    const due = start + seq * interval
    const wait = due - now()
    if (wait > 1) await sleep(wait)
    // Not awaited: posts go out at the rate whatever their answer time.
    post(publishPort, { seq, sent: now() }, token).catch((err: unknown) => { process.stderr.write(`post failed: ${String(err)}\n`) })
  }
  const deadline = now() + 10_000
  while ([...latencies.values()].some((list) => list.length < expected) && now() < deadline) await sleep(20)
}

const redisPort = await freePort()
let redis = await startRedis(redisPort)
const redisUrl = `redis://127.0.0.1:${redisPort}`
const service = sign({ sub: 'bench', scope: 'broadcast' })

const joined = await Promise.all(['A', 'B', 'C'].map(async () => await startInstance({ REDIS_URL: redisUrl, CHANNEL_PREFIX: 'bench:' })))
const embedded = await startInstance({ REDIS_URL: '' })
const children = [...joined.map((i) => i.child), embedded.child]

const latencies = new Map<string, number[]>([['A', []], ['B', []], ['C', []]])
let lastCrossArrival = 0
const onMessage = (instance: string, data: { seq: number, sent: number }): void => {
  const arrived = now()
  if (data.seq >= 0) latencies.get(instance)?.push(arrived - data.sent) // seq -1: recovery probes
  else if (instance !== 'A') lastCrossArrival = arrived
}
const clients = [
  ...await connectClients(joined[0]?.port as number, 'A', onMessage),
  ...await connectClients(joined[1]?.port as number, 'B', onMessage),
  ...await connectClients(joined[2]?.port as number, 'C', onMessage)
]
await measure(joined[0]?.port as number, latencies, service, MESSAGES * CLIENTS_PER_INSTANCE)

// Baseline in the same run: one instance on the embedded backplane holding
// as many clients as the three together, at the same rate, so this process
// receives the same number of messages per second.
const baseline = new Map<string, number[]>([['embedded', []]])
const baselineClients = await connectClients(embedded.port, 'embedded', (_instance, data) => { baseline.get('embedded')?.push(now() - data.sent) }, 3 * CLIENTS_PER_INSTANCE)
await measure(embedded.port, baseline, service, 3 * MESSAGES * CLIENTS_PER_INSTANCE)

// Recovery: kill Redis, restart it on the same port, keep posting every 10 ms.
const posting = { on: true, partial: 0 }
const poster = (async () => {
  for (let seq = 0; posting.on; seq++) {
    const status = await post(joined[0]?.port as number, { seq: -1, sent: now() }, service).catch(() => 0)
    if (status === 503) posting.partial++
    await sleep(10)
  }
})()
await sleep(300)
const exited = once(redis, 'exit')
redis.kill('SIGKILL')
await exited
await sleep(1000)
const restartedAt = now()
redis = await startRedis(redisPort)
const recoveryDeadline = now() + 15_000
const recovered = (): boolean => lastCrossArrival >= restartedAt
while (!recovered() && now() < recoveryDeadline) await sleep(5)
const recoveryMs = lastCrossArrival >= restartedAt ? Math.round(lastCrossArrival - restartedAt) : null
posting.on = false
await poster

const cross = [...(latencies.get('B') ?? []), ...(latencies.get('C') ?? [])]
const expectedPerInstance = MESSAGES * CLIENTS_PER_INSTANCE
const result = {
  benchmark: 'cross-instance latency and Redis recovery',
  command: 'npm run bench:redis',
  machine: machine(),
  load: { instances: 3, clients_per_instance: CLIENTS_PER_INSTANCE, baseline_clients: 3 * CLIENTS_PER_INSTANCE, messages: MESSAGES, rate_per_s: RATE },
  latency: {
    same_instance_via_redis: percentiles(latencies.get('A') ?? []),
    cross_instance_via_redis: percentiles(cross),
    baseline_embedded_one_instance: percentiles(baseline.get('embedded') ?? [])
  },
  lost: {
    via_redis: 3 * expectedPerInstance - [...latencies.values()].reduce((sum, list) => sum + list.length, 0),
    embedded: 3 * expectedPerInstance - (baseline.get('embedded')?.length ?? 0)
  },
  recovery_after_redis_restart_ms: recoveryMs,
  posts_answered_503_while_down: posting.partial
}
const ratio = (a: number | undefined, b: number | undefined): number | null => a === undefined || b === undefined || b === 0 ? null : Math.round((a / b) * 100) / 100
Object.assign(result, {
  ratio_cross_to_embedded: {
    p50: ratio(result.latency.cross_instance_via_redis.p50_ms, result.latency.baseline_embedded_one_instance.p50_ms),
    p99: ratio(result.latency.cross_instance_via_redis.p99_ms, result.latency.baseline_embedded_one_instance.p99_ms)
  }
})

for (const { ws } of [...clients, ...baselineClients]) ws.terminate()
for (const child of children) child.send({ cmd: 'stop' })
await Promise.all(children.map(async (child) => child.exitCode === null ? await once(child, 'exit') : undefined))
redis.kill('SIGKILL')

const json = JSON.stringify(result, null, 2)
await writeFile(new URL('./results/cross-instance.json', import.meta.url), json + '\n')
process.stdout.write(json + '\n')
