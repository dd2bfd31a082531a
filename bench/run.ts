// The fan-out benchmark: fastify-fanout against its Node.js peers, same load
// generator, same machine, same run.
//
//   npm run bench                       # 10,000 connections, every peer
//   CONNECTIONS=2000 PEERS=fanout,raw npm run bench
//
// Peers: the raw net floor, fastify-fanout, idiomatic ws (serialize once, send
// the same payload to every client, as ws's own broadcast example does), and
// the naive peers (ws and @fastify/websocket serializing per client,
// Socket.IO's io.emit). The ratios that matter are against idiomatic ws.
// For each server: connect rate, idle memory per connection, a quiet fan-out
// (one message per socket per turn), a burst fan-out (ten messages per turn),
// then saturation: the burst rate doubles until the server falls behind
// (loss, or p99 over a second).
// Clients are spread over WORKERS load-generator processes and source
// addresses 127.0.0.2, 127.0.0.3, ... (each process here may hold at most
// 20,000 open files). Results: bench/results/fanout.json, a table on stdout,
// bench/results/fanout.svg (CPU) and fanout-latency.svg (latency distribution);
// RESULTS=name writes name.json and so on instead. Everything is loopback, bounded in count and
// time, and every child is stopped at the end.
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { ask, distribution, machine, percentiles, reports, sleep, spawn } from './harness.js'
import type { WorkerConfig } from './loadgen/worker.js'

const CONNECTIONS = Number(process.env.CONNECTIONS ?? 10_000)
const WORKERS = Number(process.env.WORKERS ?? 4)
const SECONDS = Number(process.env.SECONDS ?? 5)
const QUIET_RATE = Number(process.env.QUIET_RATE ?? 10) // messages per second, one per turn
const BURST_RATE = Number(process.env.BURST_RATE ?? 20) // messages per second, ten per turn
const SIZE = Number(process.env.SIZE ?? 100)
const PATTERN = process.env.PATTERN === 'random' ? 'random' : 'fixed' // random sizes, burst lengths, 20% sent to one user
const PEERS = (process.env.PEERS ?? 'raw,fanout,ws-idiomatic,ws,fastify-websocket,socketio').split(',')
const RESULTS = process.env.RESULTS ?? 'fanout' // bench/results/<RESULTS>.json, .svg, -latency.svg
const SATURATION = process.env.SATURATION !== '0' // ramp the burst rate until a peer falls behind
const SATURATION_RATES = [40, 80, 160, 320] // messages per second, bursts of 10
const CONNECT_RATE = Number(process.env.CONNECT_RATE ?? 4000) // per load-generator process
const SECRET = 'bench-secret-bench-secret-bench-secret'
const USERS = Math.max(1, Math.floor(CONNECTIONS / 10)) // ten connections per user

async function fanOut (server: ChildProcess, workers: ChildProcess[], connections: number, rate: number, burst: number): Promise<Record<string, unknown>> {
  await Promise.all(workers.map(async (worker) => await ask(worker, { cmd: 'reset' })))
  const result = await ask<{ messages: number, deliveries_expected: number, cpu_user_us: number, cpu_system_us: number, elapsed_ms: number, sending_ms: number, loop_delay_p99_ms: number, loop_delay_max_ms: number }>(server, { cmd: 'broadcast', rate, seconds: SECONDS, burst, size: SIZE, pattern: PATTERN, users: USERS })
  const expected = result.deliveries_expected // broadcasts reach everyone, targeted messages one user's connections
  let report = await reports(workers)
  const drainStarted = Date.now()
  while (report.received < expected && Date.now() - drainStarted < 10_000) {
    await sleep(100)
    report = await reports(workers)
  }
  // From the first message to the last delivery seen.
  const windowMs = result.sending_ms + (report.received >= expected ? Date.now() - drainStarted : 10_000)
  const cpu = result.cpu_user_us + result.cpu_system_us
  return {
    offered_deliveries_per_s: rate * connections,
    // A server that cannot emit at the offered rate sends fewer messages.
    sent_deliveries_per_s: Math.round(expected / (result.sending_ms / 1000)),
    delivered: report.received,
    lost: expected - report.received,
    deliveries_per_s: Math.round(report.received / (windowMs / 1000)),
    cpu_us_per_delivery: Math.round((cpu / Math.max(1, report.received)) * 100) / 100,
    cpu_s_per_million: Math.round((cpu / Math.max(1, report.received)) * 100) / 100,
    server_loop_delay_p99_ms: result.loop_delay_p99_ms,
    server_loop_delay_max_ms: result.loop_delay_max_ms,
    ...percentiles(report.histogram),
    latency_distribution: distribution(report.histogram)
  }
}

async function measurePeer (peer: string): Promise<Record<string, unknown>> {
  const server = spawn(`./servers/${peer}.ts`, { JWT_SECRET: SECRET })
  const [ready] = await once(server, 'message') as [{ port: number, name: string }]
  const before = await ask<{ rss: number, heapUsed: number }>(server, { cmd: 'memory' })
  const connectStarted = Date.now()
  const workers: ChildProcess[] = []
  const perWorker = Math.ceil(CONNECTIONS / WORKERS)
  for (let i = 0; i < WORKERS; i++) {
    const worker = spawn('./loadgen/worker.ts')
    await once(worker, 'message')
    const config: WorkerConfig = {
      host: '127.0.0.1',
      port: ready.port,
      path: peer === 'socketio' ? '/socket.io/?EIO=4&transport=websocket&user={user}' : peer === 'fanout' ? '/ws?token={token}' : '/ws?user={user}',
      users: USERS,
      firstIndex: i * perWorker,
      jwtSecret: peer === 'fanout' ? SECRET : undefined,
      headers: {},
      count: Math.min(perWorker, CONNECTIONS - i * perWorker),
      localAddress: `127.0.0.${2 + i}`,
      connectRate: CONNECT_RATE,
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
  const connectSeconds = (Date.now() - connectStarted) / 1000
  await sleep(500) // socket.io clients join their namespace after the open packet
  const after = await ask<{ rss: number, heapUsed: number, connections: number }>(server, { cmd: 'memory' })
  const connections = after.connections
  const result = {
    server: ready.name,
    connections,
    failed_connections: report.failed,
    // Offered: WORKERS x CONNECT_RATE connections/s; fastify-fanout verifies a JWT on each.
    connects_per_s: Math.round(report.connected / connectSeconds),
    memory_per_connection: {
      rss_bytes: Math.round((after.rss - before.rss) / Math.max(1, connections)),
      heap_bytes: Math.round((after.heapUsed - before.heapUsed) / Math.max(1, connections))
    },
    quiet: await fanOut(server, workers, connections, QUIET_RATE, 1),
    burst: await fanOut(server, workers, connections, BURST_RATE, 10),
    saturation: [] as Array<Record<string, unknown>>
  }
  if (SATURATION) {
    for (const rate of SATURATION_RATES) {
      const step = await fanOut(server, workers, connections, rate, 10)
      result.saturation.push({ rate_per_s: rate, ...step, latency_distribution: undefined })
      const keptUp = (step.lost as number) === 0 && (step.p99_ms as number) < 1000 &&
        (step.sent_deliveries_per_s as number) >= 0.9 * (step.offered_deliveries_per_s as number)
      if (!keptUp) break // fell behind: later steps would only queue more
    }
  }
  for (const worker of workers) worker.send({ cmd: 'close' })
  server.send({ cmd: 'stop' })
  await Promise.all([...workers, server].map(async (child) => child.exitCode === null ? await once(child, 'exit') : undefined))
  return result
}

// Other work on the machine skews every figure; this shows how busy it was
// before the run added its own processes.
const loadAverage = Math.round((loadavg()[0] ?? 0) * 100) / 100
const results: Array<Record<string, unknown>> = []
for (const peer of PEERS) {
  process.stderr.write(`measuring ${peer}...\n`)
  results.push(await measurePeer(peer))
}

const floor = results.find((r) => r.server === 'raw net floor') as { quiet: { cpu_us_per_delivery: number } } | undefined
const idiomatic = results.find((r) => r.server === 'ws (idiomatic)') as { quiet: { cpu_us_per_delivery: number }, burst: { cpu_us_per_delivery: number } } | undefined
const ratio = (value: number, reference: number | undefined): number | null => reference === undefined ? null : Math.round((value / reference) * 100) / 100
for (const result of results) {
  const { quiet, burst } = result as { quiet: { cpu_us_per_delivery: number }, burst: { cpu_us_per_delivery: number } }
  result.quiet_cpu_vs_floor = ratio(quiet.cpu_us_per_delivery, floor?.quiet.cpu_us_per_delivery)
  // Against idiomatic ws: what a competent engineer would otherwise write.
  result.quiet_cpu_vs_ws = ratio(quiet.cpu_us_per_delivery, idiomatic?.quiet.cpu_us_per_delivery)
  result.burst_cpu_vs_ws = ratio(burst.cpu_us_per_delivery, idiomatic?.burst.cpu_us_per_delivery)
}
const output = {
  benchmark: 'fan-out to many WebSocket connections',
  command: 'npm run bench',
  machine: machine({ load_average_1m_at_start: loadAverage }),
  load: { pattern: PATTERN, users: USERS, connections: CONNECTIONS, load_generator_processes: WORKERS, seconds_per_run: SECONDS, quiet_rate_per_s: QUIET_RATE, burst_rate_per_s: BURST_RATE, burst: 10, message_bytes: SIZE },
  results
}
await writeFile(new URL(`./results/${RESULTS}.json`, import.meta.url), JSON.stringify(output, null, 2) + '\n')

type Row = Record<string, any>
const table = ['| server | connects/s | heap/conn | RSS/conn | quiet µs/delivery | vs ws | vs floor | quiet p99 | burst deliveries/s | burst µs/delivery | vs ws | burst lost | burst p99 | burst loop delay max | kept up with |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |']
const times = (value: number | null): string => value === null ? '-' : `${value}x`
const kib = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`
for (const r of results as Row[]) {
  const kept = (r.saturation as Row[]).filter((step) => step.lost === 0 && step.p99_ms < 1000 && step.sent_deliveries_per_s >= 0.9 * step.offered_deliveries_per_s)
  const saturates = kept.length === 0 ? '-' : `${Math.max(...kept.map((step) => step.deliveries_per_s))}/s`
  table.push(`| ${r.server} | ${r.connects_per_s} | ${kib(r.memory_per_connection.heap_bytes)} | ${kib(r.memory_per_connection.rss_bytes)} | ${r.quiet.cpu_us_per_delivery} | ${times(r.quiet_cpu_vs_ws)} | ${times(r.quiet_cpu_vs_floor)} | ${r.quiet.p99_ms} ms | ${r.burst.deliveries_per_s} | ${r.burst.cpu_us_per_delivery} | ${times(r.burst_cpu_vs_ws)} | ${r.burst.lost} | ${r.burst.p99_ms} ms | ${r.burst.server_loop_delay_max_ms} ms | ${saturates} |`)
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
await writeFile(new URL(`./results/${RESULTS}.svg`, import.meta.url), svg + '\n')

// Latency distribution (burst run): cumulative share of deliveries by latency, log scale.
const colors = ['#6e7781', '#1f6feb', '#1a7f37', '#f0883e', '#8250df', '#cf222e']
const x = (ms: number): number => 60 + Math.round((Math.log10(Math.max(ms, 0.1)) + 1) / 5 * 640) // 0.1 ms .. 10 s
const lines = rows.map((r, i) => {
  const points = (r.burst.latency_distribution as Array<[number, number]>).map(([percent, ms]) => `${x(ms)},${Math.round(260 - (percent / 100) * 220)}`)
  return `<polyline fill="none" stroke="${colors[i % colors.length]}" stroke-width="2" points="${points.join(' ')}"/><text x="70" y="${60 + i * 16}" font-size="11" fill="${colors[i % colors.length]}">${r.server}</text>`
})
const ticks = [0.1, 1, 10, 100, 1000, 10000].map((ms) => `<line x1="${x(ms)}" y1="40" x2="${x(ms)}" y2="260" stroke="#ddd"/><text x="${x(ms) - 12}" y="276" font-size="10">${ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`}</text>`)
const latencySvg = ['<svg xmlns="http://www.w3.org/2000/svg" width="760" height="300" font-family="sans-serif">',
  `<text x="10" y="20" font-size="14">Post-to-receipt latency, bursts, ${CONNECTIONS} connections: share of deliveries at or below</text>`,
  ...ticks, '<line x1="60" y1="260" x2="700" y2="260" stroke="#888"/>', '<text x="10" y="44" font-size="10">100%</text><text x="10" y="262" font-size="10">0%</text>',
  ...lines, '</svg>'].join('\n')
await writeFile(new URL(`./results/${RESULTS}-latency.svg`, import.meta.url), latencySvg + '\n')
