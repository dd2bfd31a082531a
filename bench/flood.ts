// One user floods, everyone else must not notice.
//
//   npm run bench:flood
//
// A fastify-fanout server (bench/servers/fanout.ts, plugin defaults but no
// metrics route) in its own process broadcasts RATE messages a second, each
// stamped with the time it was sent, to well-behaved clients in this
// process, which record post-to-receipt latency (same machine, same clock).
// Three scenarios in one run, each on a fresh server:
//   quiet     nobody floods: the baseline;
//   unlimited FLOODERS connections of one user write 1-byte frames as fast as
//             their sockets take them and reconnect whenever closed, against
//             a server with `inbound: false` (no inbound budget);
//   defaults  the same flood against the plugin's defaults.
// The flooders are pinned to CPU 1 and everything else (the server, the
// readers, this runner) to CPU 0 with taskset, as if the attacker were on
// another machine: otherwise the flooders' own CPU use starves the server
// and the readers, and the figures measure the machine (PIN=0 turns it off).
// Bounded: DURATION seconds per scenario, loopback only, every process stops by itself.
// Results: JSON on stdout and in bench/results/flood.json.
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { createHistogram } from 'node:perf_hooks'
import { createSigner } from 'fast-jwt'
import { WebSocket } from 'ws'
import { ask, PIN, pin, sleep, start } from './harness.js'
import type { FloodConfig } from './loadgen/flooder.js'

const SECRET = 'bench-secret-bench-secret-bench-secret'
const FLOODERS = Number(process.env.FLOODERS ?? 20)
const FLOOD_PROCESSES = Number(process.env.FLOOD_PROCESSES ?? 2)
const CLIENTS = Number(process.env.CLIENTS ?? 10)
const RATE = Number(process.env.RATE ?? 100) // broadcasts per second
const SECONDS = Number(process.env.DURATION ?? 8)
const TARGET_P99_MS = 50
const sign = createSigner({ key: SECRET })
const now = (): number => performance.timeOrigin + performance.now()

interface Scenario { name: string, flood: boolean, options: Record<string, unknown> }

const scenarios: Scenario[] = [
  { name: 'quiet', flood: false, options: {} },
  { name: 'unlimited', flood: true, options: { inbound: false } },
  { name: 'defaults', flood: true, options: {} }
]

async function startServer (options: Record<string, unknown>): Promise<{ child: ChildProcess, port: number }> {
  // The plugin's own defaults (heartbeats on), not the fan-out benchmark's.
  const { child, ready } = await start('./servers/fanout.ts', {
    JWT_SECRET: SECRET,
    FANOUT_OPTIONS: JSON.stringify({ heartbeatInterval: 30_000, maxBufferedBytes: 1024 * 1024, ...options })
  }, 0)
  return { child, port: ready.port }
}

async function startFlood (port: number): Promise<Array<Promise<Record<string, unknown>>>> {
  const path = `/ws?token=${sign({ sub: 'flooder' })}`
  const results: Array<Promise<Record<string, unknown>>> = []
  for (let i = 0; i < FLOOD_PROCESSES; i++) {
    const { child } = await start('./loadgen/flooder.ts', {}, 1)
    const config: FloodConfig = {
      host: '127.0.0.1',
      port,
      path,
      connections: Math.ceil(FLOODERS / FLOOD_PROCESSES),
      seconds: SECONDS + 1,
      localAddress: `127.0.0.${2 + i}`
    }
    results.push(ask<Record<string, unknown>>(child, { cmd: 'start', config }))
  }
  return results
}

async function run (scenario: Scenario): Promise<Record<string, unknown>> {
  const server = await startServer(scenario.options)
  const latency = createHistogram()
  let received = 0
  const clients: WebSocket[] = []
  for (let i = 0; i < CLIENTS; i++) {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws?token=${sign({ sub: `reader-${i}` })}`)
    ws.on('message', (raw: Buffer) => {
      const sent = (JSON.parse(raw.toString()) as { data: { t: number } }).data.t
      // Recorded in µs: the histogram takes integers.
      latency.record(Math.max(1, Math.round((now() - sent) * 1000)))
      received++
    })
    await once(ws, 'open')
    clients.push(ws)
  }

  const flood = scenario.flood ? await startFlood(server.port) : []
  await sleep(500) // let the flood build up before measuring
  const broadcast = await ask<Record<string, number>>(server.child, { cmd: 'broadcast', rate: RATE, seconds: SECONDS, burst: 1, size: 100 })
  const flooders = await Promise.all(flood)
  for (const ws of clients) ws.terminate()
  server.child.send({ cmd: 'stop' })
  await once(server.child, 'exit')

  const ms = (us: number): number => Math.round(us) / 1000
  return {
    scenario: scenario.name,
    options: scenario.options,
    broadcasts: broadcast.messages,
    deliveries_expected: broadcast.messages * CLIENTS,
    deliveries_received: received,
    latency_ms: {
      p50: ms(latency.percentile(50)),
      p90: ms(latency.percentile(90)),
      p99: ms(latency.percentile(99)),
      max: ms(latency.max)
    },
    server_loop_delay_p99_ms: broadcast.loop_delay_p99_ms,
    server_loop_delay_max_ms: broadcast.loop_delay_max_ms,
    server_cpu_percent: Math.round(((broadcast.cpu_user_us ?? 0) + (broadcast.cpu_system_us ?? 0)) / 10 / (broadcast.elapsed_ms ?? 1)),
    flooders: flooders.length === 0
      ? null
      : {
          connections: FLOODERS,
          frames_written: flooders.reduce((sum, f) => sum + (f.frames_written as number), 0),
          upgrades: flooders.reduce((sum, f) => sum + (f.upgrades as number), 0),
          refused_by_status: sumCounts(flooders.map((f) => f.refused as Record<string, number>)),
          close_codes: sumCounts(flooders.map((f) => f.close_codes as Record<string, number>))
        }
  }
}

pin(process.pid, 0)
const results: Array<Record<string, unknown>> = []

function sumCounts (all: Array<Record<string, number>>): Record<string, number> {
  const sum: Record<string, number> = {}
  for (const counts of all) for (const [key, count] of Object.entries(counts)) sum[key] = (sum[key] ?? 0) + count
  return sum
}
for (const scenario of scenarios) {
  const result = await run(scenario)
  process.stderr.write(`${scenario.name}: p99 ${(result.latency_ms as { p99: number }).p99} ms\n`)
  results.push(result)
}
const p99 = (name: string): number => (results.find((r) => r.scenario === name)?.latency_ms as { p99: number }).p99
const summary = {
  benchmark: 'flood',
  date: new Date().toISOString(),
  node: process.version,
  cpus: cpus().length,
  cpu_model: cpus()[0]?.model,
  pinned: PIN ? { server: 'cpu 0', flooders: 'cpu 1', readers_and_runner: 'cpu 0' } : false,
  load: { flooding_connections: FLOODERS, flood_processes: FLOOD_PROCESSES, readers: CLIENTS, broadcasts_per_second: RATE, seconds: SECONDS },
  target: { p99_ms_under_flood: TARGET_P99_MS, met: p99('defaults') < TARGET_P99_MS },
  ratios: {
    defaults_p99_over_quiet_p99: Math.round((p99('defaults') / p99('quiet')) * 100) / 100,
    unlimited_p99_over_quiet_p99: Math.round((p99('unlimited') / p99('quiet')) * 100) / 100
  },
  scenarios: results
}
const json = JSON.stringify(summary, null, 2)
process.stdout.write(json + '\n')
await writeFile(new URL('./results/flood.json', import.meta.url), json + '\n')
