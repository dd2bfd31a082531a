// The fan-out benchmark: fastify-fanout against its Node.js peers, same load
// generator, same machine, same run.
//
//   npm run bench                       # 10,000 connections, every peer
//   CONNECTIONS=2000 PEERS=fanout,raw npm run bench
//
// For each server: idle memory per connection, then a quiet fan-out (one
// message per socket per turn) and a burst fan-out (ten messages per turn).
// Clients are spread over WORKERS load-generator processes and source
// addresses 127.0.0.2, 127.0.0.3, ... (each process here may hold at most
// 20,000 open files). Results: bench/results/fanout.json, a table on stdout,
// and bench/results/fanout.svg. Everything is loopback, bounded in count and
// time, and every child is stopped at the end.
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { fileURLToPath } from 'node:url'
import { createSigner } from 'fast-jwt'
import { BUCKET_BASE_MS, BUCKET_GROWTH, type WorkerConfig } from './loadgen/worker.js'

const CONNECTIONS = Number(process.env.CONNECTIONS ?? 10_000)
const WORKERS = Number(process.env.WORKERS ?? 4)
const SECONDS = Number(process.env.SECONDS ?? 5)
const QUIET_RATE = Number(process.env.QUIET_RATE ?? 10) // messages per second, one per turn
const BURST_RATE = Number(process.env.BURST_RATE ?? 20) // messages per second, ten per turn
const SIZE = Number(process.env.SIZE ?? 100)
const PEERS = (process.env.PEERS ?? 'raw,fanout,ws,fastify-websocket,socketio').split(',')
const SECRET = 'bench-secret-bench-secret-bench-secret'
const token = createSigner({ key: SECRET })({ sub: 'bench' })

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url))
const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

function spawn (script: string, env: Record<string, string> = {}): ChildProcess {
  return fork(here(script), [], { execArgv: ['--import', 'tsx'], env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
}

async function ask<T> (child: ChildProcess, message: object): Promise<T> {
  const reply = once(child, 'message') as Promise<[T]>
  child.send(message)
  return (await reply)[0]
}

interface Report { connected: number, failed: number, received: number, histogram: number[] }

function percentiles (histogram: number[]): Record<string, number | null> {
  const total = histogram.reduce((a, b) => a + b, 0)
  const at = (p: number): number | null => {
    if (total === 0) return null
    let seen = 0
    for (let i = 0; i < histogram.length; i++) {
      seen += histogram[i] as number
      if (seen >= p * total) return Math.round(BUCKET_BASE_MS * BUCKET_GROWTH ** (i + 1) * 100) / 100
    }
    return null
  }
  return { p50_ms: at(0.5), p90_ms: at(0.9), p99_ms: at(0.99), max_ms: at(1) }
}

async function reports (workers: ChildProcess[]): Promise<Report> {
  const all = await Promise.all(workers.map(async (worker) => await ask<Report>(worker, { cmd: 'report' })))
  const histogram = new Array(all[0]?.histogram.length ?? 0).fill(0) as number[]
  for (const report of all) report.histogram.forEach((count, i) => { histogram[i] = (histogram[i] as number) + count })
  return { connected: all.reduce((s, r) => s + r.connected, 0), failed: all.reduce((s, r) => s + r.failed, 0), received: all.reduce((s, r) => s + r.received, 0), histogram }
}

async function fanOut (server: ChildProcess, workers: ChildProcess[], connections: number, rate: number, burst: number): Promise<Record<string, unknown>> {
  await Promise.all(workers.map(async (worker) => await ask(worker, { cmd: 'reset' })))
  const result = await ask<{ messages: number, cpu_user_us: number, cpu_system_us: number, elapsed_ms: number }>(server, { cmd: 'broadcast', rate, seconds: SECONDS, burst, size: SIZE })
  const expected = result.messages * connections
  let report = await reports(workers)
  for (let waited = 0; report.received < expected && waited < 10_000; waited += 250) {
    await sleep(250)
    report = await reports(workers)
  }
  const cpu = result.cpu_user_us + result.cpu_system_us
  return {
    offered_deliveries_per_s: rate * connections,
    delivered: report.received,
    lost: expected - report.received,
    deliveries_per_s: Math.round(report.received / (result.elapsed_ms / 1000)),
    cpu_us_per_delivery: Math.round((cpu / Math.max(1, report.received)) * 100) / 100,
    cpu_s_per_million: Math.round((cpu / Math.max(1, report.received)) * 100) / 100,
    ...percentiles(report.histogram)
  }
}

async function measurePeer (peer: string): Promise<Record<string, unknown>> {
  const server = spawn(`./servers/${peer}.ts`, { JWT_SECRET: SECRET })
  const [ready] = await once(server, 'message') as [{ port: number, name: string }]
  const before = await ask<{ rss: number, heapUsed: number }>(server, { cmd: 'memory' })
  const workers: ChildProcess[] = []
  const perWorker = Math.ceil(CONNECTIONS / WORKERS)
  for (let i = 0; i < WORKERS; i++) {
    const worker = spawn('./loadgen/worker.ts')
    await once(worker, 'message')
    const config: WorkerConfig = {
      host: '127.0.0.1',
      port: ready.port,
      path: peer === 'socketio' ? '/socket.io/?EIO=4&transport=websocket' : `/ws?token=${token}`,
      headers: {},
      count: Math.min(perWorker, CONNECTIONS - i * perWorker),
      localAddress: `127.0.0.${2 + i}`,
      connectRate: 2000,
      protocol: peer === 'socketio' ? 'socketio' : 'ws'
    }
    worker.send({ cmd: 'start', config })
    workers.push(worker)
  }
  let report = await reports(workers)
  const deadline = Date.now() + 60_000
  while (report.connected + report.failed < CONNECTIONS && Date.now() < deadline) {
    await sleep(250)
    report = await reports(workers)
  }
  await sleep(500) // socket.io clients join their namespace after the open packet
  const after = await ask<{ rss: number, heapUsed: number, connections: number }>(server, { cmd: 'memory' })
  const connections = after.connections
  const result = {
    server: ready.name,
    connections,
    failed_connections: report.failed,
    memory_per_connection: {
      rss_bytes: Math.round((after.rss - before.rss) / Math.max(1, connections)),
      heap_bytes: Math.round((after.heapUsed - before.heapUsed) / Math.max(1, connections))
    },
    quiet: await fanOut(server, workers, connections, QUIET_RATE, 1),
    burst: await fanOut(server, workers, connections, BURST_RATE, 10)
  }
  for (const worker of workers) worker.send({ cmd: 'close' })
  server.send({ cmd: 'stop' })
  await Promise.all([...workers, server].map(async (child) => child.exitCode === null ? await once(child, 'exit') : undefined))
  return result
}

const results: Array<Record<string, unknown>> = []
for (const peer of PEERS) {
  process.stderr.write(`measuring ${peer}...\n`)
  results.push(await measurePeer(peer))
}

const floor = results.find((r) => r.server === 'raw net floor') as { quiet: { cpu_us_per_delivery: number } } | undefined
for (const result of results) {
  const quiet = result.quiet as { cpu_us_per_delivery: number }
  result.quiet_cpu_vs_floor = floor === undefined ? null : Math.round((quiet.cpu_us_per_delivery / floor.quiet.cpu_us_per_delivery) * 100) / 100
}
const output = {
  benchmark: 'fan-out to many WebSocket connections',
  command: 'npm run bench',
  machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
  load: { connections: CONNECTIONS, load_generator_processes: WORKERS, seconds_per_run: SECONDS, quiet_rate_per_s: QUIET_RATE, burst_rate_per_s: BURST_RATE, burst: 10, message_bytes: SIZE },
  results
}
await writeFile(new URL('./results/fanout.json', import.meta.url), JSON.stringify(output, null, 2) + '\n')

type Row = Record<string, any>
const table = ['| server | heap/conn | RSS/conn | quiet µs/delivery | vs floor | quiet p99 | burst deliveries/s | burst µs/delivery | burst lost | burst p99 |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |']
const kib = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`
for (const r of results as Row[]) {
  table.push(`| ${r.server} | ${kib(r.memory_per_connection.heap_bytes)} | ${kib(r.memory_per_connection.rss_bytes)} | ${r.quiet.cpu_us_per_delivery} | ${r.quiet_cpu_vs_floor === null ? '-' : `${r.quiet_cpu_vs_floor}x`} | ${r.quiet.p99_ms} ms | ${r.burst.deliveries_per_s} | ${r.burst.cpu_us_per_delivery} | ${r.burst.lost} | ${r.burst.p99_ms} ms |`)
}
process.stdout.write(table.join('\n') + '\n')

// A small SVG: CPU per delivery (quiet and burst) per server.
const rows = results as Row[]
const max = Math.max(...rows.flatMap((r) => [r.quiet.cpu_us_per_delivery, r.burst.cpu_us_per_delivery]), 1)
const bar = (y: number, value: number, color: string): string => `<rect x="220" y="${y}" width="${Math.round((value / max) * 440)}" height="12" fill="${color}"/><text x="${226 + Math.round((value / max) * 440)}" y="${y + 10}" font-size="11">${value} µs</text>`
const svg = [`<svg xmlns="http://www.w3.org/2000/svg" width="760" height="${60 + rows.length * 40}" font-family="sans-serif">`,
  `<text x="10" y="20" font-size="14">Server CPU per delivery, ${CONNECTIONS} connections (blue: quiet, orange: bursts of 10)</text>`,
  ...rows.map((r, i) => `<text x="10" y="${52 + i * 40}" font-size="12">${r.server}</text>${bar(40 + i * 40, r.quiet.cpu_us_per_delivery, '#1f6feb')}${bar(54 + i * 40, r.burst.cpu_us_per_delivery, '#f0883e')}`),
  '</svg>'].join('\n')
await writeFile(new URL('./results/fanout.svg', import.meta.url), svg + '\n')
