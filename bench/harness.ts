// Helpers the benchmark runners share: child processes, IPC, histograms.
import { execFileSync, fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { cpus } from 'node:os'
import { fileURLToPath } from 'node:url'
import { BUCKET_BASE_MS, BUCKET_GROWTH } from './loadgen/histogram.js'

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url))
export const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

export function spawn (script: string, env: Record<string, string> = {}): ChildProcess {
  return fork(here(script), [], { execArgv: ['--import', 'tsx'], env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
}

/**
 * Whether load generators get a CPU of their own (PIN=0 turns it off): on a
 * two-core machine an attacker's own CPU use would otherwise starve the
 * server, and the figures would measure the machine, as if the attacker were
 * on another one.
 */
export const PIN = process.env.PIN !== '0' && cpus().length >= 2

/** Pins a process to one CPU with taskset (when PIN). */
export function pin (pid: number | undefined, cpu: number): void {
  if (PIN && pid !== undefined) execFileSync('taskset', ['-pc', String(cpu), String(pid)], { stdio: 'ignore' })
}

/** Spawns a benchmark process, pins it to `cpu` (when given), and resolves with its ready message. */
export async function start<R = { port: number }> (script: string, env: Record<string, string> = {}, cpu?: number): Promise<{ child: ChildProcess, ready: R }> {
  const child = spawn(script, env)
  if (cpu !== undefined) pin(child.pid, cpu)
  const [ready] = await once(child, 'message') as [R]
  return { child, ready }
}

export async function ask<T> (child: ChildProcess, message: object): Promise<T> {
  const reply = once(child, 'message') as Promise<[T]>
  child.send(message)
  return (await reply)[0]
}

export interface Report { connected: number, failed: number, received: number, histogram: number[] }

export function percentiles (histogram: number[]): Record<string, number | null> {
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

export async function reports (workers: ChildProcess[]): Promise<Report> {
  const all = await Promise.all(workers.map(async (worker) => await ask<Report>(worker, { cmd: 'report' })))
  const histogram = new Array(all[0]?.histogram.length ?? 0).fill(0) as number[]
  for (const report of all) report.histogram.forEach((count, i) => { histogram[i] = (histogram[i] as number) + count })
  return { connected: all.reduce((s, r) => s + r.connected, 0), failed: all.reduce((s, r) => s + r.failed, 0), received: all.reduce((s, r) => s + r.received, 0), histogram }
}

/** Non-empty histogram buckets as [upper bound ms, count]. */
export function compact (histogram: number[]): Array<[number, number]> {
  const out: Array<[number, number]> = []
  histogram.forEach((count, i) => { if (count > 0) out.push([Math.round(BUCKET_BASE_MS * BUCKET_GROWTH ** (i + 1) * 1000) / 1000, count]) })
  return out
}
