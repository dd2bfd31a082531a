import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import { GOODBYE, HELLO, REQUEST, RESPONSE, toWorker, type MetricSnapshot, type ToPrimary } from './messages.js'

// How long close() waits for the final counts to be handed to the IPC
// channel: a primary that reads nothing must not hold the worker's close up.
const GOODBYE_TIMEOUT = 1000

/**
 * Answers the cluster primary's metrics requests (see clusterMetrics) with
 * this instance's registry, from ready until close; on close, hands over its
 * final counts so that the machine's counters do not go back when the worker
 * restarts. `source` names this instance among all the cluster's.
 */
export function reportToPrimary (fastify: FastifyInstance, registry: Registry, source: string): void {
  const log = fastify.log
  const send = (message: ToPrimary, sent: () => void = () => {}): void => {
    // With a callback, a closed channel is an error given to it, not an 'error' event on process.
    process.send?.(message, undefined, {}, (err: Error | null) => {
      if (err instanceof Error) log.warn({ err }, 'fastify-fanout: could not send metrics to the cluster primary')
      sent()
    })
  }
  const snapshot = async (): Promise<MetricSnapshot[]> => await registry.getMetricsAsJSON() as unknown as MetricSnapshot[]
  const listener = (raw: unknown): void => {
    const message = toWorker(raw)
    if (message === undefined) return
    if (message.type !== REQUEST) { // a roll call
      send({ type: HELLO, source })
      return
    }
    snapshot().then((metrics) => { send({ type: RESPONSE, id: message.id, source, metrics }) }, (err: unknown) => {
      log.error({ err }, 'fastify-fanout: collecting metrics for the cluster primary failed')
      send({ type: RESPONSE, id: message.id, source, error: err instanceof Error ? err.message : String(err) })
    })
  }

  let reporting = false
  fastify.addHook('onReady', async () => {
    // A 'message' listener keeps the worker's IPC channel referenced: added
    // here, removed on close, so that it holds nothing up once the app closed.
    process.on('message', listener)
    reporting = true
    send({ type: HELLO, source })
  })
  fastify.addHook('onClose', async () => {
    if (!reporting) return
    reporting = false
    process.off('message', listener)
    let metrics: MetricSnapshot[]
    try {
      metrics = await snapshot()
    } catch (err) {
      // The primary keeps the counts of the last scrape instead.
      log.error({ err }, 'fastify-fanout: collecting the final metrics for the cluster primary failed')
      return
    }
    let timer: NodeJS.Timeout | undefined
    await new Promise<void>((resolve) => {
      send({ type: GOODBYE, source, metrics }, resolve)
      timer = setTimeout(resolve, GOODBYE_TIMEOUT)
    })
    clearTimeout(timer)
  })
}
