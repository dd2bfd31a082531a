import type { FastifyJWTOptions } from '@fastify/jwt'
import type { Cluster, Redis, RedisOptions } from 'ioredis'
import type { Registry } from 'prom-client'
import type { IMetricsPluginOptions } from 'fastify-metrics'
import type { ChannelsOptions } from './channels/namespaces.js'
import type { ClientInfo, HistoryPage, PresenceStats, StreamPosition } from './channels/types.js'

/** What happens to a connection whose unsent bytes exceed `maxBufferedBytes`. */
export type SlowConsumerPolicy = 'close' | 'drop'

/**
 * What happens to this instance's connections when its Redis subscription was
 * lost (messages published meanwhile did not reach them): `'close'` closes
 * them with 4011 so that clients reconnect and refetch; `'keep'` leaves them
 * open (the gap is still logged and counted).
 */
export type BackplaneGapPolicy = 'close' | 'keep'

/**
 * How much one connection may send, per second. Past either figure the
 * connection is closed with 4009 and its socket is no longer read.
 */
export interface InboundBudget {
  /**
   * Frames (messages, pings and pongs) per second.
   * @defaultValue 50
   */
  messages?: number
  /**
   * Bytes of message payload per second.
   * @defaultValue 65536
   */
  bytes?: number
}

/** permessage-deflate settings. */
export interface CompressionOptions {
  /**
   * Messages smaller than this many bytes are sent uncompressed: deflate costs
   * more CPU than it saves bandwidth on small frames.
   * @defaultValue 1024
   */
  threshold?: number
  /**
   * zlib level, 1 (fastest) to 9 (smallest).
   * @defaultValue 1
   */
  level?: number
}

/** An internal address for metrics. */
export interface MetricsListenOptions {
  /** TCP port, 1-65535. */
  port: number
  /**
   * Address to listen on.
   * @defaultValue '127.0.0.1'
   */
  host?: string
}

/** Metrics settings. Metrics are always collected; these choose how they are served. */
export interface MetricsOptions {
  /**
   * The prom-client registry to collect into. Each Fastify instance gets its
   * own by default, so two instances in one process never collide.
   */
  registry?: Registry
  /**
   * Register fastify-metrics to serve `/metrics` (with its HTTP metrics).
   * Set to `false` when the app serves the registry itself.
   * @defaultValue true
   */
  serve?: boolean
  /**
   * The route that serves metrics.
   * @defaultValue '/metrics'
   */
  endpoint?: string
  /**
   * Serve metrics on this internal address instead of the app's port, from a
   * small HTTP server of their own (at `endpoint`), started when the app is
   * ready and closed with it. fastify-metrics still measures the app's
   * routes, but adds no route to the app. Keep the address off the public
   * network (the default host is loopback).
   * @defaultValue undefined: on the app's port
   */
  listen?: MetricsListenOptions
  /**
   * In a `node:cluster` worker: report metrics to the primary, which serves
   * the whole machine's with the `clusterMetrics` plugin, instead of serving
   * them from this worker. fastify-metrics still measures the app's routes,
   * but adds no route to the app. Only in a cluster worker, and not with `listen`.
   * @defaultValue false
   */
  cluster?: boolean
  /** Further fastify-metrics options (default and route metrics). */
  fastifyMetrics?: Partial<Omit<IMetricsPluginOptions, 'endpoint'>>
}

/** Options of the `clusterMetrics` plugin, in a cluster's primary process. */
export interface ClusterMetricsOptions {
  /**
   * The route that serves the machine's metrics.
   * @defaultValue '/metrics'
   */
  path?: string
  /**
   * Milliseconds a scrape waits for the workers' answers. A worker that has
   * not answered by then (a blocked event loop) counts with its last answer,
   * and in `fanout_cluster_workers{state="late"}`. Keep it well under
   * Prometheus' `scrape_timeout`.
   * @defaultValue 1000
   */
  timeout?: number
}

/** The endpoint for Centrifugo's client SDKs (centrifuge-js and the other JSON SDKs). */
export interface CentrifugeOptions {
  /**
   * Path of the endpoint.
   * @defaultValue '/connection/websocket'
   */
  path?: string
  /**
   * Milliseconds a client has after the upgrade to send `connect`; past it the
   * connection is closed with 3502 (stale).
   * @defaultValue 10000
   */
  connectTimeout?: number
  /**
   * Milliseconds after a token's `exp` (and the clock tolerance) during which
   * the client may still refresh it; past it the connection is closed with
   * 3005 and the SDK reconnects with a new token.
   * @defaultValue 25000
   */
  refreshGrace?: number
  /**
   * Largest frame a client of this endpoint may send, in bytes (a batch of
   * commands, a publication); larger ones close the connection with 1009.
   * `maxPayload` stays the limit of `/ws`.
   * @defaultValue 65536
   */
  maxPayload?: number
  /**
   * Milliseconds an application hook (a namespace's `subscribe` or `publish`
   * function, `onRpc`, `onSend`) may take before the command is answered
   * with error 100 (temporary): a connection's commands run in order, so a
   * hook that never settles would hold all its later ones.
   * @defaultValue 4000
   */
  hookTimeout?: number
  /**
   * Answers the SDK's `rpc(method, data)`; without it an RPC gets error 104.
   * An error it throws with a numeric `code` of 400-1999 (the range
   * Centrifugo leaves to applications) reaches the client as that error,
   * with its `message` and `temporary`; any other throw is error 100.
   */
  onRpc?: (connection: FanoutConnection, method: string, data: unknown) => unknown
  /** Receives the SDK's `send(data)` (no answer goes back). */
  onSend?: (connection: FanoutConnection, data: unknown) => void | Promise<void>
}

/**
 * Centrifugo's HTTP server API (`POST <prefix>/publish`, `/broadcast`,
 * `/history`...), for services that publish with Centrifugo's API libraries
 * (cent.js, cent, gocent). Callers authenticate with the API key, or with a
 * JWT holding `broadcastScope` (as `POST /broadcast` checks it).
 */
export interface ServerApiOptions {
  /**
   * The API key callers send in `X-API-Key` (or `Authorization: apikey
   * <key>`). Without it only a Bearer JWT with `broadcastScope` is accepted.
   * @defaultValue undefined: no key
   */
  key?: string
  /**
   * Path prefix of the methods: `<prefix>/publish` and so on.
   * @defaultValue '/api'
   */
  prefix?: string
}

/** Options of `fastify.register(fanout, options)`. */
export interface FanoutOptions {
  /**
   * @fastify/jwt options used to verify tokens (at least `secret`; any
   * `verify` option such as `algorithms`, `allowedIss` or `allowedAud`).
   * fastify-fanout registers its own @fastify/jwt with them, in its own
   * encapsulated context, so it never clashes with the app's.
   */
  jwt: FastifyJWTOptions
  /**
   * Path of the WebSocket endpoint.
   * @defaultValue '/ws'
   */
  path?: string
  /**
   * Path of the broadcast route, or `false` to not add it.
   * @defaultValue '/broadcast'
   */
  broadcastPath?: string | false
  /**
   * Token claim that holds the user id.
   * @defaultValue 'sub'
   */
  userClaim?: string
  /**
   * Token claim that lists scopes (space-separated string, as in OAuth 2, or an array).
   * @defaultValue 'scope'
   */
  scopeClaim?: string
  /**
   * Scope a token needs to call the broadcast route.
   * @defaultValue 'broadcast'
   */
  broadcastScope?: string
  /**
   * Browser origins allowed to connect: exact origins (`https://app.example.com`),
   * wildcards (`https://*.example.com`) or `'*'` for any. Requests without an
   * Origin header (non-browser clients) are always accepted.
   * @defaultValue same-origin only
   */
  allowedOrigins?: string[]
  /**
   * Most connections this instance accepts; beyond it upgrades get 503.
   * @defaultValue Infinity
   */
  maxConnections?: number
  /**
   * Most connections one user may hold on this instance; beyond it upgrades get 429.
   * @defaultValue 100
   */
  maxConnectionsPerUser?: number
  /**
   * Largest message a client may send, in bytes; larger ones close the connection with 1009.
   * @defaultValue 4096
   */
  maxPayload?: number
  /**
   * Frames and bytes one connection may send per second, or `false` for no
   * limit. Past it the connection is closed with 4009.
   * @defaultValue { messages: 50, bytes: 65536 }
   */
  inbound?: false | InboundBudget
  /**
   * Milliseconds a client may take to finish a message it started (all its
   * fragments); past it the connection is closed with 1008, so that nobody
   * pins a half-received message forever.
   * @defaultValue 10000
   */
  messageTimeout?: number
  /**
   * Largest broadcast request body, in bytes; larger ones get 413.
   * @defaultValue 1048576
   */
  bodyLimit?: number
  /**
   * Most bytes that may wait unsent for one connection before it counts as a slow consumer.
   * @defaultValue 1048576
   */
  maxBufferedBytes?: number
  /**
   * `'close'` closes a slow consumer with code 4008; `'drop'` keeps it and drops
   * the messages that do not fit.
   * @defaultValue 'close'
   */
  slowConsumer?: SlowConsumerPolicy
  /**
   * Milliseconds between pings; a connection silent for two intervals is
   * terminated. `0` turns heartbeats off.
   * @defaultValue 30000
   */
  heartbeatInterval?: number
  /**
   * permessage-deflate: `false` (off), `true` (defaults) or settings.
   * @defaultValue false
   */
  compression?: boolean | CompressionOptions
  /**
   * Milliseconds `fastify.close()` waits for clients to finish the closing
   * handshake before it terminates the rest.
   * @defaultValue 5000
   */
  closeTimeout?: number
  /**
   * Metrics settings, or `false` to not serve `/metrics` (metrics are still
   * collected in `fastify.fanout.metricsRegistry`).
   * @defaultValue true
   */
  metrics?: boolean | MetricsOptions
  /**
   * Joins instances through Redis: a URL (`redis://host:6379/0`), ioredis
   * options, or an ioredis client (`Redis` or `Cluster`, which the plugin
   * uses but never closes). Without it the plugin runs on its embedded
   * in-process backplane.
   */
  redis?: string | RedisOptions | Redis | Cluster
  /**
   * Prefix of every Redis channel, so that several apps can share a Redis.
   * @defaultValue 'fanout:'
   */
  channelPrefix?: string
  /**
   * What to do with this instance's connections when its Redis subscription
   * was lost for a while.
   * @defaultValue 'close'
   */
  backplaneGap?: BackplaneGapPolicy
  /**
   * Path of the readiness route for load balancers (200 while this instance
   * accepts connections and reaches the other instances, 503 otherwise), or
   * `false` to not add it.
   * @defaultValue '/fanout/ready'
   */
  readinessPath?: string | false
  /**
   * Answer with `Connection: close` when a response goes out while its request
   * body is still unread and the response is an error (a 401 from `onRequest`,
   * a 404) or nobody reads the body, so that Node does not read and discard a
   * refused body for as long as the client sends it. Added as an `onSend` hook
   * on the instance fastify-fanout is registered on: at the root it covers every
   * route and 404s. `false` leaves Node's behaviour (keep the connection, read
   * the rest of the body).
   * @defaultValue true
   */
  closeOnUnreadBody?: boolean
  /**
   * Serve Centrifugo's client protocol (JSON) for its SDKs: `true` for the
   * defaults, or settings.
   * @defaultValue false
   */
  centrifuge?: boolean | CentrifugeOptions
  /** Channel namespaces and limits (for the Centrifugo endpoint and `publish`). */
  channels?: ChannelsOptions
  /**
   * Serve Centrifugo's HTTP server API: `true` (Bearer JWTs with
   * `broadcastScope` only) or settings, such as `{ key: process.env.API_KEY }`.
   * @defaultValue false
   */
  serverApi?: boolean | ServerApiOptions
}

/** Who a broadcast goes to. */
export interface BroadcastTarget {
  /** Only these users' connections (default: everyone). */
  users?: readonly string[]
  /** Skip these users' connections. */
  except?: readonly string[]
}

/** What a send or broadcast did. */
export interface DeliveryResult {
  /** Message id, as clients see it in the `id` member. */
  id: string
  /**
   * Connections of this instance the message was written to. Present when
   * this instance delivered within the call: on the embedded backplane, or
   * when Redis was unreachable. With Redis up, every instance delivers from
   * its subscription and counts it in its metrics.
   */
  delivered?: number
  /** Connections of this instance that could not take it (slow consumers); present with `delivered`. */
  dropped?: number
  /** Instances the message reached: 1 on the embedded backplane; with Redis, the subscribers Redis handed it to. */
  instances: number
  /** True when Redis was unreachable: only this instance's connections got the message. */
  partial?: boolean
}

/** What a channel publication did: with history, its position in the channel's stream. */
export interface ChannelDeliveryResult extends DeliveryResult {
  /** The publication's offset (channels with history). */
  offset?: number
  /** The stream's epoch (channels with history). */
  epoch?: string
}

/** What `subscribe`/`unsubscribe` did. */
export interface SubscriptionResult {
  /** Control message id. */
  id: string
  /** Connections of this instance it was applied to, when this instance applied it within the call. */
  subscribed?: number
  /** Instances the request reached (with Redis: those holding a connection of the user). */
  instances: number
  /** True when Redis was unreachable: only this instance's connections were reached. */
  partial?: boolean
}

/** What `disconnectUser` did. */
export interface DisconnectResult {
  /** Control message id. */
  id: string
  /**
   * Connections closed on this instance. Present when this instance closed
   * them within the call (embedded backplane, or Redis unreachable); with
   * Redis up every instance closes its own from its subscription.
   */
  disconnected?: number
  /** Instances the request reached (with Redis: those holding a connection of the user). */
  instances: number
  /** True when Redis was unreachable: only this instance's connections were closed. */
  partial?: boolean
}

/** The frame clients receive for every message (one JSON text frame). */
export interface MessageFrame<T = unknown> {
  type: 'message'
  id: string
  data: T
}

/** Claims of a verified token, as @fastify/jwt decoded them. */
export type TokenClaims = Record<string, unknown>

/** One live WebSocket connection, as the registry exposes it. */
export interface FanoutConnection {
  readonly id: string
  readonly userId: string
  /** The verified token's claims, kept for authorization decisions. */
  readonly claims: TokenClaims
  /** `Date.now()` when the connection opened. */
  readonly connectedAt: number
  /** Bytes written to this connection that the client has not yet taken. */
  readonly bufferedAmount: number
  /** Send `data` to this connection only. Returns whether it was written. */
  send: (data: unknown) => boolean
  /** Close with a code (1000 or 3000-4999) and a reason. */
  close: (code?: number, reason?: string) => void
}

/** The `fastify.fanout` decorator. */
export interface FanoutDecorator {
  /** Number of open connections on this instance. */
  readonly size: number
  /** Number of distinct users connected to this instance. */
  readonly userCount: number
  /** The connection with this id, if it is on this instance. */
  connection: (id: string) => FanoutConnection | undefined
  /** This user's connections on this instance (empty when none). */
  connectionsOf: (userId: string) => ReadonlySet<FanoutConnection>
  /** Every open connection on this instance. */
  connections: () => IterableIterator<FanoutConnection>
  /** Send to everyone, or to `target.users`, skipping `target.except`. */
  broadcast: (data: unknown, target?: BroadcastTarget) => Promise<DeliveryResult>
  /** Send to every connection of one user. */
  sendToUser: (userId: string, data: unknown) => Promise<DeliveryResult>
  /** Send to one connection by id. */
  sendTo: (connectionId: string, data: unknown) => Promise<DeliveryResult>
  /**
   * Close every connection of a user (e.g. on logout or ban), on every
   * instance: with Redis the request travels as a control message on the
   * user's channel. Rejects with FST_FANOUT_INVALID_CLOSE_CODE or
   * FST_FANOUT_INVALID_CLOSE_REASON for a code outside 1000/3000-4999 or a
   * reason over 123 bytes. Without a code each endpoint closes with its own:
   * 4000 on `/ws`, 3503 (final) for Centrifugo's SDKs.
   * @defaultValue reason 'disconnected by server'
   */
  disconnectUser: (userId: string, code?: number, reason?: string) => Promise<DisconnectResult>
  /**
   * Subscribes every Centrifugo-protocol connection of a user, on every
   * instance, to a channel on the server's side (the SDK reports a
   * client-level `subscribed`); `/ws` connections are not affected.
   */
  subscribe: (userId: string, channel: string) => Promise<SubscriptionResult>
  /** Ends a user's subscriptions to a channel (client-side or server-side) on every instance. */
  unsubscribe: (userId: string, channel: string) => Promise<SubscriptionResult>
  /**
   * Publishes to a channel's subscribers on every instance. In a namespace
   * with history the publication gets an offset and the stream's epoch
   * (returned), and is kept for history and recovery. `data` is any JSON
   * value, or bytes (a Uint8Array, Buffer included): bytes holding JSON
   * text go to every client as they are; other bytes reach Protobuf
   * clients untouched and no JSON client (counted as dropped,
   * `unencodable`). Rejects with FST_FANOUT_INVALID_ARGUMENT for a channel
   * in no configured namespace, FST_FANOUT_INVALID_MESSAGE for data without
   * a JSON form or empty bytes.
   */
  publish: (channel: string, data: unknown) => Promise<ChannelDeliveryResult>
  /**
   * A channel's history (any instance's publications): `limit` 0 (default)
   * returns only the stream position, -1 as many as `historyMaxLimit`;
   * `since` only what came after a position; `reverse` newest first.
   */
  history: (channel: string, query?: { limit?: number, since?: StreamPosition, reverse?: boolean }) => Promise<HistoryPage>
  /** Drops a channel's publications; its position (epoch and offset) stays. */
  removeHistory: (channel: string) => Promise<void>
  /** Who is subscribed to a channel, across instances, by client id. */
  presence: (channel: string) => Promise<Record<string, ClientInfo>>
  /** Numbers of clients and distinct users subscribed to a channel. */
  presenceStats: (channel: string) => Promise<PresenceStats>
  /** The prom-client registry holding fastify-fanout's metrics. */
  readonly metricsRegistry: Registry
  /**
   * Whether messages reach the other instances right now (always true on the
   * embedded backplane). Read from the connection state: no Redis round trip.
   */
  readonly backplaneUp: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    fanout: FanoutDecorator
  }
}

export type { AuthorizePublish, AuthorizeSubscribe, ChannelsOptions, NamespaceOptions, SubscribeRule } from './channels/namespaces.js'
export type { ClientInfo, HistoryQuery, HistoryPage, Publication, PresenceStats, StreamPosition } from './channels/types.js'
