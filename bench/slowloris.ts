// Slow requests against the example server's configuration, beside a
// baseline in the same run:
//
//   npm run bench:slowloris
//
// Two servers run side by side in processes of their own (bench/servers/
// slowloris-target.ts): `baseline`, fastify-fanout with Node's and Fastify's
// default deadlines and refused bodies read to the end (as before the
// hardening), and `example`, with example/http-options.ts and the plugin's
// defaults. ATTACKERS processes, each from source addresses of its own
// (127.0.0.20-29, 30-39, 40-49 by kind), open COUNT connections to each server at RATE per
// second in all, and never finish them, trickling a byte or a header line
// every TRICKLE_MS:
//   upgrade_headers     half of them: a WebSocket upgrade whose headers never end
//   post_no_token       a quarter: POST /broadcast without a token, an endless body
//   post_token_trickle  a quarter: POST /broadcast with a valid broadcast token, an endless body
// Meanwhile, every PROBE_MS, a legitimate client (a real user token, from
// 127.0.0.1) connects to each server and must receive a broadcast posted
// with a real service token. After WINDOW_S seconds the servers report how
// long they held each attack connection, from accepting it to closing it (one
// still open counts until then), and everything stops. The attackers' own
// view, from their TCP connect, is in the JSON too: it adds the time a
// connection waited in the kernel for the server to accept it.
// The attackers are pinned to CPU 1, the servers and this runner (the
// legitimate client) to CPU 0 (PIN=0 turns it off; see bench/harness.ts).
// Results: bench/results/slowloris.json and a table on stdout.
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { loadavg } from 'node:os'
import { createSigner } from 'fast-jwt'
import { WebSocket } from 'ws'
import { ask, pin, machine, PIN, sleep, start } from './harness.js'
import { ATTACK_KINDS, sourceAddress, type AttackConfig, type AttackKind, type KindReport } from './loadgen/slowloris.js'

// A little over the servers' 20,000 files, so that a server that holds
// every half-sent request runs out.
const COUNT = Number(process.env.COUNT ?? 20_500) // per server
const RATE = Number(process.env.RATE ?? 1000) // new connections per second per server
const ATTACKERS = Number(process.env.ATTACKERS ?? 4)
const WINDOW_S = Number(process.env.WINDOW_S ?? 100)
const TRICKLE_MS = Number(process.env.TRICKLE_MS ?? 10_000)
const PROBE_MS = Number(process.env.PROBE_MS ?? 3000)
const SECRET = 'bench-secret-bench-secret-bench-secret'
const PROFILES = ['baseline', 'example'] as const
type Profile = typeof PROFILES[number]
const DESCRIPTION: Record<Profile, string> = {
  baseline: 'Node/Fastify default deadlines, refused bodies read to the end (closeOnUnreadBody: false): before',
  example: 'example/http-options.ts deadlines, refusals close their connection (plugin default): after'
}

pin(process.pid, 0)
const sign = createSigner({ key: SECRET })
const userToken = sign({ sub: 'legit-user' })
const serviceToken = sign({ sub: 'legit-service', scope: 'broadcast' })
const attackerToken = sign({ sub: 'leaked-service', scope: 'broadcast' })

// ---- the servers ----
const servers = new Map<Profile, { child: ChildProcess, port: number }>()
for (const profile of PROFILES) {
  const { child, ready } = await start('./servers/slowloris-target.ts', { PROFILE: profile, JWT_SECRET: SECRET }, 0)
  servers.set(profile, { child, port: ready.port })
}
const serverOf = (profile: Profile): { child: ChildProcess, port: number } => servers.get(profile) as { child: ChildProcess, port: number }

// ---- the attackers ----
const share = (total: number, i: number): number => Math.floor(total / ATTACKERS) + (i < total % ATTACKERS ? 1 : 0)
const perKind: Record<AttackKind, number> = { upgrade_headers: COUNT / 2, post_no_token: COUNT / 4, post_token_trickle: COUNT / 4 }
const attackers: ChildProcess[] = []
for (let i = 0; i < ATTACKERS; i++) {
  attackers.push((await start('./loadgen/slowloris.ts', {}, 1)).child)
}
const started = Date.now()
const attackReports = attackers.map(async (attacker, i) => {
  const config: AttackConfig = {
    targets: PROFILES.map((name) => ({ name, port: serverOf(name).port })),
    attacker: i,
    counts: { upgrade_headers: share(perKind.upgrade_headers, i), post_no_token: share(perKind.post_no_token, i), post_token_trickle: share(perKind.post_token_trickle, i) },
    rate: RATE / ATTACKERS,
    trickleMs: TRICKLE_MS,
    windowMs: WINDOW_S * 1000 + 2000, // the servers report first
    serviceToken: attackerToken
  }
  const report = once(attacker, 'message') as Promise<[{ reports: Record<Profile, Record<AttackKind, KindReport>> }]>
  attacker.send({ cmd: 'start', config })
  return (await report)[0].reports
})

// ---- open files on each server, and a legitimate client, during the attack ----
interface Probe { at_s: number, connected: boolean, connect_ms: number | null, broadcast_status: number | null, received: boolean, error?: string }
const files: Record<Profile, Array<[number, number | null]>> = { baseline: [], example: [] }
const probes: Record<Profile, Probe[]> = { baseline: [], example: [] }
const seconds = (): number => Math.round((Date.now() - started) / 100) / 10

async function sampleFiles (): Promise<void> {
  while (Date.now() - started < WINDOW_S * 1000) {
    for (const profile of PROFILES) {
      const { files: count } = await ask<{ files: number | null }>(serverOf(profile).child, { cmd: 'files' })
      files[profile].push([seconds(), count])
    }
    await sleep(2000)
  }
}

async function post (port: number, body: string): Promise<number> {
  return await new Promise((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port, path: '/broadcast', method: 'POST', agent: false, timeout: 5000, headers: { authorization: `Bearer ${serviceToken}`, 'content-type': 'application/json' } }, (response) => {
      response.resume()
      resolve(response.statusCode ?? 0)
    })
    outgoing.on('timeout', () => { outgoing.destroy(new Error('no answer within 5 s')) })
    outgoing.on('error', reject)
    outgoing.end(body)
  })
}

async function probe (profile: Profile, n: number): Promise<Probe> {
  const result: Probe = { at_s: seconds(), connected: false, connect_ms: null, broadcast_status: null, received: false }
  const connecting = Date.now()
  const ws = new WebSocket(`ws://127.0.0.1:${serverOf(profile).port}/ws`, { headers: { authorization: `Bearer ${userToken}` }, handshakeTimeout: 5000 })
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    result.connected = true
    result.connect_ms = Date.now() - connecting
    const marker = `probe-${n}`
    const arrival = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => { resolve(false) }, 5000)
      ws.on('message', (data: Buffer) => {
        if (data.toString().includes(marker)) { clearTimeout(timer); resolve(true) }
      })
    })
    result.broadcast_status = await post(serverOf(profile).port, JSON.stringify({ data: marker }))
    result.received = await arrival
  } catch (err) {
    result.error = (err as Error).message
  } finally {
    ws.terminate()
  }
  return result
}

async function probeAll (): Promise<void> {
  let n = 0
  while (Date.now() - started < WINDOW_S * 1000 - 6000) {
    const round = PROBE_MS + Date.now()
    const results = await Promise.all(PROFILES.map(async (profile) => await probe(profile, n++)))
    PROFILES.forEach((profile, i) => { probes[profile].push(results[i] as Probe) })
    await sleep(Math.max(0, round - Date.now()))
  }
}

process.stderr.write(`attacking ${PROFILES.join(' and ')} for ${WINDOW_S} s: ${COUNT} connections each at ${RATE}/s from ${ATTACKERS} processes\n`)
const loadBefore = loadavg()
const serverSide = sleep(WINDOW_S * 1000 - (Date.now() - started)).then(async () => {
  const entries = await Promise.all(PROFILES.map(async (profile) => [profile, (await ask<{ held: Record<AttackKind, unknown> }>(serverOf(profile).child, { cmd: 'held' })).held] as const))
  return Object.fromEntries(entries) as Record<Profile, Record<AttackKind, unknown>>
})
await Promise.all([sampleFiles(), probeAll()])
const held = await serverSide
const loadAfter = loadavg()
const reports = await Promise.all(attackReports)

// ---- results ----
const quantile = (sorted: number[], q: number): number | null => sorted.length === 0 ? null : Math.round((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number) / 100) / 10
const results = PROFILES.map((profile) => {
  const attackerView = Object.fromEntries(ATTACK_KINDS.map((kind) => {
    const merged: KindReport = { attempted: 0, connected: 0, failed_to_connect: 0, closed_by_server: 0, held_to_window_end: 0, answers: {}, held_ms: [] }
    for (const report of reports) {
      const part = report[profile][kind]
      merged.attempted += part.attempted
      merged.connected += part.connected
      merged.failed_to_connect += part.failed_to_connect
      merged.closed_by_server += part.closed_by_server
      merged.held_to_window_end += part.held_to_window_end
      for (const [answer, count] of Object.entries(part.answers)) merged.answers[answer] = (merged.answers[answer] ?? 0) + count
      merged.held_ms.push(...part.held_ms)
    }
    const sorted = merged.held_ms.sort((a, b) => a - b)
    const { held_ms: _heldMs, ...counts } = merged
    return [kind, { ...counts, held_s: { p50: quantile(sorted, 0.5), p90: quantile(sorted, 0.9), max: quantile(sorted, 1) } }]
  }))
  const own = probes[profile]
  const counted = files[profile].map(([, count]) => count)
  return {
    server: profile,
    description: DESCRIPTION[profile],
    // How long the server held each attack connection (accept to close).
    held_by_server: held[profile],
    // What the attackers saw, from their TCP connect (kernel queueing included).
    attacker_view: attackerView,
    server_open_files: {
      peak: Math.max(0, ...counted.map((count) => count ?? 0)),
      // Samples where the server could not even open /proc/self/fd: at its limit.
      samples_out_of_files: counted.filter((count) => count === null).length,
      timeline: files[profile]
    },
    legitimate_client: {
      probes: own.length,
      connected: own.filter((p) => p.connected).length,
      broadcast_accepted: own.filter((p) => p.broadcast_status === 202).length,
      received: own.filter((p) => p.received).length,
      connect_ms_max: Math.max(0, ...own.map((p) => p.connect_ms ?? 0)),
      failures: own.filter((p) => !p.received).map((p) => ({ at_s: p.at_s, error: p.error ?? (p.connected ? `broadcast ${p.broadcast_status}` : 'not connected') }))
    }
  }
})

for (const attacker of attackers) attacker.send({ cmd: 'exit' })
for (const { child } of servers.values()) child.send({ cmd: 'stop' })
await Promise.all([...attackers, ...[...servers.values()].map((s) => s.child)].map(async (child) => child.exitCode === null ? await once(child, 'exit') : undefined))

const limit = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1]
const output = {
  benchmark: 'slow requests (slowloris): unfinished upgrades and endless bodies, with and without the hardening',
  command: 'npm run bench:slowloris',
  machine: machine({ open_files_per_process: Number(limit), load_average_1m_before: loadBefore[0], load_average_1m_after: loadAfter[0], pinned: PIN ? { servers_and_legitimate_client: 'cpu 0', attackers: 'cpu 1' } : false }),
  attack: { connections_per_server: COUNT, rate_per_s_per_server: RATE, attacker_processes: ATTACKERS, source_addresses: Object.fromEntries(ATTACK_KINDS.map((kind) => [kind, attackers.map((_, i) => sourceAddress(kind, i))])), per_kind: perKind, trickle_ms: TRICKLE_MS, window_s: WINDOW_S, probe_every_ms: PROBE_MS },
  results
}
await writeFile(new URL('./results/slowloris.json', import.meta.url), JSON.stringify(output, null, 2) + '\n')

const rows = ['| server | attack | held p50 | held p90 | held max | still held at the end | answers | peak open files | legitimate client got the broadcast |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
const sec = (value: number | null | undefined): string => value === null || value === undefined ? '-' : `${value} s`
for (const result of results) {
  for (const kind of ATTACK_KINDS) {
    const server = result.held_by_server[kind] as { accepted: number, still_open: number, held_s: Record<string, number | null> }
    const seen = result.attacker_view[kind] as { answers: Record<string, number> }
    const files = result.server_open_files
    rows.push(`| ${result.server} | ${kind} | ${sec(server.held_s.p50)} | ${sec(server.held_s.p90)} | ${sec(server.held_s.max)} | ${server.still_open} of ${server.accepted} | ${Object.entries(seen.answers).map(([a, c]) => `${a}: ${c}`).join(', ')} | ${files.samples_out_of_files > 0 ? `out of files in ${files.samples_out_of_files} samples` : files.peak} | ${result.legitimate_client.received} of ${result.legitimate_client.probes} |`)
  }
}
process.stdout.write(rows.join('\n') + '\n')
