import * as promClient from 'prom-client'
import type { MetricSnapshot } from './messages.js'

type Aggregator = 'sum' | 'first' | 'min' | 'max' | 'average' | 'omit'
type AggregatorFunction = (metrics: MetricSnapshot[]) => MetricSnapshot | undefined

// prom-client's own aggregator functions, the ones its AggregatorRegistry
// applies by a metric's `aggregator`: exported for custom aggregation, but
// absent from its TypeScript declarations.
const { aggregators } = promClient as unknown as { aggregators: Record<Aggregator, AggregatorFunction> }

// Where a metric's own `aggregator` does not give the machine's view. prom-client
// averages its event-loop delay gauges over workers, which hides the one
// worker whose loop is stuck: the machine's delay is its worst worker's.
// Matched by ending, so that a prefix (fastify-metrics' defaultMetrics.prefix) keeps them.
const WORST_WORKER = [
  'nodejs_eventloop_lag_seconds',
  'nodejs_eventloop_lag_mean_seconds',
  'nodejs_eventloop_lag_p50_seconds',
  'nodejs_eventloop_lag_p90_seconds',
  'nodejs_eventloop_lag_p99_seconds'
]

function aggregatorOf (metric: MetricSnapshot): Aggregator {
  if (WORST_WORKER.some((name) => metric.name.endsWith(name))) return 'max'
  const declared = metric.aggregator ?? 'sum'
  if (!Object.hasOwn(aggregators, declared)) throw new Error(`metric ${metric.name}: unknown aggregator '${declared}'`)
  return declared as Aggregator
}

/** One metric over every worker's snapshot of it, or undefined (the `omit` aggregator). */
function combine (metrics: MetricSnapshot[]): MetricSnapshot | undefined {
  const first = metrics[0] as MetricSnapshot
  const aggregator = aggregatorOf(first)
  if (first.type !== 'summary' || aggregator !== 'sum') return aggregators[aggregator](metrics)
  // A summary's quantiles cannot be added: the machine's is its worst
  // worker's (an upper bound). Its _sum and _count add up.
  const quantiles = (metric: MetricSnapshot, keep: boolean): MetricSnapshot =>
    ({ ...metric, values: metric.values.filter((value) => (value.labels.quantile !== undefined && value.metricName === undefined) === keep) })
  const worst = aggregators.max(metrics.map((metric) => quantiles(metric, true))) as MetricSnapshot
  const added = aggregators.sum(metrics.map((metric) => quantiles(metric, false))) as MetricSnapshot
  return { ...added, values: [...worst.values, ...added.values] }
}

function byName (snapshots: Iterable<MetricSnapshot[]>): Map<string, MetricSnapshot[]> {
  const grouped = new Map<string, MetricSnapshot[]>()
  for (const snapshot of snapshots) {
    for (const metric of snapshot) {
      const group = grouped.get(metric.name)
      if (group === undefined) grouped.set(metric.name, [metric])
      else group.push(metric)
    }
  }
  return grouped
}

/**
 * The machine's metrics from its workers' snapshots: each metric combined
 * the way it declares (prom-client's `aggregator`: sum unless it says
 * otherwise), in a registry that renders them as Prometheus text.
 */
export function aggregate (snapshots: Iterable<MetricSnapshot[]>): promClient.Registry {
  const registry = new promClient.Registry()
  for (const metrics of byName(snapshots).values()) {
    const combined = combine(metrics)
    if (combined === undefined) continue
    // A fixed metric: the registry renders what `get()` returns.
    registry.registerMetric({ ...combined, get: () => combined } as unknown as promClient.Metric)
  }
  return registry
}

/**
 * What stays of a departed worker's snapshot in the machine's totals: what
 * only grows (counters, and a histogram's or summary's buckets, sum and
 * count), when added over workers. Its gauges and quantiles leave with it.
 */
export function monotonicPart (snapshot: MetricSnapshot[]): MetricSnapshot[] {
  const kept: MetricSnapshot[] = []
  for (const metric of snapshot) {
    if (metric.type === 'gauge' || aggregatorOf(metric) !== 'sum') continue
    const values = metric.type === 'summary' ? metric.values.filter((value) => value.metricName !== undefined) : metric.values
    if (values.length > 0) kept.push({ ...metric, values })
  }
  return kept
}

/** Departed workers' totals and one more departed worker's, in one snapshot (so that they do not pile up over restarts). */
export function retire (retired: MetricSnapshot[], departed: MetricSnapshot[]): MetricSnapshot[] {
  const merged: MetricSnapshot[] = []
  for (const metrics of byName([retired, monotonicPart(departed)]).values()) {
    merged.push(aggregators.sum(metrics) as MetricSnapshot)
  }
  return merged
}
