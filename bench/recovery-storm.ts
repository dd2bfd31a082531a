// Recovery storm: real centrifuge-js clients recover what they missed while
// the instances they are connected to restart, or while Redis restarts.
//
//   npm run bench:storm
//   CLIENTS=200 PUBLICATIONS=4000 npm run bench:storm     # smaller
//
// Starts its own redis-server (--save '' --appendonly no, on a free port,
// killed at the end) and two fastify-fanout instances (bench/servers/fanout.ts
// with `centrifuge: true`, joined by that Redis, on fixed ports) with a
// namespace `storm` that keeps history for every publication of the run
// (historySize = PUBLICATIONS, recoveryMaxPublications too), recovery and
// presence on. CLIENTS centrifuge-js clients (ws as their WebSocket), spread
// over WORKERS load-generator processes and source addresses 127.0.0.2...,
// half on each instance, subscribe to CHANNELS channels (client i to channel
// i mod CHANNELS, and every fifth client to all of them). This process then
// publishes PUBLICATIONS publications at RATE per second with
// `POST /broadcast` and `channel` (to the instances in turn; a refused or
// failed request is retried on the other one), while:
//   restarts      instance A, then instance B, gets SIGTERM (graceful close:
//                 its clients get 3001), and is started again on the same
//                 port; the clients reconnect with the SDK's own backoff and
//                 recover from Redis history;
//   redis-restart Redis is killed (SIGKILL) and started again on the same port
//                 (empty: nothing is persisted); the instances close their
//                 clients with 3010 (messages may have been missed), the
//                 clients come back and are told `recovered: false` (a new
//                 epoch), or recover when nothing was lost.
// Every subscription accounts for what it received (bench/loadgen/sdk-clients.ts):
// duplicates and silent gaps must be 0; in `restarts` each must have got
// every publication exactly once in order, checked against the channel's
// stream in Redis (offsets, and a checksum of the publications' seq).
// Servers and Redis are pinned to CPU 0, clients and this runner to CPU 1
// (PIN=0 turns it off); PROFILE=<dir> writes each instance's CPU profile there. Bounded: a minute or two; loopback only; every child
// stops. Results: bench/results/recovery-storm.json and a summary on stdout.
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { createSigner } from 'fast-jwt'
import { Redis } from 'ioredis'
import { slotTag } from '../lib/backplane/slot.js'
import { freePort, spawnRedis } from '../test/redis-helpers.js'
import { ask, pin, machine, PIN, percentiles, sleep, start } from './harness.js'
import { merge } from './loadgen/histogram.js'
import type { SdkClientsConfig, SubscriptionAccount } from './loadgen/sdk-clients.js'

const SECRET = 'bench-secret-bench-secret-bench-secret'
const CLIENTS = Number(process.env.CLIENTS ?? 500)
const WORKERS = Number(process.env.WORKERS ?? 4)
const CHANNELS = Number(process.env.CHANNELS ?? 3)
const PUBLICATIONS = Number(process.env.PUBLICATIONS ?? 10_000)
const RATE = Number(process.env.RATE ?? 400) // publications per second
const IN_FLIGHT = 64 // most POSTs awaiting their answer
const SCENARIOS = (process.env.SCENARIOS ?? 'restarts,redis-restart').split(',')
const SERVER_CPU = 0
const CLIENT_CPU = 1
const sign = createSigner({ key: SECRET })
const service = sign({ sub: 'bench-publisher', scope: 'broadcast' })
const now = (): number => performance.timeOrigin + performance.now()
const log = (line: string): void => { process.stderr.write(`[storm ${((now() - t0) / 1000).toFixed(1)}s] ${line}\n`) }
const t0 = now()

pin(process.pid, CLIENT_CPU)

interface Instance { name: string, port: number, child: ChildProcess | undefined, env: Record<string, string> }

// PROFILE=<dir>: each instance writes a V8 CPU profile there when it stops (--cpu-prof).
const PROFILE = process.env.PROFILE

async function startInstance (instance: Instance): Promise<void> {
  const { child } = await start('./servers/fanout.ts', instance.env, SERVER_CPU, PROFILE === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${PROFILE}`])
  instance.child = child
}

/** SIGTERM (graceful close, 3001 to its clients), wait for the exit, start again on the same port. */
async function restartInstance (instance: Instance): Promise<{ closing_ms: number, down_ms: number }> {
  const child = instance.child as ChildProcess
  const stopped = now()
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  await exited
  const closingMs = now() - stopped
  await startInstance(instance)
  return { closing_ms: Math.round(closingMs), down_ms: Math.round(now() - stopped) }
}

async function stopInstance (instance: Instance): Promise<void> {
  const child = instance.child
  if (child === undefined || child.exitCode !== null) return
  const exited = once(child, 'exit')
  child.send({ cmd: 'stop' })
  await exited
}

/** Publisher statistics: what the POSTs came back with. */
interface Publishing {
  published: number
  attempts: number
  statuses: Record<string, number>
  /** Requests that failed in a way that leaves open whether they were published. */
  ambiguous: number
  retried: number
  gaveUp: number
  /** Per channel, per epoch: the highest offset a 202 answered with. */
  tops: Map<string, Map<string, number>>
  done: Promise<void>
}

/** Posts `count` publications at RATE, spread over the channels; each is retried on the other instance until accepted (202). */
function publish (instances: Instance[], channels: string[], count: number): Publishing {
  const stats: Publishing = { published: 0, attempts: 0, statuses: {}, ambiguous: 0, retried: 0, gaveUp: 0, tops: new Map(channels.map((channel) => [channel, new Map()])), done: Promise.resolve() }
  const bump = (key: string): void => { stats.statuses[key] = (stats.statuses[key] ?? 0) + 1 }
  async function one (seq: number): Promise<void> {
    const deadline = now() + 30_000
    for (let attempt = 0; now() < deadline; attempt++) {
      // Instances in turn, as a publisher that knows nothing of the restarts:
      // a refusal or a 503 (closing) sends the retry to the other one.
      const instance = instances[(seq + attempt) % instances.length] as Instance
      stats.attempts++
      if (attempt > 0) stats.retried++
      try {
        const channel = channels[seq % channels.length] as string
        const response = await fetch(`http://127.0.0.1:${instance.port}/broadcast`, {
          method: 'POST',
          headers: { authorization: `Bearer ${service}`, 'content-type': 'application/json' },
          body: JSON.stringify({ channel, data: { seq, t: now() } })
        })
        const answer = await response.text()
        bump(String(response.status))
        if (response.status === 202) {
          stats.published++
          const { offset, epoch } = JSON.parse(answer) as { offset: number, epoch: string }
          const tops = stats.tops.get(channel) as Map<string, number>
          tops.set(epoch, Math.max(tops.get(epoch) ?? 0, offset))
          return
        }
      } catch (err) {
        const code = String((err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message)
        bump(code)
        // Refused: never reached the server. Anything else may have been published.
        if (code !== 'ECONNREFUSED') stats.ambiguous++
      }
      await sleep(20)
    }
    stats.gaveUp++
  }
  stats.done = (async () => {
    const started = now()
    const pending = new Set<Promise<void>>()
    for (let seq = 0; seq < count; seq++) {
      const due = started + (seq * 1000) / RATE
      if (due > now()) await sleep(due - now())
      while (pending.size >= IN_FLIGHT) await Promise.race(pending)
      const request = one(seq).finally(() => { pending.delete(request) })
      pending.add(request)
    }
    await Promise.all(pending)
  })()
  return stats
}

interface Stream { epoch: string, top: number, seqs: number[], duplicateSeqs: number }

/** A channel's stream as Redis holds it: epoch, top offset, and the seq of every publication by offset. */
async function readStream (redis: Redis, prefix: string, channel: string): Promise<Stream> {
  const meta = await redis.hgetall(`${prefix}history-meta:${slotTag(channel)}`)
  const entries = await redis.xrange(`${prefix}history:${slotTag(channel)}`, '-', '+')
  const top = Number(meta.s ?? 0)
  const seqs: number[] = new Array(top + 1).fill(-1)
  const seen = new Set<number>()
  let duplicateSeqs = 0
  for (const [id, fields] of entries) {
    const seq = (JSON.parse(fields[1] as string) as { seq: number }).seq
    if (seen.has(seq)) duplicateSeqs++
    seen.add(seq)
    seqs[Number(id.slice(0, id.indexOf('-')))] = seq
  }
  return { epoch: meta.e ?? '', top, seqs, duplicateSeqs }
}

function spread (values: number[]): Record<string, number> | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  const at = (q: number): number => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number)
  return { count: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) }
}

function checksumOf (seqs: number[], from: number): number {
  let sum = 0
  for (let offset = from; offset < seqs.length; offset++) sum = (Math.imul(sum, 31) + (seqs[offset] as number)) >>> 0
  return sum
}

interface WorkerReport { accounts: SubscriptionAccount[], outages: number[], closeCodes: Record<string, number>, subscribingCodes: Record<string, number>, errors: Record<string, number>, histogram: string }
interface Progress { opened: number, connected: number, subscribedOnce: number, subscribed: number, subscriptions: number, received: number }

function sumCounts (all: Array<Record<string, number>>): Record<string, number> {
  const sum: Record<string, number> = {}
  for (const counts of all) for (const [key, count] of Object.entries(counts)) sum[key] = (sum[key] ?? 0) + count
  return sum
}

async function progress (workers: ChildProcess[]): Promise<Progress> {
  const all = await Promise.all(workers.map(async (worker) => await ask<Progress>(worker, { cmd: 'progress' })))
  return {
    opened: all.reduce((s, p) => s + p.opened, 0),
    connected: all.reduce((s, p) => s + p.connected, 0),
    subscribedOnce: all.reduce((s, p) => s + p.subscribedOnce, 0),
    subscribed: all.reduce((s, p) => s + p.subscribed, 0),
    subscriptions: all.reduce((s, p) => s + p.subscriptions, 0),
    received: all.reduce((s, p) => s + p.received, 0)
  }
}

async function runScenario (name: string): Promise<Record<string, unknown>> {
  const scenarioStarted = now()
  const redisPort = await freePort()
  let redis = await spawnRedis(redisPort)
  pin(redis.pid, SERVER_CPU)
  const prefix = `storm-${randomBytes(3).toString('hex')}:`
  const channels = Array.from({ length: CHANNELS }, (_, i) => `storm:c${i}`)
  const options = {
    centrifuge: true,
    heartbeatInterval: 25_000,
    closeTimeout: 5000,
    channels: {
      namespaces: { storm: { historySize: PUBLICATIONS, historyTtl: 600_000, recovery: true, presence: true } },
      recoveryMaxPublications: PUBLICATIONS
    }
  }
  const instances: Instance[] = []
  for (const instanceName of ['A', 'B']) {
    const port = await freePort()
    const env = { JWT_SECRET: SECRET, REDIS_URL: `redis://127.0.0.1:${redisPort}`, CHANNEL_PREFIX: prefix, PORT: String(port), FANOUT_OPTIONS: JSON.stringify(options) }
    const instance: Instance = { name: instanceName, port, child: undefined, env }
    await startInstance(instance)
    instances.push(instance)
  }
  const urls = instances.map((instance) => `ws://127.0.0.1:${instance.port}/connection/websocket`)
  // Client i: channel i mod CHANNELS; every fifth client all of them.
  const channelSets = Array.from({ length: 5 * CHANNELS }, (_, i) => i % 5 === 4 ? channels : [channels[i % CHANNELS] as string])

  const workers: ChildProcess[] = []
  const perWorker = Math.ceil(CLIENTS / WORKERS)
  for (let i = 0; i < WORKERS; i++) {
    const { child } = await start('./loadgen/sdk-clients.ts', {}, CLIENT_CPU)
    const config: SdkClientsConfig = {
      urls,
      jwtSecret: SECRET,
      count: Math.min(perWorker, CLIENTS - i * perWorker),
      firstIndex: i * perWorker,
      channelSets,
      localAddress: `127.0.0.${2 + i}`,
      connectRate: 200
    }
    child.send({ cmd: 'start', config })
    workers.push(child)
  }
  let state = await progress(workers)
  const subscribeDeadline = now() + 60_000
  while ((state.opened < CLIENTS || state.subscribedOnce < state.subscriptions) && now() < subscribeDeadline) {
    await sleep(250)
    state = await progress(workers)
  }
  log(`${name}: ${state.connected} clients, ${state.subscribedOnce}/${state.subscriptions} subscriptions`)

  // Publishing, with the disruption at fixed points of it.
  const publishing = publish(instances, channels, PUBLICATIONS)
  const seconds = PUBLICATIONS / RATE
  const disruptions: Array<Record<string, unknown>> = []
  const publishStarted = now()
  const at = async (fraction: number): Promise<void> => { const wait = publishStarted + fraction * seconds * 1000 - now(); if (wait > 0) await sleep(wait) }
  if (name === 'restarts') {
    for (const [instance, fraction] of [[instances[0], 0.2], [instances[1], 0.55]] as Array<[Instance, number]>) {
      await at(fraction)
      log(`SIGTERM instance ${instance.name}`)
      const timing = await restartInstance(instance)
      log(`instance ${instance.name} back after ${timing.down_ms} ms`)
      disruptions.push({ instance: instance.name, at_s: Math.round((now() - publishStarted) / 100) / 10, ...timing })
    }
  } else {
    await at(0.3)
    log('SIGKILL redis')
    const killed = now()
    const exited = once(redis, 'exit')
    redis.kill('SIGKILL')
    await exited
    await sleep(1000)
    redis = await spawnRedis(redisPort)
    pin(redis.pid, SERVER_CPU)
    log('redis back')
    disruptions.push({ redis: 'killed and restarted empty', at_s: Math.round((killed - publishStarted) / 100) / 10, down_ms: Math.round(now() - killed) })
  }
  await publishing.done
  const publishMs = now() - publishStarted
  log(`published ${publishing.published} (${publishing.attempts} attempts)`)

  // Drain: every subscription at the top of its channel's stream (or 30 s).
  const client = new Redis(redisPort, '127.0.0.1')
  const streams = new Map<string, Stream>()
  for (const channel of channels) streams.set(channel, await readStream(client, prefix, channel))
  let reports: WorkerReport[] = []
  const drainDeadline = now() + 30_000
  for (;;) {
    reports = await Promise.all(workers.map(async (worker) => await ask<WorkerReport>(worker, { cmd: 'report' })))
    const behind = reports.flatMap((r) => r.accounts).filter((a) => {
      const stream = streams.get(a.channel) as Stream
      return !a.subscribed || a.epoch !== stream.epoch || a.offset < stream.top
    }).length
    if (behind === 0 || now() > drainDeadline) break
    await sleep(500)
  }
  const drainMs = now() - publishStarted - publishMs

  const accounts = reports.flatMap((r) => r.accounts)
  const checksums = new Map<string, number>()
  const expectedChecksum = (channel: string, from: number): number => {
    const key = `${channel}@${from}`
    if (!checksums.has(key)) checksums.set(key, checksumOf((streams.get(channel) as Stream).seqs, from + 1))
    return checksums.get(key) as number
  }
  let exactlyOnceInOrder = 0
  const notExactlyOnce: Array<Record<string, unknown>> = []
  for (const a of accounts) {
    const stream = streams.get(a.channel) as Stream
    const ok = a.subscribed && a.duplicates === 0 && a.silentGaps === 0 && a.toldNotRecovered === 0 && a.resubscribedWithoutRecovery === 0 &&
      a.startEpoch === stream.epoch && a.epoch === stream.epoch && a.offset === stream.top &&
      a.received === stream.top - a.startOffset && a.checksum === expectedChecksum(a.channel, a.startOffset)
    if (ok) exactlyOnceInOrder++
    else if (notExactlyOnce.length < 5) notExactlyOnce.push({ ...a, stream_top: stream.top, stream_epoch: stream.epoch })
  }
  // Every publication after a subscription's start is accounted for: received,
  // or in a range the client was told it lost (recovered: false). Epoch tops
  // come from the publisher's answers, the last epoch's from the stream.
  const topOf = (channel: string, epoch: string): number => {
    const stream = streams.get(channel) as Stream
    return epoch === stream.epoch ? stream.top : publishing.tops.get(channel)?.get(epoch) ?? 0
  }
  let toldLost = 0
  let unaccounted = 0
  for (const a of accounts) {
    let expected = topOf(a.channel, a.startEpoch) - a.startOffset
    let lost = 0
    for (const told of a.told) {
      if (told.toEpoch === told.fromEpoch) {
        lost += told.toOffset - told.fromOffset
      } else {
        lost += topOf(a.channel, told.fromEpoch) - told.fromOffset + told.toOffset
        expected += topOf(a.channel, told.toEpoch)
      }
    }
    toldLost += lost
    unaccounted += Math.abs(expected - lost - a.received)
  }
  const sum = (key: keyof SubscriptionAccount): number => accounts.reduce((total, a) => total + (a[key] as number), 0)
  const histogram = merge(reports.map((r) => r.histogram))
  const result = {
    scenario: name,
    disruptions,
    publishing: {
      publications: PUBLICATIONS,
      rate_per_s: RATE,
      via: 'POST /broadcast with channel, to instance A and B in turn (retried on the other one until 202)',
      published_202: publishing.published,
      attempts: publishing.attempts,
      retried: publishing.retried,
      gave_up: publishing.gaveUp,
      ambiguous_failures: publishing.ambiguous,
      answers: publishing.statuses,
      seconds: Math.round(publishMs / 100) / 10
    },
    streams: Object.fromEntries([...streams].map(([channel, s]) => [channel, { epoch: s.epoch, top: s.top, seq_published_twice: s.duplicateSeqs }])),
    clients: { clients: state.connected, subscriptions: accounts.length, still_subscribed: accounts.filter((a) => a.subscribed).length },
    deliveries: {
      received: sum('received'),
      of_which_replayed_by_recovery: sum('replayed'),
      duplicates: sum('duplicates'),
      silent_gaps: sum('silentGaps'),
      silently_missed_publications: sum('silentMissing'),
      told_lost_publications: toldLost,
      unaccounted_publications: unaccounted
    },
    resubscribes: {
      recovered: sum('recovered'),
      told_not_recovered: sum('toldNotRecovered'),
      without_recovery: sum('resubscribedWithoutRecovery'),
      recovered_position_mismatches: sum('positionMismatches'),
      replay_flag_mismatches: sum('replayFlagMismatches'),
      // The SDK delivers recovered publications as `publication` events right
      // after `subscribed` (counted in deliveries.of_which_replayed_by_recovery);
      // its `subscribed` context holds none.
      subscribed_contexts_with_publications: sum('publicationsInSubscribedContext')
    },
    reconnect_close_codes: sumCounts(reports.map((r) => r.closeCodes)),
    resubscribe_codes: sumCounts(reports.map((r) => r.subscribingCodes)),
    client_errors: sumCounts(reports.map((r) => r.errors)),
    subscriptions_exactly_once_in_order: exactlyOnceInOrder,
    subscriptions_not_exactly_once_sample: notExactlyOnce,
    latency_post_to_receipt: percentiles(histogram),
    // From a subscription's loss (its client's close) to its next `subscribed`.
    resubscribed_within_ms: spread(reports.flatMap((r) => r.outages)),
    caught_up_after_publishing_s: Math.round(drainMs / 100) / 10,
    scenario_seconds: 0
  }

  for (const worker of workers) worker.send({ cmd: 'close' })
  await Promise.all(workers.map(async (worker) => worker.exitCode === null ? await once(worker, 'exit') : undefined))
  await Promise.all(instances.map(stopInstance))
  client.disconnect()
  const redisExit = once(redis, 'exit')
  redis.kill('SIGKILL')
  await redisExit
  result.scenario_seconds = Math.round((now() - scenarioStarted) / 100) / 10
  return result
}

const results: Array<Record<string, unknown>> = []
for (const scenario of SCENARIOS) results.push(await runScenario(scenario))

const output = {
  benchmark: 'recovery storm: centrifuge-js clients recover across instance and Redis restarts',
  command: 'npm run bench:storm',
  date: new Date().toISOString(),
  machine: machine({ load_average_1m_after: Math.round(loadavg()[0] * 100) / 100 }),
  pinned: PIN ? { servers_and_redis: `cpu ${SERVER_CPU}`, clients_and_publisher: `cpu ${CLIENT_CPU}` } : false,
  load: { clients: CLIENTS, load_generator_processes: WORKERS, channels: CHANNELS, subscriptions: 'client i: channel i mod channels; every fifth client: all', publications: PUBLICATIONS, rate_per_s: RATE, sdk: 'centrifuge-js 5.8 with its default backoff and timeouts, ws as WebSocket' },
  results
}
await writeFile(new URL('./results/recovery-storm.json', import.meta.url), JSON.stringify(output, null, 2) + '\n')

type Row = Record<string, any>
const lines = ['| scenario | published | subscriptions | exactly once in order | duplicates | silent gaps | unaccounted | resubscribes recovered | told not recovered (publications) | reconnect close codes | back within (p50/max) | p99 latency | caught up |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |']
for (const r of results as Row[]) {
  lines.push(`| ${r.scenario} | ${r.publishing.published_202} | ${r.clients.subscriptions} | ${r.subscriptions_exactly_once_in_order} | ${r.deliveries.duplicates} | ${r.deliveries.silent_gaps} | ${r.deliveries.unaccounted_publications} | ${r.resubscribes.recovered} | ${r.resubscribes.told_not_recovered} (${r.deliveries.told_lost_publications}) | ${Object.entries(r.reconnect_close_codes).map(([code, n]) => `${code}×${n}`).join(' ')} | ${r.resubscribed_within_ms?.p50 ?? '-'}/${r.resubscribed_within_ms?.max ?? '-'} ms | ${r.latency_post_to_receipt.p99_ms} ms | ${r.caught_up_after_publishing_s} s |`)
}
for (const r of results as Row[]) {
  const silent = r.deliveries.silent_gaps + r.deliveries.duplicates + r.deliveries.unaccounted_publications
  lines.push(`${r.scenario}: ${silent === 0 ? 'no silent gap, no duplicate' : `${silent} silent gaps, duplicates or unaccounted publications`}; ` +
    `${r.resubscribes.recovered} resubscribes recovered, ${r.resubscribes.told_not_recovered} told recovered: false` +
    ` (${r.deliveries.told_lost_publications} publications they knew they lost); ` +
    `${r.subscriptions_exactly_once_in_order}/${r.clients.subscriptions} subscriptions got every publication of the stream exactly once in order.`)
}
process.stdout.write(lines.join('\n') + '\n')
