// What a cluster's primary (clusterMetrics) and the fastify-fanout instances
// in its workers (`metrics: { cluster: true }`) say to each other over the
// workers' IPC channel. The channel also carries the app's own messages and
// Node's: every message of ours has a `type` starting with this prefix.
const PREFIX = 'fastify-fanout:metrics:'

/** A metric as prom-client's `registry.getMetricsAsJSON()` gives it (its TypeScript types say less). */
export interface MetricSnapshot {
  name: string
  help: string
  type: 'counter' | 'gauge' | 'histogram' | 'summary'
  aggregator?: string
  values: Array<{ value: number, labels: Record<string, string | number>, metricName?: string }>
}

/** Primary to workers: send your metrics, answering with `id`. */
export interface MetricsRequest { type: typeof REQUEST, id: number }
/** Primary to workers, when it starts: which instances are there? (They answer with a hello.) */
export interface RollCall { type: typeof ROLL_CALL }
/** Worker to primary: instance `source` reports its metrics from now on. */
export interface Hello { type: typeof HELLO, source: string }
/** Worker to primary: instance `source` answers request `id`. */
export interface MetricsResponse { type: typeof RESPONSE, id: number, source: string, metrics?: MetricSnapshot[], error?: string }
/** Worker to primary: instance `source` closed; these are its final counts. */
export interface Goodbye { type: typeof GOODBYE, source: string, metrics: MetricSnapshot[] }

export const REQUEST = `${PREFIX}request`
export const ROLL_CALL = `${PREFIX}roll-call`
export const HELLO = `${PREFIX}hello`
export const RESPONSE = `${PREFIX}response`
export const GOODBYE = `${PREFIX}goodbye`

export type ToWorker = MetricsRequest | RollCall
export type ToPrimary = Hello | MetricsResponse | Goodbye

function typed (message: unknown): message is { type: string } {
  return typeof message === 'object' && message !== null && typeof (message as { type?: unknown }).type === 'string'
}

/** Our message to a worker, or undefined for anything else on the channel. */
export function toWorker (message: unknown): ToWorker | undefined {
  if (!typed(message)) return undefined
  if (message.type === REQUEST && typeof (message as MetricsRequest).id === 'number') return message as MetricsRequest
  if (message.type === ROLL_CALL) return message as RollCall
  return undefined
}

/** Our message to the primary, or undefined for anything else on the channel. */
export function toPrimary (message: unknown): ToPrimary | undefined {
  if (!typed(message) || typeof (message as { source?: unknown }).source !== 'string') return undefined
  const metrics = (message as { metrics?: unknown }).metrics
  switch (message.type) {
    case HELLO: return message as Hello
    case RESPONSE: return typeof (message as MetricsResponse).id === 'number' && (metrics === undefined || Array.isArray(metrics)) ? message as MetricsResponse : undefined
    case GOODBYE: return Array.isArray(metrics) ? message as Goodbye : undefined
    default: return undefined
  }
}
