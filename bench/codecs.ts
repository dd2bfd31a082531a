// JSON against Protobuf on the Centrifugo-compatible endpoint: what a channel
// publication costs the server per delivery with each codec, and how many
// bytes each delivery puts on the wire.
//
//   npm run bench:codecs                               # 5,000 connections, 2 rounds
//   CONNECTIONS=10000 ROUNDS=3 npm run bench:codecs    # as in docs/benchmarks.md
//
// 1. CPU per delivery (as bench/run.ts and bench/channels.ts measure it: the
//    server's CPU time over a run, divided by the deliveries the clients
//    counted). CONNECTIONS clients subscribed to one channel (no history)
//    over WORKERS load-generator processes (source addresses 127.0.0.2...),
//    a quiet run (QUIET_RATE publications/s, one per turn) and a burst run
//    (BURST_RATE/s in bursts of ten), SECONDS each, SIZE-byte messages:
//      json       every client speaks the JSON protocol (text frames)
//      protobuf   every client speaks Protobuf (`centrifuge-protobuf`)
//      mixed      half each: every publication is encoded once per codec,
//                 so this shows what the second encoding costs
//    ROUNDS rounds, in alternating order; a fresh server for each run. The
//    load generator is the same raw-socket client for both codecs and reads
//    both alike: it finds the timestamp in each push without parsing it.
// 2. Bytes per delivery: BYTES_CONNECTIONS clients, half of each codec, on
//    one server, get the same publications of each shape (~40 B, ~80 B and
//    ~1 KB of JSON data; in a plain namespace and in one with history, whose
//    publications carry an offset and an epoch), 20 publications each. Per codec: WebSocket
//    payload bytes per delivery, whole frames with their headers, and the
//    envelope (the payload less the publication's data, which is the same
//    JSON text in both codecs). No compression is negotiated.
// 3. Encoding per publication: each codec's push for the same envelopes
//    (the shapes above, with and without an offset and epoch), encoded and
//    framed ENCODINGS times per pass in this process, the fastest of ten
//    passes: what a codec costs once per publication, however many
//    subscribers share the frame.
// PHASES=cpu,bytes,encoding picks phases (the JSON then holds only those).
// Server pinned to CPU 0, load generators to CPU 1 (PIN=0: off).
// PROFILE=<dir> writes each server's V8 CPU profile there (--cpu-prof).
// Results: bench/results/codecs.json (RESULTS=name: name.json) and markdown tables on stdout.
// Loopback only, bounded (about two minutes with the defaults), every child stopped.
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { loadavg } from 'node:os'
import type { Envelope } from '../lib/backplane/types.js'
import { dataFrame } from '../lib/core/frame.js'
import type { WireProtocol } from '../lib/core/protocol.js'
import { JSON_WIRE } from '../lib/protocols/centrifuge/json-codec.js'
import { PROTOBUF_WIRE } from '../lib/protocols/centrifuge/protobuf-codec.js'
import { ask, pin, machine, PIN, percentiles, sleep, start } from './harness.js'
import { merge } from './loadgen/histogram.js'
import type { WorkerConfig } from './loadgen/worker.js'

const SECRET = 'bench-secret-bench-secret-bench-secret'
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 5000)
const WORKERS = Number(process.env.WORKERS ?? 4)
const SECONDS = Number(process.env.SECONDS ?? 3)
const QUIET_RATE = Number(process.env.QUIET_RATE ?? 10)
const BURST_RATE = Number(process.env.BURST_RATE ?? 20)
const SIZE = Number(process.env.SIZE ?? 100)
const ROUNDS = Number(process.env.ROUNDS ?? 2)
const BYTES_CONNECTIONS = Number(process.env.BYTES_CONNECTIONS ?? 200)
const ENCODINGS = Number(process.env.ENCODINGS ?? 20_000)
const PHASES = (process.env.PHASES ?? 'cpu,bytes,encoding').split(',')
const RESULTS = process.env.RESULTS ?? 'codecs' // bench/results/<RESULTS>.json
// Data sizes: the `size` of the servers' broadcast command (bench/servers/common.ts); SIZE=100 is the CPU runs' message.
const SHAPES = [{ name: 'small object', size: 0 }, { name: 'the CPU runs\' message', size: 100 }, { name: '~1 KB object', size: 1024 }]
const CONNECT_RATE = 4000 // per load-generator process
const SERVER_CPU = 0
const CLIENT_CPU = 1
const now = (): number => performance.timeOrigin + performance.now()
const t0 = now()
const log = (line: string): void => { process.stderr.write(`[codecs ${((now() - t0) / 1000).toFixed(0)}s] ${line}\n`) }
const round2 = (x: number): number => Math.round(x * 100) / 100
const median = (values: number[]): number => { const s = [...values].sort((a, b) => a - b); return s.length % 2 === 1 ? s[(s.length - 1) / 2] as number : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2 }

const NAMESPACES = { news: {}, hist: { historySize: 100, historyTtl: 300_000, recovery: true } }
const SERVER_OPTIONS = { centrifuge: true, channels: { namespaces: NAMESPACES } }

type Codec = 'json' | 'protobuf'
const PROTOCOL: Record<Codec, WorkerConfig['protocol']> = { json: 'centrifuge', protobuf: 'centrifuge-protobuf' }

pin(process.pid, CLIENT_CPU)

// PROFILE=<dir>: each server writes a V8 CPU profile there when it stops (--cpu-prof).
const PROFILE = process.env.PROFILE
async function startServer (channel: string): Promise<{ child: ChildProcess, port: number }> {
  const profile = PROFILE === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${PROFILE}`]
  const { child, ready } = await start('./servers/fanout.ts', { JWT_SECRET: SECRET, FANOUT_OPTIONS: JSON.stringify(SERVER_OPTIONS), PUBLISH_CHANNEL: channel }, SERVER_CPU, profile)
  return { child, port: ready.port }
}

/** Stops load generators ('close') and servers ('stop'), and waits for them to exit. */
async function stop (workers: ChildProcess[], server: ChildProcess): Promise<void> {
  for (const worker of workers) worker.send({ cmd: 'close' })
  server.send({ cmd: 'stop' })
  await Promise.all([...workers, server].map(async (child) => child.exitCode === null ? await once(child, 'exit') : undefined))
}

interface Report { connected: number, failed: number, received: number, subscribed: number, commandErrors: number, payloadBytes: number, frameBytes: number, dataBytes: number, histogram: string }

/** Load generators, one codec each: `codecs[i]` for process i; connections split evenly among them. */
class Clients {
  readonly workers: ChildProcess[] = []
  readonly codecs: Codec[]

  private constructor (codecs: Codec[]) {
    this.codecs = codecs
  }

  static async start (port: number, channel: string, count: number, codecs: Codec[], measureData = false): Promise<Clients> {
    const clients = new Clients(codecs)
    const perWorker = Math.ceil(count / codecs.length)
    // Started together: each takes a second or so to load.
    const started = await Promise.all(codecs.map(async () => await start('./loadgen/worker.ts', {}, CLIENT_CPU)))
    for (const [i, codec] of codecs.entries()) {
      const { child } = started[i] as { child: ChildProcess }
      const config: WorkerConfig = {
        host: '127.0.0.1',
        port,
        path: '/connection/websocket',
        users: Math.max(1, Math.floor(count / 10)),
        firstIndex: i * perWorker,
        jwtSecret: SECRET,
        headers: {},
        count: Math.min(perWorker, count - i * perWorker),
        localAddress: `127.0.0.${2 + i}`,
        connectRate: CONNECT_RATE,
        protocol: PROTOCOL[codec],
        centrifuge: { pool: [channel], perConnection: 1, subscribeOnConnect: true },
        measureData
      }
      child.send({ cmd: 'start', config })
      clients.workers.push(child)
    }
    return clients
  }

  async reports (): Promise<Report[]> {
    return await Promise.all(this.workers.map(async (worker) => await ask<Report>(worker, { cmd: 'report' })))
  }

  async reset (): Promise<void> {
    await Promise.all(this.workers.map(async (worker) => await ask(worker, { cmd: 'reset' })))
  }

  /** Waits (at most a minute) until every client is subscribed or failed. */
  async ready (count: number): Promise<{ subscribed: number, failed: number }> {
    const started = now()
    for (;;) {
      const reports = await this.reports()
      const subscribed = reports.reduce((sum, r) => sum + r.subscribed, 0)
      const failed = reports.reduce((sum, r) => sum + r.failed + r.commandErrors, 0)
      if (subscribed + failed >= count || now() - started > 60_000) return { subscribed, failed }
      await sleep(250)
    }
  }

  /** Per codec: the sums of its processes' reports. */
  async byCodec (): Promise<Map<Codec, Report[]>> {
    const reports = await this.reports()
    const map = new Map<Codec, Report[]>()
    reports.forEach((report, i) => { const codec = this.codecs[i] as Codec; map.set(codec, [...(map.get(codec) ?? []), report]) })
    return map
  }
}

interface BroadcastResult { messages: number, deliveries_expected: number, cpu_user_us: number, cpu_system_us: number, sending_ms: number, loop_delay_max_ms: number }

/** Publishes `rate` messages/s for `seconds` (bursts of `burst`), waits for the clients to count them; the server's bill. */
async function publishRun (server: ChildProcess, clients: Clients, rate: number, seconds: number, burst: number, size: number): Promise<{ result: BroadcastResult, received: number, windowMs: number }> {
  await clients.reset()
  const result = await ask<BroadcastResult>(server, { cmd: 'broadcast', rate, seconds, burst, size })
  const total = async (): Promise<number> => (await clients.reports()).reduce((sum, r) => sum + r.received, 0)
  let received = await total()
  const drainStarted = now()
  while (received < result.deliveries_expected && now() - drainStarted < 10_000) {
    await sleep(100)
    received = await total()
  }
  return { result, received, windowMs: result.sending_ms + (now() - drainStarted) }
}

interface RunResult { delivered: number, lost: number, deliveries_per_s: number, cpu_us_per_delivery: number, p50_ms: number | null, p99_ms: number | null, server_loop_delay_max_ms: number, frame_bytes_per_delivery: Record<string, number> }

async function cpuRun (server: ChildProcess, clients: Clients, rate: number, burst: number): Promise<RunResult> {
  const { result, received, windowMs } = await publishRun(server, clients, rate, SECONDS, burst, SIZE)
  const cpu = result.cpu_user_us + result.cpu_system_us
  const byCodec = await clients.byCodec()
  const { p50_ms: p50, p99_ms: p99 } = percentiles(merge([...byCodec.values()].flat().map((r) => r.histogram)))
  const frameBytes: Record<string, number> = {}
  for (const [codec, reports] of byCodec) frameBytes[codec] = round2(reports.reduce((s, r) => s + r.frameBytes, 0) / Math.max(1, reports.reduce((s, r) => s + r.received, 0)))
  return {
    delivered: received,
    lost: result.deliveries_expected - received,
    deliveries_per_s: Math.round(received / (windowMs / 1000)),
    cpu_us_per_delivery: round2(cpu / Math.max(1, received)),
    p50_ms: p50 ?? null,
    p99_ms: p99 ?? null,
    server_loop_delay_max_ms: result.loop_delay_max_ms,
    frame_bytes_per_delivery: frameBytes
  }
}

const CASES: Record<string, Codec[]> = {
  json: Array<Codec>(WORKERS).fill('json'),
  protobuf: Array<Codec>(WORKERS).fill('protobuf'),
  mixed: Array.from({ length: WORKERS }, (_, i) => i % 2 === 0 ? 'json' : 'protobuf')
}

async function measureCase (name: string): Promise<Record<string, unknown>> {
  const channel = 'news:all'
  const server = await startServer(channel)
  const clients = await Clients.start(server.port, channel, CONNECTIONS, CASES[name] as Codec[])
  const ready = await clients.ready(CONNECTIONS)
  await sleep(300)
  const quiet = await cpuRun(server.child, clients, QUIET_RATE, 1)
  const burst = await cpuRun(server.child, clients, BURST_RATE, 10)
  await stop(clients.workers, server.child)
  log(`${name}: quiet ${quiet.cpu_us_per_delivery} µs, burst ${burst.cpu_us_per_delivery} µs per delivery (${ready.subscribed} subscribed, ${ready.failed} failed)`)
  return { case: name, subscribed: ready.subscribed, failed: ready.failed, quiet, burst }
}

async function cpuPhase (): Promise<Record<string, unknown>> {
  const names = Object.keys(CASES)
  const runs: Array<Record<string, unknown>> = []
  for (let round = 0; round < ROUNDS; round++) {
    // Alternating order, so that a drift of the machine does not favour one case.
    for (const name of round % 2 === 0 ? names : [...names].reverse()) runs.push({ round, ...await measureCase(name) })
  }
  type Run = { case: string, quiet: RunResult, burst: RunResult }
  const of = (name: string): Run[] => (runs as unknown as Run[]).filter((r) => r.case === name)
  const base = { quiet: median(of('json').map((r) => r.quiet.cpu_us_per_delivery)), burst: median(of('json').map((r) => r.burst.cpu_us_per_delivery)) }
  const summary = names.map((name) => {
    const quiet = median(of(name).map((r) => r.quiet.cpu_us_per_delivery))
    const burst = median(of(name).map((r) => r.burst.cpu_us_per_delivery))
    return {
      case: name,
      quiet_cpu_us_per_delivery: round2(quiet),
      quiet_vs_json: round2(quiet / base.quiet),
      burst_cpu_us_per_delivery: round2(burst),
      burst_vs_json: round2(burst / base.burst),
      // The spread over rounds, to tell a difference from the noise.
      quiet_range: [Math.min(...of(name).map((r) => r.quiet.cpu_us_per_delivery)), Math.max(...of(name).map((r) => r.quiet.cpu_us_per_delivery))],
      burst_range: [Math.min(...of(name).map((r) => r.burst.cpu_us_per_delivery)), Math.max(...of(name).map((r) => r.burst.cpu_us_per_delivery))],
      lost: of(name).reduce((sum, r) => sum + r.quiet.lost + r.burst.lost, 0),
      burst_p99_ms: median(of(name).map((r) => r.burst.p99_ms ?? 0))
    }
  })
  return { connections: CONNECTIONS, rounds: ROUNDS, summary, runs }
}

async function bytesPhase (): Promise<Array<Record<string, unknown>>> {
  const rows: Array<Record<string, unknown>> = []
  for (const [channel, history] of [['news:bytes', false], ['hist:bytes', true]] as const) {
    const server = await startServer(channel)
    const clients = await Clients.start(server.port, channel, BYTES_CONNECTIONS, ['json', 'protobuf'], true)
    const ready = await clients.ready(BYTES_CONNECTIONS)
    for (const shape of SHAPES) {
      const { result, received } = await publishRun(server.child, clients, 20, 1, 1, shape.size)
      const byCodec = await clients.byCodec()
      const proto = (byCodec.get('protobuf') ?? [])
      // The same publications reach both codecs: their data is the same JSON text.
      const dataPerDelivery = proto.reduce((s, r) => s + r.dataBytes, 0) / Math.max(1, proto.reduce((s, r) => s + r.received, 0))
      const perCodec: Record<string, unknown> = {}
      for (const [codec, reports] of byCodec) {
        const deliveries = Math.max(1, reports.reduce((s, r) => s + r.received, 0))
        const payload = reports.reduce((s, r) => s + r.payloadBytes, 0) / deliveries
        perCodec[codec] = {
          deliveries: reports.reduce((s, r) => s + r.received, 0),
          payload_bytes_per_delivery: round2(payload),
          frame_bytes_per_delivery: round2(reports.reduce((s, r) => s + r.frameBytes, 0) / deliveries),
          envelope_bytes_per_delivery: round2(payload - dataPerDelivery)
        }
      }
      const json = perCodec.json as { payload_bytes_per_delivery: number, frame_bytes_per_delivery: number }
      const protobuf = perCodec.protobuf as { payload_bytes_per_delivery: number, frame_bytes_per_delivery: number }
      const row = {
        shape: shape.name,
        channel,
        history,
        publications: result.messages,
        lost: result.deliveries_expected - received,
        subscribed: ready.subscribed,
        data_bytes: round2(dataPerDelivery),
        ...perCodec,
        protobuf_vs_json_frame_bytes: round2(protobuf.frame_bytes_per_delivery / json.frame_bytes_per_delivery),
        protobuf_saves_bytes_per_delivery: round2(json.frame_bytes_per_delivery - protobuf.frame_bytes_per_delivery)
      }
      log(`bytes ${shape.name}${history ? ' with history' : ''}: json ${json.frame_bytes_per_delivery} B, protobuf ${protobuf.frame_bytes_per_delivery} B per delivery`)
      rows.push(row)
    }
    await stop(clients.workers, server.child)
  }
  return rows
}

/** ns to encode and frame one publication, per codec and shape: the fastest of ten passes (the least disturbed by the machine's other work and by GC). */
function encodingPhase (): Array<Record<string, unknown>> {
  const rows: Array<Record<string, unknown>> = []
  for (const shape of SHAPES) {
    const data = Buffer.from(JSON.stringify({ t: now(), seq: 1234, pad: 'x'.repeat(Math.max(0, shape.size - 60)) }))
    for (const history of [false, true]) {
      const row: Record<string, unknown> = { shape: shape.name, data_bytes: data.length, history }
      for (const [codec, wire] of [['json', JSON_WIRE], ['protobuf', PROTOBUF_WIRE]] as Array<[Codec, WireProtocol]>) {
        let best = Infinity
        for (let pass = 0; pass < 11; pass++) {
          const started = process.hrtime.bigint()
          for (let i = 0; i < ENCODINGS; i++) {
            const envelope: Envelope = history ? { id: '', data, channel: 'hist:all', offset: 100_000 + i, epoch: 'Xk3pQ9' } : { id: '', data, channel: 'news:all' }
            dataFrame(wire.encode(envelope) as Buffer, wire.binary)
          }
          if (pass > 0) best = Math.min(best, Number(process.hrtime.bigint() - started) / ENCODINGS)
        }
        row[`${codec}_ns`] = Math.round(best)
      }
      row.protobuf_vs_json = round2((row.protobuf_ns as number) / (row.json_ns as number))
      rows.push(row)
    }
  }
  return rows
}

const output: Record<string, unknown> = {
  benchmark: 'Centrifugo-compatible endpoint: JSON against Protobuf clients, CPU and bytes per delivery',
  command: 'npm run bench:codecs',
  date: new Date().toISOString(),
  machine: machine({ load_average_1m_before: round2(loadavg()[0] as number) }),
  pinned: PIN ? { server: `cpu ${SERVER_CPU}`, load_generators: `cpu ${CLIENT_CPU}` } : false,
  load: { connections: CONNECTIONS, load_generator_processes: WORKERS, seconds_per_run: SECONDS, quiet_rate_per_s: QUIET_RATE, burst_rate_per_s: BURST_RATE, burst: 10, message_bytes: SIZE, bytes_connections: BYTES_CONNECTIONS }
}
if (PHASES.includes('cpu')) output.cpu_per_delivery = await cpuPhase()
if (PHASES.includes('bytes')) output.bytes_per_delivery = await bytesPhase()
if (PHASES.includes('encoding')) output.encoding_per_publication = { encodings_per_pass: ENCODINGS, rows: encodingPhase() };
(output.machine as Record<string, unknown>).load_average_1m_after = round2(loadavg()[0] as number)
await writeFile(new URL(`./results/${RESULTS}.json`, import.meta.url), JSON.stringify(output, null, 2) + '\n')

type Row = Record<string, any>
const lines: string[] = []
if (output.cpu_per_delivery !== undefined) {
  lines.push(`Server CPU per delivery, ${CONNECTIONS} subscribers of one channel, ~${SIZE} B messages, median of ${ROUNDS} rounds`, '',
    '| clients | quiet µs/delivery | vs JSON | burst µs/delivery | vs JSON | lost | burst p99 |', '| --- | --- | --- | --- | --- | --- | --- |')
  for (const r of (output.cpu_per_delivery as Row).summary as Row[]) lines.push(`| ${r.case} | ${r.quiet_cpu_us_per_delivery} (${r.quiet_range.join('-')}) | ${r.quiet_vs_json}× | ${r.burst_cpu_us_per_delivery} (${r.burst_range.join('-')}) | ${r.burst_vs_json}× | ${r.lost} | ${r.burst_p99_ms} ms |`)
}
if (output.bytes_per_delivery !== undefined) {
  lines.push('', 'Bytes per delivery (WebSocket payload / whole frame; envelope = payload less the publication data)', '',
    '| data | namespace | data B | JSON payload | JSON frame | JSON envelope | Protobuf payload | Protobuf frame | Protobuf envelope | Protobuf/JSON frame |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
  for (const r of output.bytes_per_delivery as Row[]) lines.push(`| ${r.shape} | ${r.history ? 'history' : 'plain'} | ${r.data_bytes} | ${r.json.payload_bytes_per_delivery} | ${r.json.frame_bytes_per_delivery} | ${r.json.envelope_bytes_per_delivery} | ${r.protobuf.payload_bytes_per_delivery} | ${r.protobuf.frame_bytes_per_delivery} | ${r.protobuf.envelope_bytes_per_delivery} | ${r.protobuf_vs_json_frame_bytes}× |`)
}
if (output.encoding_per_publication !== undefined) {
  lines.push('', `Encoding and framing one publication (fastest of ten passes of ${ENCODINGS})`, '', '| data | namespace | JSON ns | Protobuf ns | Protobuf/JSON |', '| --- | --- | --- | --- | --- |')
  for (const r of (output.encoding_per_publication as Row).rows as Row[]) lines.push(`| ${r.shape} (${r.data_bytes} B) | ${r.history ? 'history' : 'plain'} | ${r.json_ns} | ${r.protobuf_ns} | ${r.protobuf_vs_json}× |`)
}
process.stdout.write(lines.join('\n') + '\n')
