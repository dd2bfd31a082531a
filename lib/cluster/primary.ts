import cluster, { type Worker } from 'node:cluster'
import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { Gauge, Registry } from 'prom-client'
import { NotClusterPrimaryError } from '../errors.js'
import { integer, optionObject, routePath } from '../option-checks.js'
import type { ClusterMetricsOptions } from '../types.js'
import { aggregate, retire } from './aggregate.js'
import { GOODBYE, HELLO, REQUEST, ROLL_CALL, toPrimary, type MetricSnapshot, type ToWorker } from './messages.js'

const defaults = { path: '/metrics', timeout: 1000 }
const optionNames: Record<keyof ClusterMetricsOptions, true> = { path: true, timeout: true }

/** One fastify-fanout instance in a worker that reports its metrics. */
interface Source {
  readonly worker: Worker
  /** Its latest snapshot, and the request it answered (an older answer never replaces a newer one). */
  last: MetricSnapshot[] | undefined
  lastId: number
}

/** A scrape waiting for the sources' answers. */
interface Scrape {
  readonly waiting: Set<string>
  readonly answered: Set<string>
  readonly finish: () => void
}

type WorkerState = 'reporting' | 'late' | 'silent'

/**
 * Collects the workers' metrics for one scrape and adds them up into the
 * machine's. Sources that do not answer in time count with their last
 * answer; the counts of workers that are gone stay in the totals (`retired`),
 * so that the machine's counters never go back when a worker restarts.
 */
class ClusterCollector {
  readonly #timeout: number
  readonly #log: FastifyBaseLogger
  readonly #sources = new Map<string, Source>()
  readonly #scrapes = new Map<number, Scrape>()
  #retired: MetricSnapshot[] = []
  #nextId = 0
  #stopped = false
  readonly #own = new Registry()
  readonly #workers: Gauge<'state'>

  constructor (timeout: number, log: FastifyBaseLogger) {
    this.#timeout = timeout
    this.#log = log
    this.#workers = new Gauge({
      name: 'fanout_cluster_workers',
      help: 'Cluster workers by state at this scrape: reporting (answered in time), late (no answer in time: its last answer counts), silent (not reporting: starting, stopping, or without metrics.cluster)',
      labelNames: ['state'],
      registers: [this.#own]
    })
  }

  start (): void {
    cluster.on('message', this.#onMessage)
    cluster.on('exit', this.#onExit)
    // Workers forked before this started said hello to no one: ask again.
    for (const worker of this.#liveWorkers()) this.#send(worker, { type: ROLL_CALL })
  }

  stop (): void {
    this.#stopped = true
    cluster.off('message', this.#onMessage)
    cluster.off('exit', this.#onExit)
    for (const scrape of this.#scrapes.values()) scrape.finish()
  }

  async collect (): Promise<Registry> {
    const id = ++this.#nextId
    const live = this.#liveWorkers()
    const waiting = new Set<string>()
    const asked = new Set<Worker>()
    for (const [name, source] of this.#sources) {
      if (!live.includes(source.worker)) continue
      waiting.add(name)
      asked.add(source.worker)
    }
    const answered = new Set<string>()
    await new Promise<void>((resolve) => {
      const finish = (): void => {
        clearTimeout(timer)
        this.#scrapes.delete(id)
        resolve()
      }
      const timer = setTimeout(finish, this.#timeout)
      this.#scrapes.set(id, { waiting, answered, finish })
      if (this.#stopped) waiting.clear() // closing: the last answers, at once
      for (const worker of asked) if (!this.#stopped) this.#send(worker, { type: REQUEST, id })
      if (waiting.size === 0) finish()
    })

    const states: Record<WorkerState, number> = { reporting: 0, late: 0, silent: 0 }
    for (const worker of live) {
      const sources = [...this.#sources].filter(([, source]) => source.worker === worker)
      const state = sources.length === 0 ? 'silent' : sources.every(([name]) => answered.has(name)) ? 'reporting' : 'late'
      states[state]++
    }
    for (const [state, count] of Object.entries(states)) this.#workers.set({ state }, count)

    const snapshots = [this.#retired]
    for (const source of this.#sources.values()) if (source.last !== undefined) snapshots.push(source.last)
    snapshots.push(await this.#own.getMetricsAsJSON() as unknown as MetricSnapshot[])
    return aggregate(snapshots)
  }

  #liveWorkers (): Worker[] {
    return Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined && worker.isConnected())
  }

  #send (worker: Worker, message: ToWorker): void {
    worker.send(message, (err: Error | null) => {
      // A worker that exits meanwhile: its 'exit' settles what waits for it.
      if (err instanceof Error) this.#log.debug({ err, worker: worker.id }, 'fastify-fanout: could not ask a worker for its metrics')
    })
  }

  readonly #onMessage = (worker: Worker, raw: unknown): void => {
    const message = toPrimary(raw)
    if (message === undefined) return
    if (message.type === HELLO) {
      if (!this.#sources.has(message.source)) this.#sources.set(message.source, { worker, last: undefined, lastId: 0 })
      return
    }
    const source = this.#sources.get(message.source)
    if (source === undefined) return // an answer sent as it closed, after its goodbye
    if (message.type === GOODBYE) {
      this.#depart(message.source, message.metrics)
      return
    }
    if (message.metrics === undefined) {
      this.#log.warn({ worker: worker.id, error: message.error }, 'fastify-fanout: a worker could not collect its metrics; its last ones count')
      return
    }
    if (message.id > source.lastId) {
      source.last = message.metrics
      source.lastId = message.id
    }
    const scrape = this.#scrapes.get(message.id)
    if (scrape === undefined) return // too late for its scrape; the next one uses it
    scrape.answered.add(message.source)
    scrape.waiting.delete(message.source)
    if (scrape.waiting.size === 0) scrape.finish()
  }

  readonly #onExit = (worker: Worker): void => {
    // Gone without a goodbye (a crash, a kill): what it counted until its last answer stays.
    for (const [name, source] of this.#sources) if (source.worker === worker) this.#depart(name, source.last)
  }

  #depart (name: string, final: MetricSnapshot[] | undefined): void {
    this.#sources.delete(name)
    if (final !== undefined) this.#retired = retire(this.#retired, final)
    for (const scrape of this.#scrapes.values()) {
      if (!scrape.waiting.delete(name)) continue
      if (scrape.waiting.size === 0) scrape.finish()
    }
  }
}

async function clusterMetricsPlugin (fastify: FastifyInstance, options: ClusterMetricsOptions): Promise<void> {
  optionObject('clusterMetrics', options, optionNames, 'must be { path, timeout }')
  const path = routePath('clusterMetrics.path', options.path ?? defaults.path)
  const timeout = integer('clusterMetrics.timeout', options.timeout ?? defaults.timeout, 1, 60_000, 'milliseconds')
  if (!cluster.isPrimary) throw new NotClusterPrimaryError()

  const collector = new ClusterCollector(timeout, fastify.log)
  collector.start()
  // Before the server waits for the requests in flight: a scrape that waits
  // for a worker is answered at once, with the last answers.
  fastify.addHook('preClose', async () => { collector.stop() })
  fastify.get(path, async (_request, reply) => {
    const registry = await collector.collect()
    return await reply.type(registry.contentType).send(await registry.metrics())
  })
}

/**
 * Serves the metrics of a whole machine from the primary process of a
 * `node:cluster`: register it on a Fastify app in the primary, and set
 * `metrics: { cluster: true }` on fastify-fanout in the workers. Each scrape
 * asks every worker and adds their metrics up.
 */
export const clusterMetrics: FastifyPluginAsync<ClusterMetricsOptions> = fp(clusterMetricsPlugin, {
  fastify: '5.x',
  name: 'fastify-fanout-cluster-metrics'
})
