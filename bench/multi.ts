// Many connections over several processes joined by Redis.
//
//   npm run bench:multi            # 50,000 connections over 3 fastify-fanout workers
//
// Starts its own redis-server, INSTANCES fastify-fanout processes joined by
// it (each under the 20,000-open-files cap of a process here), and load
// generator processes from source addresses 127.0.0.2, 127.0.0.3, ..., two
// per instance. One instance broadcasts RATE messages/s for SECONDS; every
// client on every instance must get every message. Results:
// bench/results/multi.json. Loopback only, bounded, every child stopped.
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { freePort, spawnRedis } from '../test/redis-helpers.js'
import { ask, machine, percentiles, reports, sleep, spawn } from './harness.js'
import type { WorkerConfig } from './loadgen/worker.js'

const CONNECTIONS = Number(process.env.CONNECTIONS ?? 50_000)
const INSTANCES = Number(process.env.INSTANCES ?? 3)
const RATE = Number(process.env.RATE ?? 2)
const SECONDS = Number(process.env.SECONDS ?? 5)
const SECRET = 'bench-secret-bench-secret-bench-secret'

const redisPort = await freePort()
const redis = await spawnRedis(redisPort)

const servers: Array<{ child: ChildProcess, port: number }> = []
for (let i = 0; i < INSTANCES; i++) {
  const child = spawn('./servers/fanout.ts', { JWT_SECRET: SECRET, REDIS_URL: `redis://127.0.0.1:${redisPort}`, CHANNEL_PREFIX: 'bench-multi:' })
  const [ready] = await once(child, 'message') as [{ port: number }]
  servers.push({ child, port: ready.port })
}

const workers: ChildProcess[] = []
const workerCount = INSTANCES * 2
const perWorker = Math.ceil(CONNECTIONS / workerCount)
const started = Date.now()
for (let i = 0; i < workerCount; i++) {
  const worker = spawn('./loadgen/worker.ts')
  await once(worker, 'message')
  const config: WorkerConfig = {
    host: '127.0.0.1',
    port: servers[i % INSTANCES]?.port as number,
    path: '/ws?token={token}',
    users: Math.max(1, Math.floor(CONNECTIONS / 10)),
    firstIndex: i * perWorker,
    jwtSecret: SECRET,
    headers: {},
    count: Math.min(perWorker, CONNECTIONS - i * perWorker),
    localAddress: `127.0.0.${2 + i}`,
    connectRate: 3000,
    protocol: 'ws'
  }
  worker.send({ cmd: 'start', config })
  workers.push(worker)
}
let report = await reports(workers)
while (report.connected + report.failed < CONNECTIONS && Date.now() - started < 120_000) {
  await sleep(500)
  report = await reports(workers)
}
const connectSeconds = (Date.now() - started) / 1000
const perInstance = await Promise.all(servers.map(async ({ child }) => (await ask<{ connections: number, rss: number }>(child, { cmd: 'memory' }))))
const connections = perInstance.reduce((sum, s) => sum + s.connections, 0)

await Promise.all(workers.map(async (worker) => await ask(worker, { cmd: 'reset' })))
const run = await ask<{ messages: number, deliveries_expected: number, cpu_user_us: number, cpu_system_us: number, elapsed_ms: number }>(servers[0]?.child as ChildProcess, { cmd: 'broadcast', rate: RATE, seconds: SECONDS, burst: 1, size: 100 })
const expected = run.messages * connections
for (let waited = 0; report.received < expected && waited < 15_000; waited += 500) {
  await sleep(500)
  report = await reports(workers)
}
report = await reports(workers)

const result = {
  benchmark: 'connections over several processes joined by Redis',
  command: 'npm run bench:multi',
  machine: machine(),
  load: { connections_requested: CONNECTIONS, instances: INSTANCES, load_generator_processes: workerCount, rate_per_s: RATE, seconds: SECONDS },
  connections,
  connections_per_instance: perInstance.map((s) => s.connections),
  rss_mib_per_instance: perInstance.map((s) => Math.round(s.rss / 1048576)),
  failed_connections: report.failed,
  connect_seconds: Math.round(connectSeconds * 10) / 10,
  messages: run.messages,
  expected_deliveries: expected,
  delivered: report.received,
  lost: expected - report.received,
  ...percentiles(report.histogram)
}

for (const worker of workers) worker.send({ cmd: 'close' })
for (const { child } of servers) child.send({ cmd: 'stop' })
await Promise.all([...workers, ...servers.map((s) => s.child)].map(async (child) => child.exitCode === null ? await once(child, 'exit') : undefined))
redis.kill('SIGKILL')
const json = JSON.stringify(result, null, 2)
await writeFile(new URL('./results/multi.json', import.meta.url), json + '\n')
process.stdout.write(json + '\n')
