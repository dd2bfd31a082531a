import type { FastifyBaseLogger, RouteOptions } from 'fastify'
import type { IMetricsPluginOptions } from 'fastify-metrics'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { CloseCode } from './core/close-codes.js'
import { DisconnectCode } from './protocols/centrifuge/codes.js'
import type { ResolvedOptions } from './options.js'
import { documented, metricsOperation } from './http/openapi.js'

/** Why a connection attempt was refused before the upgrade. */
export type RejectReason =
  | 'token_missing' | 'token_invalid' | 'token_expired'
  | 'origin' | 'instance_limit' | 'user_limit' | 'shutting_down'
  // Centrifugo endpoint, after the upgrade: no connect in time, a protocol it does not speak.
  | 'stale' | 'protocol'

/** Why a message was not written to a connection. */
export type DropReason = 'slow_consumer' | 'not_open' | 'unencodable'

// Close codes that keep their own label; anything else a client sends is
// folded into a range label so that clients cannot grow the label set.
const KNOWN_CLOSE_CODES = new Set<number>([
  1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 1015,
  ...Object.values(CloseCode),
  ...Object.values(DisconnectCode).map((advice) => advice.code)
])

/**
 * fastify-fanout's Prometheus metrics, on a registry owned by one Fastify
 * instance. Hot paths add counts once per broadcast, not once per socket.
 */
export class FanoutMetrics {
  readonly registry: Registry
  readonly messagesSent: Counter
  readonly bytesSent: Counter
  readonly broadcasts: Counter
  readonly messagesDropped: Counter<'reason'>
  readonly messagesReceived: Counter
  readonly connectionsAccepted: Counter
  readonly connectionsRejected: Counter<'reason'>
  readonly disconnects: Counter<'code'>
  readonly heartbeatTimeouts: Counter
  readonly broadcastDuration: Histogram
  readonly backplanePublished: Counter
  readonly backplaneReceived: Counter
  readonly backplaneInvalid: Counter
  readonly backplaneLocalOnly: Counter
  readonly backplaneErrors: Counter<'operation'>
  readonly backplaneStateChanges: Counter<'state'>
  readonly backplaneGaps: Counter<'phase'>
  readonly channelPublications: Counter<'history'>
  readonly recoveries: Counter<'outcome'>
  readonly commandErrors: Counter<'code'>
  readonly serverApiCalls: Counter<'method' | 'outcome'>

  constructor (registry: Registry, read: { connections: () => number, backplaneUp: () => boolean, subscriptions: () => number, channels: () => number }) {
    this.registry = registry
    const registers = [registry]
    // The gauge reads the registry at scrape time instead of being moved on
    // every connect and disconnect.
    // eslint-disable-next-line no-new -- registered on creation, read at scrape time
    new Gauge({
      name: 'fanout_connections',
      help: 'Open WebSocket connections on this instance',
      registers,
      collect () { this.set(read.connections()) }
    })
    // eslint-disable-next-line no-new -- registered on creation, read at scrape time
    new Gauge({
      name: 'fanout_backplane_up',
      help: '1 while messages reach every instance (always 1 on the embedded backplane); 0 while Redis is unreachable and publishing fails fast',
      registers,
      // Over a cluster's workers (clusterMetrics): 0 as soon as one of them is cut off.
      aggregator: 'min',
      collect () { this.set(read.backplaneUp() ? 1 : 0) }
    })
    this.messagesSent = new Counter({ name: 'fanout_messages_sent_total', help: 'Messages written to WebSocket connections (one per connection per message)', registers })
    this.bytesSent = new Counter({ name: 'fanout_bytes_sent_total', help: 'Message payload bytes written to connections, before compression', registers })
    this.broadcasts = new Counter({ name: 'fanout_broadcasts_total', help: 'Messages fanned out (each broadcast, user or connection send counts once)', registers })
    this.messagesDropped = new Counter({ name: 'fanout_messages_dropped_total', help: 'Messages not written to a connection, by reason', labelNames: ['reason'], registers })
    this.messagesReceived = new Counter({ name: 'fanout_messages_received_total', help: 'Frames received from clients', registers })
    this.connectionsAccepted = new Counter({ name: 'fanout_connections_accepted_total', help: 'WebSocket connections opened', registers })
    this.connectionsRejected = new Counter({ name: 'fanout_connections_rejected_total', help: 'Connection attempts refused before the upgrade, by reason', labelNames: ['reason'], registers })
    this.disconnects = new Counter({ name: 'fanout_disconnects_total', help: 'Closed connections, by close code', labelNames: ['code'], registers })
    this.heartbeatTimeouts = new Counter({ name: 'fanout_heartbeat_timeouts_total', help: 'Connections terminated for missing heartbeats', registers })
    this.broadcastDuration = new Histogram({
      name: 'fanout_broadcast_duration_seconds',
      help: 'Time to write one message to all its local connections',
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers
    })
    this.backplanePublished = new Counter({ name: 'fanout_backplane_published_total', help: 'Messages published to Redis', registers })
    this.backplaneReceived = new Counter({ name: 'fanout_backplane_received_total', help: 'Messages received from Redis (one per channel they arrived on)', registers })
    this.backplaneInvalid = new Counter({ name: 'fanout_backplane_invalid_total', help: 'Malformed or foreign messages on our Redis channels, dropped', registers })
    this.backplaneLocalOnly = new Counter({ name: 'fanout_backplane_local_only_total', help: 'Messages delivered on this instance only because Redis was unreachable', registers })
    this.backplaneErrors = new Counter({ name: 'fanout_backplane_errors_total', help: 'Redis errors, by operation', labelNames: ['operation'], registers })
    this.backplaneGaps = new Counter({ name: 'fanout_backplane_gaps_total', help: 'Times the Redis subscription was lost, and restored: messages published in between did not reach this instance', labelNames: ['phase'], registers })
    this.backplaneStateChanges = new Counter({ name: 'fanout_backplane_state_changes_total', help: 'Times the Redis backplane went up or down', labelNames: ['state'], registers })
    // eslint-disable-next-line no-new -- registered on creation, read at scrape time
    new Gauge({ name: 'fanout_subscriptions', help: 'Channel subscriptions of this instance\'s connections', registers, collect () { this.set(read.subscriptions()) } })
    // eslint-disable-next-line no-new -- registered on creation, read at scrape time
    new Gauge({ name: 'fanout_channels', help: 'Channels with a subscriber on this instance', registers, collect () { this.set(read.channels()) } })
    this.channelPublications = new Counter({ name: 'fanout_channel_publications_total', help: 'Publications to channels accepted by this instance, by whether the channel keeps history', labelNames: ['history'], registers })
    this.recoveries = new Counter({ name: 'fanout_recoveries_total', help: 'Subscriptions that asked to recover, by outcome (recovered: every missed publication given; not_recovered: none, the client was told)', labelNames: ['outcome'], registers })
    this.commandErrors = new Counter({ name: 'fanout_command_errors_total', help: 'Centrifugo-protocol commands answered with an error, by code', labelNames: ['code'], registers })
    this.serverApiCalls = new Counter({
      name: 'fanout_server_api_calls_total',
      help: 'Calls of the HTTP server API, by method (unknown for a method it does not have) and outcome: ok, the Centrifugo error code answered, or invalid (400) and unauthorized (401/403)',
      labelNames: ['method', 'outcome'],
      registers
    })
  }

  rejected (reason: RejectReason): void {
    this.connectionsRejected.inc({ reason })
  }

  dropped (reason: DropReason, count = 1): void {
    this.messagesDropped.inc({ reason }, count)
  }

  disconnected (code: number): void {
    this.disconnects.inc({ code: closeCodeLabel(code) })
  }
}

function closeCodeLabel (code: number): string {
  if (KNOWN_CLOSE_CODES.has(code)) return String(code)
  if (code >= 3000 && code <= 3999) return '3xxx'
  if (code >= 4000 && code <= 4999) return '4xxx'
  return 'other'
}

/** fastify-metrics options that put everything on the instance's registry. */
export function metricsPluginOptions (metrics: ResolvedOptions['metrics'], log: FastifyBaseLogger): Partial<IMetricsPluginOptions> {
  const { registry, fastifyMetrics: extra } = metrics
  const overrides = extra.routeMetrics?.overrides
  // Everything goes to the instance's own registry, never prom-client's global
  // one, so two Fastify instances in one process do not collide.
  return {
    ...extra,
    // With an internal listener, or in a cluster worker, the app's port serves no metrics at all.
    endpoint: metrics.listen === undefined && !metrics.cluster ? metricsRoute(metrics.endpoint, log) : null,
    defaultMetrics: { enabled: true, ...extra.defaultMetrics, register: registry },
    routeMetrics: {
      enabled: true,
      ...extra.routeMetrics,
      overrides: {
        ...overrides,
        histogram: { ...overrides?.histogram, registers: [registry] },
        summary: { ...overrides?.summary, registers: [registry] }
      }
    }
  }
}

/**
 * The route fastify-metrics adds, as it adds it for a path (`logLevel`,
 * no HEAD route), with its documentation for @fastify/swagger.
 */
function metricsRoute (url: string, log: FastifyBaseLogger): RouteOptions {
  // fastify-metrics sets `method` and `handler` on the object it is given.
  const route: Omit<RouteOptions, 'handler'> = {
    method: 'GET',
    url,
    logLevel: 'fatal',
    exposeHeadRoute: false,
    config: documented(log, metricsOperation)
  }
  return route as RouteOptions
}
