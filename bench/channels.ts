// Channels against broadcast: what a channel publication costs the server
// per delivery, next to today's broadcast to /ws clients, in the same run;
// what history costs per publish; what a subscription costs in memory.
//
//   npm run bench:channels
//   CONNECTIONS=5000 REDIS=0 SDK=0 npm run bench:channels     # quicker
//
// 1. Fan-out (as bench/run.ts measures it: the server's CPU time over a run,
//    divided by the deliveries the clients counted). CONNECTIONS clients over
//    WORKERS load-generator processes (source addresses 127.0.0.2...) get a
//    quiet run (QUIET_RATE messages/s, one per turn) and a burst run
//    (BURST_RATE messages/s in bursts of ten), SECONDS each, from one
//    fastify-fanout process (bench/servers/fanout.ts):
//      ws broadcast        /ws clients, `fanout.broadcast` (the baseline)
//      channel             Centrifugo-protocol clients all subscribed to one
//                          channel of a namespace without history, `fanout.publish`
//      channel+recovery    the same in a namespace with history and recovery
//                          (memory): each publication gets an offset, each
//                          subscriber checks it
//    and with REDIS (a private redis-server): `ws broadcast` and
//    `channel+recovery` through Redis (one Lua script per publish).
//    The load generator is the same raw-socket client for both protocols (it
//    speaks Centrifugo's JSON protocol as centrifuge-js does: connect,
//    subscribe, then reads pushes), so both sides read alike; ROUNDS rounds
//    in alternating order. With SDK, a check at SDK_CONNECTIONS: the same
//    channel with real centrifuge-js clients beside the raw ones and /ws.
// 2. History per publish: PUBLISHES publications through the decorator with
//    no subscribers, CONCURRENCY in flight, over 100 channels; server CPU
//    (and Redis CPU, from INFO) per publish and publications per second,
//    with and without history, memory and Redis.
// 3. Memory per subscription: MEM_CONNECTIONS Centrifugo-protocol clients
//    connect, then each subscribes to K channels of a pool of 1000; the
//    server's heap and RSS (after a GC) before and after, per subscription,
//    for a plain namespace, one with recovery, one with presence.
// Server pinned to CPU 0, load generators and Redis to CPU 1 (PIN=0: off).
// PROFILE=<dir> writes each server's V8 CPU profile there (--cpu-prof).
// Results: bench/results/channels.json and markdown tables on stdout.
// PHASES=fanout,history,memory picks phases (the JSON then holds only those).
// Loopback only, bounded (about four minutes with the defaults), every child stopped.
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { Redis } from 'ioredis'
import { freePort, spawnRedis } from '../test/redis-helpers.js'
import { ask, pin, machine, PIN, percentiles, sleep, start } from './harness.js'
import { merge } from './loadgen/histogram.js'
import type { SdkClientsConfig } from './loadgen/sdk-clients.js'
import type { WorkerConfig } from './loadgen/worker.js'
import type { PublishLoopResult } from './servers/channel-commands.js'

const SECRET = 'bench-secret-bench-secret-bench-secret'
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 10_000)
const WORKERS = Number(process.env.WORKERS ?? 4)
const SECONDS = Number(process.env.SECONDS ?? 4)
const QUIET_RATE = Number(process.env.QUIET_RATE ?? 10)
const BURST_RATE = Number(process.env.BURST_RATE ?? 20)
const SIZE = Number(process.env.SIZE ?? 100)
const ROUNDS = Number(process.env.ROUNDS ?? 3)
const REDIS = process.env.REDIS !== '0'
const SDK = process.env.SDK !== '0'
const SDK_CONNECTIONS = Number(process.env.SDK_CONNECTIONS ?? 2000)
const PUBLISHES = Number(process.env.PUBLISHES ?? 100_000)
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 32)
const MEM_CONNECTIONS = Number(process.env.MEM_CONNECTIONS ?? 5000)
const K = Number(process.env.K ?? 10)
const PHASES = (process.env.PHASES ?? 'fanout,history,memory').split(',')
const CONNECT_RATE = 4000 // per load-generator process
const SERVER_CPU = 0
const CLIENT_CPU = 1
const TARGET_RATIO = 1.2
const now = (): number => performance.timeOrigin + performance.now()
const t0 = now()
const log = (line: string): void => { process.stderr.write(`[channels ${((now() - t0) / 1000).toFixed(0)}s] ${line}\n`) }

const NAMESPACES = {
  news: {},
  hist: { historySize: 100, historyTtl: 300_000, recovery: true },
  pres: { presence: true }
}
const SERVER_OPTIONS = { centrifuge: true, channels: { namespaces: NAMESPACES, maxPerConnection: 128 } }

pin(process.pid, CLIENT_CPU)

let redisPort = 0
let redisProcess: ChildProcess | undefined
async function redisUrl (): Promise<string> {
  if (redisProcess === undefined) {
    redisPort = await freePort()
    redisProcess = await spawnRedis(redisPort)
    pin(redisProcess.pid, CLIENT_CPU)
  }
  return `redis://127.0.0.1:${redisPort}`
}

// PROFILE=<dir>: each server writes a V8 CPU profile there when it stops (--cpu-prof).
const PROFILE = process.env.PROFILE
async function startServer (env: Record<string, string>): Promise<{ child: ChildProcess, port: number }> {
  const profile = PROFILE === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${PROFILE}`]
  const { child, ready } = await start('./servers/fanout.ts', { JWT_SECRET: SECRET, FANOUT_OPTIONS: JSON.stringify(SERVER_OPTIONS), ...env }, SERVER_CPU, profile)
  return { child, port: ready.port }
}

/** Stops load generators ('close') and servers ('stop'), and waits for them to exit. */
async function stop (workers: ChildProcess[], servers: ChildProcess[]): Promise<void> {
  for (const worker of workers) worker.send({ cmd: 'close' })
  for (const server of servers) server.send({ cmd: 'stop' })
  await Promise.all([...workers, ...servers].map(async (child) => child.exitCode === null ? await once(child, 'exit') : undefined))
}

/** Clients of one kind, over several processes: how many are ready, how many messages they counted. */
interface Clients {
  workers: ChildProcess[]
  ready: () => Promise<{ ready: number, failed: number }>
  received: () => Promise<number>
  histogram: () => Promise<string[]>
  reset: () => Promise<void>
}

async function rawClients (port: number, count: number, protocol: 'ws' | 'centrifuge', centrifuge?: WorkerConfig['centrifuge']): Promise<Clients & { configs: WorkerConfig[] }> {
  const workers: ChildProcess[] = []
  const configs: WorkerConfig[] = []
  const perWorker = Math.ceil(count / WORKERS)
  for (let i = 0; i < WORKERS; i++) {
    const { child } = await start('./loadgen/worker.ts', {}, CLIENT_CPU)
    const config: WorkerConfig = {
      host: '127.0.0.1',
      port,
      path: protocol === 'ws' ? '/ws?token={token}' : '/connection/websocket',
      users: Math.max(1, Math.floor(count / 10)),
      firstIndex: i * perWorker,
      jwtSecret: SECRET,
      headers: {},
      count: Math.min(perWorker, count - i * perWorker),
      localAddress: `127.0.0.${2 + i}`,
      connectRate: CONNECT_RATE,
      protocol,
      centrifuge
    }
    child.send({ cmd: 'start', config })
    workers.push(child)
    configs.push(config)
  }
  type Report = { connected: number, failed: number, received: number, identified: number, subscribed: number, commandErrors: number, histogram: string }
  const all = async (): Promise<Report[]> => await Promise.all(workers.map(async (worker) => await ask<Report>(worker, { cmd: 'report' })))
  const total = (reports: Report[], key: keyof Report): number => reports.reduce((sum, r) => sum + (r[key] as number), 0)
  return {
    workers,
    configs,
    async ready () {
      const reports = await all()
      const ready = protocol === 'ws' ? total(reports, 'connected') : centrifuge?.subscribeOnConnect === true ? total(reports, 'subscribed') / centrifuge.perConnection : total(reports, 'identified')
      return { ready, failed: total(reports, 'failed') + total(reports, 'commandErrors') }
    },
    received: async () => total(await all(), 'received'),
    histogram: async () => (await all()).map((r) => r.histogram),
    async reset () { await Promise.all(workers.map(async (worker) => await ask(worker, { cmd: 'reset' }))) }
  }
}

async function sdkClients (port: number, count: number, channel: string): Promise<Clients> {
  const workers: ChildProcess[] = []
  const perWorker = Math.ceil(count / WORKERS)
  for (let i = 0; i < WORKERS; i++) {
    const { child } = await start('./loadgen/sdk-clients.ts', {}, CLIENT_CPU)
    const config: SdkClientsConfig = {
      urls: [`ws://127.0.0.1:${port}/connection/websocket`],
      jwtSecret: SECRET,
      count: Math.min(perWorker, count - i * perWorker),
      firstIndex: i * perWorker,
      channelSets: [[channel]],
      localAddress: `127.0.0.${2 + i}`,
      connectRate: 1000
    }
    child.send({ cmd: 'start', config })
    workers.push(child)
  }
  type Progress = { subscribed: number, received: number }
  const all = async (): Promise<Progress[]> => await Promise.all(workers.map(async (worker) => await ask<Progress>(worker, { cmd: 'progress' })))
  let base = 0
  return {
    workers,
    async ready () { return { ready: (await all()).reduce((sum, p) => sum + p.subscribed, 0), failed: 0 } },
    received: async () => (await all()).reduce((sum, p) => sum + p.received, 0) - base,
    histogram: async () => (await Promise.all(workers.map(async (worker) => await ask<{ histogram: string }>(worker, { cmd: 'report' })))).map((r) => r.histogram),
    async reset () {
      await Promise.all(workers.map(async (worker) => await ask(worker, { cmd: 'reset' })))
      base = (await all()).reduce((sum, p) => sum + p.received, 0)
    }
  }
}

async function waitReady (clients: Clients, count: number): Promise<{ ready: number, failed: number, seconds: number }> {
  const started = now()
  let state = await clients.ready()
  while (state.ready + state.failed < count && now() - started < 60_000) {
    await sleep(250)
    state = await clients.ready()
  }
  return { ...state, seconds: Math.round((now() - started) / 100) / 10 }
}

interface RunResult {
  messages: number
  delivered: number
  lost: number
  deliveries_per_s: number
  cpu_us_per_delivery: number
  p50_ms: number | null
  p99_ms: number | null
  server_loop_delay_max_ms: number
}

/** One broadcast run, measured as bench/run.ts measures it. */
async function fanOut (server: ChildProcess, clients: Clients, rate: number, burst: number): Promise<RunResult> {
  await clients.reset()
  const result = await ask<{ messages: number, deliveries_expected: number, cpu_user_us: number, cpu_system_us: number, sending_ms: number, loop_delay_max_ms: number }>(server, { cmd: 'broadcast', rate, seconds: SECONDS, burst, size: SIZE })
  const expected = result.deliveries_expected
  let received = await clients.received()
  const drainStarted = now()
  while (received < expected && now() - drainStarted < 10_000) {
    await sleep(100)
    received = await clients.received()
  }
  const windowMs = result.sending_ms + (now() - drainStarted)
  const cpu = result.cpu_user_us + result.cpu_system_us
  const histogram = merge(await clients.histogram())
  const { p50_ms: p50, p99_ms: p99 } = percentiles(histogram)
  return {
    messages: result.messages,
    delivered: received,
    lost: expected - received,
    deliveries_per_s: Math.round(received / (windowMs / 1000)),
    cpu_us_per_delivery: Math.round((cpu / Math.max(1, received)) * 100) / 100,
    p50_ms: p50 ?? null,
    p99_ms: p99 ?? null,
    server_loop_delay_max_ms: result.loop_delay_max_ms
  }
}

interface FanOutCase { name: string, redis: boolean, clients: 'ws' | 'centrifuge' | 'sdk', channel?: string, connections: number }

async function measureCase (c: FanOutCase): Promise<Record<string, unknown>> {
  const env: Record<string, string> = c.redis ? { REDIS_URL: await redisUrl(), CHANNEL_PREFIX: `bench-ch-${Math.round(now())}:` } : {}
  if (c.channel !== undefined) env.PUBLISH_CHANNEL = c.channel
  const server = await startServer(env)
  const before = await ask<{ rss: number, heapUsed: number }>(server.child, { cmd: 'memory' })
  const clients = c.clients === 'sdk'
    ? await sdkClients(server.port, c.connections, c.channel as string)
    : await rawClients(server.port, c.connections, c.clients, c.clients === 'centrifuge' ? { pool: [c.channel as string], perConnection: 1, subscribeOnConnect: true } : undefined)
  const ready = await waitReady(clients, c.connections)
  await sleep(300)
  const after = await ask<{ rss: number, heapUsed: number, connections: number }>(server.child, { cmd: 'memory' })
  const quiet = await fanOut(server.child, clients, QUIET_RATE, 1)
  const burst = await fanOut(server.child, clients, BURST_RATE, 10)
  await stop(clients.workers, [server.child])
  log(`${c.name} (${c.connections}${c.redis ? ', redis' : ''}): quiet ${quiet.cpu_us_per_delivery} µs, burst ${burst.cpu_us_per_delivery} µs per delivery`)
  return {
    case: c.name,
    backplane: c.redis ? 'redis' : 'memory',
    clients: c.clients === 'sdk' ? 'centrifuge-js' : c.clients === 'ws' ? 'raw /ws' : 'raw Centrifugo JSON protocol',
    connections: after.connections,
    ready: ready.ready,
    failed: ready.failed,
    ready_s_after_load_generators_started: ready.seconds,
    memory_per_client: { heap_bytes: Math.round((after.heapUsed - before.heapUsed) / Math.max(1, after.connections)), rss_bytes: Math.round((after.rss - before.rss) / Math.max(1, after.connections)) },
    quiet,
    burst
  }
}

const round2 = (x: number): number => Math.round(x * 100) / 100
const median = (values: number[]): number => { const s = [...values].sort((a, b) => a - b); return s.length % 2 === 1 ? s[(s.length - 1) / 2] as number : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2 }

async function fanOutPhase (): Promise<Record<string, unknown>> {
  const cases: FanOutCase[] = [
    { name: 'ws broadcast', redis: false, clients: 'ws', connections: CONNECTIONS },
    { name: 'channel', redis: false, clients: 'centrifuge', channel: 'news:all', connections: CONNECTIONS },
    { name: 'channel+recovery', redis: false, clients: 'centrifuge', channel: 'hist:all', connections: CONNECTIONS }
  ]
  if (REDIS) {
    cases.push({ name: 'ws broadcast', redis: true, clients: 'ws', connections: CONNECTIONS })
    cases.push({ name: 'channel+recovery', redis: true, clients: 'centrifuge', channel: 'hist:all', connections: CONNECTIONS })
  }
  const runs: Array<Record<string, unknown>> = []
  for (let round = 0; round < ROUNDS; round++) {
    // Alternating order, so that a drift of the machine does not favour one case.
    for (const c of round % 2 === 0 ? cases : [...cases].reverse()) runs.push({ round, ...await measureCase(c) })
  }
  const sdk: Array<Record<string, unknown>> = []
  if (SDK) {
    for (const c of [
      { name: 'ws broadcast', redis: false, clients: 'ws', connections: SDK_CONNECTIONS },
      { name: 'channel', redis: false, clients: 'centrifuge', channel: 'news:all', connections: SDK_CONNECTIONS },
      { name: 'channel', redis: false, clients: 'sdk', channel: 'news:all', connections: SDK_CONNECTIONS }
    ] as FanOutCase[]) sdk.push(await measureCase(c))
  }
  // Ratios to the /ws broadcast of the same backplane, from the medians over rounds.
  type Run = { case: string, backplane: string, quiet: RunResult, burst: RunResult, memory_per_client: { heap_bytes: number } }
  const summary: Array<Record<string, unknown>> = []
  for (const c of cases) {
    const mine = (runs as unknown as Run[]).filter((r) => r.case === c.name && r.backplane === (c.redis ? 'redis' : 'memory'))
    const base = (runs as unknown as Run[]).filter((r) => r.case === 'ws broadcast' && r.backplane === (c.redis ? 'redis' : 'memory'))
    const quiet = median(mine.map((r) => r.quiet.cpu_us_per_delivery))
    const burst = median(mine.map((r) => r.burst.cpu_us_per_delivery))
    summary.push({
      case: c.name,
      backplane: c.redis ? 'redis' : 'memory',
      quiet_cpu_us_per_delivery: round2(quiet),
      burst_cpu_us_per_delivery: round2(burst),
      quiet_vs_ws_broadcast: round2(quiet / median(base.map((r) => r.quiet.cpu_us_per_delivery))),
      burst_vs_ws_broadcast: round2(burst / median(base.map((r) => r.burst.cpu_us_per_delivery))),
      lost: mine.reduce((sum, r) => sum + r.quiet.lost + r.burst.lost, 0),
      heap_bytes_per_client: median(mine.map((r) => r.memory_per_client.heap_bytes)),
      quiet_p99_ms: median(mine.map((r) => r.quiet.p99_ms ?? 0)),
      burst_p99_ms: median(mine.map((r) => r.burst.p99_ms ?? 0))
    })
  }
  return { connections: CONNECTIONS, rounds: ROUNDS, summary, runs, sdk_check: sdk }
}

/** Redis's own CPU seconds so far (user + system), from INFO. */
async function redisCpu (client: Redis): Promise<number> {
  const info = await client.info('cpu')
  const field = (name: string): number => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)?.[1] ?? 0)
  return field('used_cpu_user') + field('used_cpu_sys')
}

async function historyPhase (): Promise<Array<Record<string, unknown>>> {
  const rows: Array<Record<string, unknown>> = []
  for (const redis of REDIS ? [false, true] : [false]) {
    const env: Record<string, string> = redis ? { REDIS_URL: await redisUrl(), CHANNEL_PREFIX: `bench-h-${Math.round(now())}:` } : {}
    const server = await startServer(env)
    const client = redis ? new Redis(redisPort, '127.0.0.1') : undefined
    for (const namespace of ['news', 'hist', 'news', 'hist']) { // twice, alternating: the first of each warms up
      const channels = Array.from({ length: 100 }, (_, i) => `${namespace}:p${i}`)
      const redisBefore = client === undefined ? 0 : await redisCpu(client)
      const result = await ask<PublishLoopResult>(server.child, { cmd: 'publish-loop', channels, count: PUBLISHES, concurrency: CONCURRENCY, size: SIZE })
      const redisUs = client === undefined ? 0 : (await redisCpu(client) - redisBefore) * 1e6
      rows.push({
        backplane: redis ? 'redis' : 'memory',
        history: namespace === 'hist',
        publications: result.publications,
        failed: result.failed,
        error: result.error,
        publications_per_s: Math.round(result.publications / (result.elapsed_ms / 1000)),
        server_cpu_us_per_publish: round2((result.cpu_user_us + result.cpu_system_us) / Math.max(1, result.publications)),
        redis_cpu_us_per_publish: redis ? round2(redisUs / Math.max(1, result.publications)) : null
      })
    }
    client?.disconnect()
    await stop([], [server.child])
  }
  // Keep the second (warm) measurement of each.
  const warm = rows.filter((_, i) => i % 4 >= 2)
  for (const row of warm) log(`publish ${row.backplane as string} history=${String(row.history)}: ${row.publications_per_s as number}/s, server ${row.server_cpu_us_per_publish as number} µs, redis ${String(row.redis_cpu_us_per_publish)} µs per publish`)
  return warm
}

async function memoryPhase (): Promise<Array<Record<string, unknown>>> {
  const rows: Array<Record<string, unknown>> = []
  for (const namespace of ['news', 'hist', 'pres']) {
    const server = await startServer({})
    const pool = Array.from({ length: 1000 }, (_, i) => `${namespace}:m${i}`)
    const centrifuge = { pool, perConnection: K, subscribeOnConnect: false }
    const clients = await rawClients(server.port, MEM_CONNECTIONS, 'centrifuge', centrifuge)
    const connected = await waitReady(clients, MEM_CONNECTIONS)
    await sleep(300)
    const before = await ask<{ rss: number, heapUsed: number, connections: number }>(server.child, { cmd: 'memory' })
    await Promise.all(clients.workers.map(async (worker, i) => await ask(worker, { cmd: 'subscribe', config: clients.configs[i] })))
    const subscribed = await waitReady({ ...clients, ready: async () => { const r = await Promise.all(clients.workers.map(async (w) => await ask<{ subscribed: number, commandErrors: number }>(w, { cmd: 'report' }))); return { ready: r.reduce((s, x) => s + x.subscribed, 0), failed: r.reduce((s, x) => s + x.commandErrors, 0) } } }, MEM_CONNECTIONS * K)
    await sleep(300)
    const after = await ask<{ rss: number, heapUsed: number }>(server.child, { cmd: 'memory' })
    await stop(clients.workers, [server.child])
    const subscriptions = subscribed.ready
    const row = {
      namespace: { news: 'plain', hist: 'history + recovery (positioned)', pres: 'presence (memory)' }[namespace],
      connections: before.connections,
      connected: connected.ready,
      subscriptions,
      channels: pool.length,
      failed: subscribed.failed,
      heap_bytes_per_subscription: Math.round((after.heapUsed - before.heapUsed) / Math.max(1, subscriptions)),
      rss_bytes_per_subscription: Math.round((after.rss - before.rss) / Math.max(1, subscriptions))
    }
    log(`memory ${row.namespace}: ${row.heap_bytes_per_subscription} B heap, ${row.rss_bytes_per_subscription} B RSS per subscription (${subscriptions})`)
    rows.push(row)
  }
  return rows
}

const output: Record<string, unknown> = {
  benchmark: 'channels: CPU per delivery against broadcast, history per publish, memory per subscription',
  command: 'npm run bench:channels',
  date: new Date().toISOString(),
  machine: machine({ load_average_1m_before: round2(loadavg()[0] as number) }),
  pinned: PIN ? { server: `cpu ${SERVER_CPU}`, load_generators_and_redis: `cpu ${CLIENT_CPU}` } : false,
  load: { connections: CONNECTIONS, load_generator_processes: WORKERS, seconds_per_run: SECONDS, quiet_rate_per_s: QUIET_RATE, burst_rate_per_s: BURST_RATE, burst: 10, message_bytes: SIZE, namespaces: NAMESPACES },
  target: { channel_cpu_per_delivery_vs_ws_broadcast_at_most: TARGET_RATIO }
}
try {
  if (PHASES.includes('fanout')) output.fanout = await fanOutPhase()
  if (PHASES.includes('history')) output.history_per_publish = { publishes: PUBLISHES, concurrency: CONCURRENCY, channels: 100, subscribers: 0, rows: await historyPhase() }
  if (PHASES.includes('memory')) output.memory_per_subscription = { connections: MEM_CONNECTIONS, subscriptions_per_connection: K, rows: await memoryPhase() }
} finally {
  redisProcess?.kill('SIGKILL')
}
(output.machine as Record<string, unknown>).load_average_1m_after = round2(loadavg()[0] as number)
await writeFile(new URL('./results/channels.json', import.meta.url), JSON.stringify(output, null, 2) + '\n')

type Row = Record<string, any>
const lines: string[] = []
if (output.fanout !== undefined) {
  const fan = output.fanout as Row
  lines.push(`CPU per delivery, ${CONNECTIONS} subscribers, median of ${ROUNDS} rounds (target: channel ≤ ${TARGET_RATIO}× ws broadcast)`, '',
    '| case | backplane | quiet µs/delivery | vs ws | burst µs/delivery | vs ws | lost | quiet p99 | burst p99 | heap/client |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
  for (const r of fan.summary as Row[]) lines.push(`| ${r.case} | ${r.backplane} | ${r.quiet_cpu_us_per_delivery} | ${r.quiet_vs_ws_broadcast}× | ${r.burst_cpu_us_per_delivery} | ${r.burst_vs_ws_broadcast}× | ${r.lost} | ${r.quiet_p99_ms} ms | ${r.burst_p99_ms} ms | ${r.heap_bytes_per_client} B |`)
  if ((fan.sdk_check as Row[]).length > 0) {
    lines.push('', `Client check, ${SDK_CONNECTIONS} subscribers`, '', '| case | clients | quiet µs/delivery | burst µs/delivery | lost | burst p99 |', '| --- | --- | --- | --- | --- | --- |')
    for (const r of fan.sdk_check as Row[]) lines.push(`| ${r.case} | ${r.clients} | ${r.quiet.cpu_us_per_delivery} | ${r.burst.cpu_us_per_delivery} | ${r.quiet.lost + r.burst.lost} | ${r.burst.p99_ms} ms |`)
  }
}
if (output.history_per_publish !== undefined) {
  lines.push('', `History per publish (${PUBLISHES} publications, ${CONCURRENCY} in flight, no subscribers)`, '', '| backplane | history | publications/s | server µs/publish | Redis µs/publish |', '| --- | --- | --- | --- | --- |')
  for (const r of (output.history_per_publish as Row).rows as Row[]) lines.push(`| ${r.backplane} | ${r.history ? 'yes' : 'no'} | ${r.publications_per_s} | ${r.server_cpu_us_per_publish} | ${r.redis_cpu_us_per_publish ?? '-'} |`)
}
if (output.memory_per_subscription !== undefined) {
  lines.push('', `Memory per subscription (${MEM_CONNECTIONS} connections × ${K} subscriptions over 1000 channels)`, '', '| namespace | subscriptions | heap B/subscription | RSS B/subscription |', '| --- | --- | --- | --- |')
  for (const r of (output.memory_per_subscription as Row).rows as Row[]) lines.push(`| ${r.namespace} | ${r.subscriptions} | ${r.heap_bytes_per_subscription} | ${r.rss_bytes_per_subscription} |`)
}
process.stdout.write(lines.join('\n') + '\n')
