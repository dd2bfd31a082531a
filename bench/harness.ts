// Helpers the benchmark runners share: child processes, IPC, histograms.
import { execFileSync, fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { cpus } from 'node:os'
import { fileURLToPath } from 'node:url'
import { merge, percentileMs, type LatencyHistogram } from './loadgen/histogram.js'

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url))
export const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

/** Forks a benchmark script under tsx; `execArgv` adds Node flags (e.g. --cpu-prof). */
export function spawn (script: string, env: Record<string, string> = {}, execArgv: string[] = []): ChildProcess {
  return fork(here(script), [], { execArgv: ['--import', 'tsx', ...execArgv], env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
}

/**
 * Whether load generators get a CPU of their own (PIN=0 turns it off): on a
 * two-core machine an attacker's own CPU use would otherwise starve the
 * server, and the figures would measure the machine, as if the attacker were
 * on another one.
 */
/** The machine a result was measured on, with what a bench adds (load averages, limits). */
export function machine (extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, ...extra }
}

export const PIN = process.env.PIN !== '0' && cpus().length >= 2

/** Pins a process to one CPU with taskset (when PIN). */
export function pin (pid: number | undefined, cpu: number): void {
  if (PIN && pid !== undefined) execFileSync('taskset', ['-pc', String(cpu), String(pid)], { stdio: 'ignore' })
}

/** Spawns a benchmark process, pins it to `cpu` (when given), and resolves with its ready message. */
export async function start<R = { port: number }> (script: string, env: Record<string, string> = {}, cpu?: number, execArgv: string[] = []): Promise<{ child: ChildProcess, ready: R }> {
  const child = spawn(script, env, execArgv)
  if (cpu !== undefined) pin(child.pid, cpu)
  const [ready] = await once(child, 'message') as [R]
  return { child, ready }
}

export async function ask<T> (child: ChildProcess, message: object): Promise<T> {
  const reply = once(child, 'message') as Promise<[T]>
  child.send(message)
  return (await reply)[0]
}

/** What a load-generator process reports: counts, and its latency histogram encoded. */
export interface Report { connected: number, failed: number, received: number, histogram: string }

export function percentiles (histogram: LatencyHistogram): Record<string, number | null> {
  return { p50_ms: percentileMs(histogram, 50), p90_ms: percentileMs(histogram, 90), p99_ms: percentileMs(histogram, 99), max_ms: percentileMs(histogram, 100) }
}

/** Every worker's report, summed, with their histograms merged. */
export async function reports (workers: ChildProcess[]): Promise<Omit<Report, 'histogram'> & { histogram: LatencyHistogram }> {
  const all = await Promise.all(workers.map(async (worker) => await ask<Report>(worker, { cmd: 'report' })))
  return {
    connected: all.reduce((s, r) => s + r.connected, 0),
    failed: all.reduce((s, r) => s + r.failed, 0),
    received: all.reduce((s, r) => s + r.received, 0),
    histogram: merge(all.map((r) => r.histogram))
  }
}

/** The latency distribution as [percent, ms] points, for charts and the JSON. */
export function distribution (histogram: LatencyHistogram): Array<[number, number]> {
  const points: Array<[number, number]> = []
  if (histogram.totalCount === 0) return points
  for (const percent of [0, 1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.9, 100]) points.push([percent, percentileMs(histogram, percent) as number])
  return points
}
