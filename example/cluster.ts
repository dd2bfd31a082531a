// One worker per core, all on one port, joined through Redis:
//   REDIS_URL=redis://127.0.0.1:6379 npm run start:cluster
// Each worker runs example/server.ts (same environment variables); WORKERS
// overrides the number of workers. The primary serves the whole machine's
// metrics on METRICS_PORT (default 9091) of METRICS_HOST (default 127.0.0.1):
// each scrape adds up every worker's. SIGTERM or SIGINT closes every worker
// gracefully (clients get 1001), then the primary exits.
import cluster from 'node:cluster'
import { randomBytes } from 'node:crypto'
import { availableParallelism } from 'node:os'
import Fastify from 'fastify'
import { clusterMetrics } from '../lib/index.js'

if (cluster.isPrimary) {
  if (process.env.REDIS_URL === undefined || process.env.REDIS_URL === '') {
    process.stderr.write('example/cluster.ts joins its workers through Redis: set REDIS_URL (e.g. REDIS_URL=redis://127.0.0.1:6379)\n')
    process.exit(1)
  }
  const workers = Number(process.env.WORKERS ?? availableParallelism())
  // Every worker must accept the same tokens: make the development secret once.
  const env: Record<string, string> = {}
  if (process.env.JWT_SECRET === undefined || process.env.JWT_SECRET === '') {
    env.JWT_SECRET = randomBytes(32).toString('base64url')
    env.FANOUT_EXAMPLE_DEV = '1'
  }
  // The machine's metrics: the workers report theirs to this process
  // (`metrics: { cluster: true }` in server.ts), which adds them up.
  // Prometheus scrapes every few seconds: no log line per scrape.
  const metrics = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' }, disableRequestLogging: true })
  await metrics.register(clusterMetrics)
  await metrics.listen({ port: Number(process.env.METRICS_PORT ?? 9091), host: process.env.METRICS_HOST ?? '127.0.0.1' })

  let stopping = false
  // Each worker keeps its index across restarts (worker 0 prints the banner).
  const indexOf = new Map<number, number>()
  const start = (index: number): void => {
    indexOf.set(cluster.fork({ ...env, FANOUT_WORKER_INDEX: String(index) }).id, index)
  }
  for (let i = 0; i < workers; i++) start(i)
  cluster.on('exit', (worker, code, signal) => {
    const index = indexOf.get(worker.id) as number
    indexOf.delete(worker.id)
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        metrics.close().then(() => process.exit(0), (err: unknown) => {
          metrics.log.error({ err }, 'closing the metrics server failed')
          process.exit(1)
        })
      }
      return
    }
    process.stderr.write(`worker ${worker.process.pid} died (${signal ?? code}); starting another\n`)
    start(index)
  })
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      stopping = true
      // Each worker closes its app gracefully on SIGTERM (see server.ts).
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM')
    })
  }
} else {
  await import('./server.js')
}
