import cluster from 'node:cluster'
import { Registry } from 'prom-client'
import type { FastifyJWTOptions } from '@fastify/jwt'
import type { Cluster, Redis, RedisOptions } from 'ioredis'
import type { IMetricsPluginOptions } from 'fastify-metrics'
import { InvalidOptionError } from './errors.js'
import { boolean, integer, knownNames, nonEmptyString, optionObject, routePath } from './option-checks.js'
import { parseOriginPolicy, type OriginPolicy } from './origin.js'
import type { RedisSetting } from './backplane/redis.js'
import { SERVER_API_METHODS } from './http/server-api/methods.js'
import { resolveChannels, type ResolvedChannels } from './channels/namespaces.js'
import type { BackplaneGapPolicy, CentrifugeOptions, CompressionOptions, FanoutOptions, InboundBudget, MetricsListenOptions, MetricsOptions, ServerApiOptions, SlowConsumerPolicy } from './types.js'

/** Options after defaults and validation: every field present, frozen. */
export interface ResolvedOptions {
  /** The app's @fastify/jwt options, `verify.clockTolerance` set. */
  readonly jwt: FastifyJWTOptions
  /** Milliseconds by which `exp` and `nbf` may be off (the clocks of issuer and server differ). */
  readonly clockTolerance: number
  readonly path: string
  readonly broadcastPath: string | false
  readonly userClaim: string
  readonly scopeClaim: string
  readonly broadcastScope: string
  readonly origins: OriginPolicy
  readonly maxConnections: number
  readonly maxConnectionsPerUser: number
  readonly maxPayload: number
  readonly bodyLimit: number
  readonly maxBufferedBytes: number
  readonly slowConsumer: SlowConsumerPolicy
  /** Frames and bytes a connection may send per second; false: unlimited. */
  readonly inbound: false | { readonly messages: number, readonly bytes: number }
  readonly messageTimeout: number
  readonly heartbeatInterval: number
  readonly compression: false | { readonly threshold: number, readonly level: number }
  readonly closeTimeout: number
  readonly metrics: {
    readonly registry: Registry
    readonly serve: boolean
    readonly endpoint: string
    /** Absent: served on the app's own port (when `serve`), or by the cluster's primary (`cluster`). */
    readonly listen: { readonly host: string, readonly port: number } | undefined
    /** Reported to the cluster's primary (clusterMetrics), not served by this instance. */
    readonly cluster: boolean
    readonly fastifyMetrics: Partial<Omit<IMetricsPluginOptions, 'endpoint'>>
  }
  /** Absent: the embedded backplane. */
  readonly redis: RedisSetting | undefined
  readonly channelPrefix: string
  readonly backplaneGap: BackplaneGapPolicy
  readonly readinessPath: string | false
  readonly closeOnUnreadBody: boolean
  readonly centrifuge: false | {
    readonly path: string
    readonly connectTimeout: number
    readonly refreshGrace: number
    readonly maxPayload: number
    readonly hookTimeout: number
    readonly onRpc: CentrifugeOptions['onRpc']
    readonly onSend: CentrifugeOptions['onSend']
  }
  readonly channels: ResolvedChannels
  /** Centrifugo's HTTP server API; false: not served. */
  readonly serverApi: false | {
    /** Absent: only Bearer JWTs with the broadcast scope are accepted. */
    readonly key: string | undefined
    readonly prefix: string
  }
}

export const defaults = {
  path: '/ws',
  broadcastPath: '/broadcast',
  userClaim: 'sub',
  scopeClaim: 'scope',
  broadcastScope: 'broadcast',
  maxConnections: Infinity,
  // Finite so that one stolen or scripted token cannot take the instance's
  // files; generous for a user with many tabs and devices.
  maxConnectionsPerUser: 100,
  // /ws clients send nothing but control frames: a small frame limit bounds
  // what an unfinished message can pin.
  maxPayload: 4 * 1024,
  bodyLimit: 1024 * 1024,
  maxBufferedBytes: 1024 * 1024,
  slowConsumer: 'close',
  inboundMessages: 50,
  inboundBytes: 64 * 1024,
  messageTimeout: 10_000,
  heartbeatInterval: 30_000,
  compressionThreshold: 1024,
  compressionLevel: 1,
  closeTimeout: 5000,
  metricsEndpoint: '/metrics',
  metricsHost: '127.0.0.1',
  channelPrefix: 'fanout:',
  backplaneGap: 'close',
  readinessPath: '/fanout/ready',
  closeOnUnreadBody: true,
  clockTolerance: 2000,
  centrifugePath: '/connection/websocket',
  connectTimeout: 10_000,
  refreshGrace: 25_000,
  // Commands carry publications and tokens: Centrifugo's own default limit.
  centrifugeMaxPayload: 64 * 1024,
  // Below the SDK's 5 s reply timeout, so that the client gets our answer.
  hookTimeout: 4000,
  serverApiPrefix: '/api'
} as const

// Every top-level option, in one place: any other name is refused at register
// time (a typo such as `maxConnection` would otherwise be silently ignored).
// Typed against FanoutOptions, so an option added there fails to compile
// until it is listed here too.
const optionNames: Record<keyof FanoutOptions, true> = {
  jwt: true,
  path: true,
  broadcastPath: true,
  userClaim: true,
  scopeClaim: true,
  broadcastScope: true,
  allowedOrigins: true,
  maxConnections: true,
  maxConnectionsPerUser: true,
  maxPayload: true,
  bodyLimit: true,
  maxBufferedBytes: true,
  slowConsumer: true,
  inbound: true,
  messageTimeout: true,
  heartbeatInterval: true,
  compression: true,
  closeTimeout: true,
  metrics: true,
  redis: true,
  channelPrefix: true,
  backplaneGap: true,
  readinessPath: true,
  closeOnUnreadBody: true,
  centrifuge: true,
  channels: true,
  serverApi: true
}
export const OPTION_NAMES: readonly string[] = Object.freeze(Object.keys(optionNames))

// The same for the options that are objects of their own.
const compressionNames: Record<keyof CompressionOptions, true> = { threshold: true, level: true }
const inboundNames: Record<keyof InboundBudget, true> = { messages: true, bytes: true }
const metricsNames: Record<keyof MetricsOptions, true> = { registry: true, serve: true, endpoint: true, listen: true, cluster: true, fastifyMetrics: true }
const listenNames: Record<keyof MetricsListenOptions, true> = { port: true, host: true }
const centrifugeNames: Record<keyof CentrifugeOptions, true> = { path: true, connectTimeout: true, refreshGrace: true, maxPayload: true, hookTimeout: true, onRpc: true, onSend: true }
const serverApiNames: Record<keyof ServerApiOptions, true> = { key: true, prefix: true }

export function resolveOptions (options: FanoutOptions): ResolvedOptions {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError('options', 'must be an object with at least `jwt: { secret }`')
  }
  knownNames('', options, OPTION_NAMES)
  const jwt = options.jwt
  if (jwt === null || typeof jwt !== 'object' || jwt.secret === undefined || jwt.secret === null || jwt.secret === '') {
    throw new InvalidOptionError('jwt', 'must be @fastify/jwt options with a `secret` (e.g. `jwt: { secret: process.env.JWT_SECRET }`)')
  }
  if (jwt.verify !== undefined && (jwt.verify === null || typeof jwt.verify !== 'object')) {
    throw new InvalidOptionError('jwt.verify', 'must be an object of fast-jwt verifier options (e.g. `{ algorithms: [\'HS256\'] }`)')
  }
  // A small default tolerance: a token issued by a server whose clock runs a
  // second ahead is not "not yet valid" here.
  const clockTolerance = integer('jwt.verify.clockTolerance', jwt.verify?.clockTolerance ?? defaults.clockTolerance, 0, 2 ** 31 - 1, 'milliseconds')

  const path = routePath('path', options.path ?? defaults.path)
  const broadcastPath = options.broadcastPath === false
    ? false
    : routePath('broadcastPath', options.broadcastPath ?? defaults.broadcastPath)
  if (broadcastPath === path) {
    throw new InvalidOptionError('broadcastPath', `must differ from \`path\` (both are ${path})`)
  }

  const slowConsumer = options.slowConsumer ?? defaults.slowConsumer
  if (slowConsumer !== 'close' && slowConsumer !== 'drop') {
    throw new InvalidOptionError('slowConsumer', `must be 'close' or 'drop', got ${JSON.stringify(slowConsumer)}`)
  }

  const backplaneGap = options.backplaneGap ?? defaults.backplaneGap
  if (backplaneGap !== 'close' && backplaneGap !== 'keep') {
    throw new InvalidOptionError('backplaneGap', `must be 'close' or 'keep', got ${JSON.stringify(backplaneGap)}`)
  }

  const centrifugeSettings = centrifuge(options.centrifuge)
  if (centrifugeSettings !== false && (centrifugeSettings.path === path || centrifugeSettings.path === broadcastPath)) {
    throw new InvalidOptionError('centrifuge.path', `must differ from \`path\` and \`broadcastPath\` (it is ${centrifugeSettings.path})`)
  }

  const serverApiSettings = serverApi(options.serverApi)
  if (serverApiSettings !== false) {
    for (const [name, taken] of [['path', path], ['broadcastPath', broadcastPath], ['centrifuge.path', centrifugeSettings === false ? false : centrifugeSettings.path]] as const) {
      const method = taken === false ? undefined : SERVER_API_METHODS.find((method) => taken === `${serverApiSettings.prefix}/${method}`)
      if (method !== undefined) {
        throw new InvalidOptionError('serverApi.prefix', `puts the API's \`${method}\` method on \`${name}\` (${taken as string}): choose another prefix or path`)
      }
    }
  }

  const heartbeatInterval = options.heartbeatInterval ?? defaults.heartbeatInterval
  if (heartbeatInterval !== 0) integer('heartbeatInterval', heartbeatInterval, 10, 2 ** 31 - 1, 'milliseconds (or 0 to turn heartbeats off)')

  return Object.freeze({
    jwt: { ...jwt, verify: { ...jwt.verify, clockTolerance } },
    clockTolerance,
    path,
    broadcastPath,
    userClaim: nonEmptyString('userClaim', options.userClaim ?? defaults.userClaim),
    scopeClaim: nonEmptyString('scopeClaim', options.scopeClaim ?? defaults.scopeClaim),
    broadcastScope: scopeName(options.broadcastScope ?? defaults.broadcastScope),
    origins: originPolicy(options.allowedOrigins),
    maxConnections: limit('maxConnections', options.maxConnections ?? defaults.maxConnections),
    maxConnectionsPerUser: limit('maxConnectionsPerUser', options.maxConnectionsPerUser ?? defaults.maxConnectionsPerUser),
    maxPayload: integer('maxPayload', options.maxPayload ?? defaults.maxPayload, 1, 2 ** 31 - 1, 'bytes'),
    bodyLimit: integer('bodyLimit', options.bodyLimit ?? defaults.bodyLimit, 1, 2 ** 31 - 1, 'bytes'),
    maxBufferedBytes: integer('maxBufferedBytes', options.maxBufferedBytes ?? defaults.maxBufferedBytes, 1, 2 ** 31 - 1, 'bytes'),
    slowConsumer,
    inbound: inbound(options.inbound),
    messageTimeout: integer('messageTimeout', options.messageTimeout ?? defaults.messageTimeout, 100, 2 ** 31 - 1, 'milliseconds'),
    heartbeatInterval,
    compression: compression(options.compression),
    closeTimeout: integer('closeTimeout', options.closeTimeout ?? defaults.closeTimeout, 0, 2 ** 31 - 1, 'milliseconds'),
    metrics: metrics(options.metrics),
    redis: redis(options.redis),
    channelPrefix: nonEmptyString('channelPrefix', options.channelPrefix ?? defaults.channelPrefix),
    backplaneGap,
    readinessPath: options.readinessPath === false
      ? false
      : routePath('readinessPath', options.readinessPath ?? defaults.readinessPath),
    closeOnUnreadBody: boolean('closeOnUnreadBody', options.closeOnUnreadBody ?? defaults.closeOnUnreadBody),
    centrifuge: centrifugeSettings,
    channels: resolveChannels(options.channels),
    serverApi: serverApiSettings
  })
}

// Visible ASCII: a key travels in a header, and `Authorization: apikey <key>` splits on spaces.
const API_KEY = /^[\x21-\x7e]+$/

function serverApi (value: FanoutOptions['serverApi']): ResolvedOptions['serverApi'] {
  if (value === undefined || value === false) return false
  if (value === true) value = {}
  optionObject('serverApi', value, serverApiNames, 'must be false, true or { key, prefix } (e.g. `serverApi: { key: process.env.API_KEY }`)')
  const key = value.key
  if (key !== undefined && (typeof key !== 'string' || !API_KEY.test(key))) {
    const got = typeof key === 'string' ? (key === '' ? 'an empty string' : 'a string with spaces or characters outside visible ASCII') : JSON.stringify(key) ?? typeof key
    throw new InvalidOptionError('serverApi.key', `must be a non-empty string of visible ASCII characters (no spaces), got ${got}; leave it out to accept only Bearer JWTs with the broadcast scope`)
  }
  const prefix = routePath('serverApi.prefix', value.prefix ?? defaults.serverApiPrefix)
  if (prefix.length > 1 && prefix.endsWith('/')) throw new InvalidOptionError('serverApi.prefix', `must not end with '/', got ${JSON.stringify(prefix)}`)
  return Object.freeze({ key, prefix: prefix === '/' ? '' : prefix })
}

function centrifuge (value: FanoutOptions['centrifuge']): ResolvedOptions['centrifuge'] {
  if (value === undefined || value === false) return false
  if (value === true) value = {}
  optionObject('centrifuge', value, centrifugeNames, 'must be false, true or { path, connectTimeout, refreshGrace, maxPayload, hookTimeout, onRpc, onSend }')
  for (const hook of ['onRpc', 'onSend'] as const) {
    if (value[hook] !== undefined && typeof value[hook] !== 'function') throw new InvalidOptionError(`centrifuge.${hook}`, 'must be a function')
  }
  return Object.freeze({
    path: routePath('centrifuge.path', value.path ?? defaults.centrifugePath),
    connectTimeout: integer('centrifuge.connectTimeout', value.connectTimeout ?? defaults.connectTimeout, 100, 2 ** 31 - 1, 'milliseconds'),
    refreshGrace: integer('centrifuge.refreshGrace', value.refreshGrace ?? defaults.refreshGrace, 0, 2 ** 31 - 1, 'milliseconds'),
    maxPayload: integer('centrifuge.maxPayload', value.maxPayload ?? defaults.centrifugeMaxPayload, 1, 2 ** 31 - 1, 'bytes'),
    hookTimeout: integer('centrifuge.hookTimeout', value.hookTimeout ?? defaults.hookTimeout, 1, 2 ** 31 - 1, 'milliseconds'),
    onRpc: value.onRpc,
    onSend: value.onSend
  })
}

function redis (value: FanoutOptions['redis']): ResolvedOptions['redis'] {
  if (value === undefined) return undefined
  if (typeof value === 'string') {
    if (!/^rediss?:\/\//.test(value)) {
      throw new InvalidOptionError('redis', `must be a redis:// or rediss:// URL, ioredis options or an ioredis client, got ${JSON.stringify(value)}`)
    }
    return { url: value, options: {} }
  }
  if (value === null || typeof value !== 'object') {
    throw new InvalidOptionError('redis', 'must be a redis:// URL, ioredis options or an ioredis client')
  }
  // An ioredis client (Redis or Cluster) has a status and can duplicate itself.
  const candidate = value as { status?: unknown, duplicate?: unknown }
  if (typeof candidate.duplicate === 'function' && typeof candidate.status === 'string') return { client: value as Redis | Cluster }
  return { options: value as RedisOptions }
}

function scopeName (value: unknown): string {
  const scope = nonEmptyString('broadcastScope', value)
  if (/\s/.test(scope)) {
    throw new InvalidOptionError('broadcastScope', `must be one scope name without spaces, got ${JSON.stringify(scope)}`)
  }
  return scope
}

function limit (name: string, value: unknown): number {
  if (value === Infinity) return value
  return integer(name, value, 1, Number.MAX_SAFE_INTEGER, 'connections (or Infinity)')
}

function originPolicy (value: unknown): OriginPolicy {
  if (value === undefined) return parseOriginPolicy(undefined)
  if (!Array.isArray(value) || value.some((entry) => typeof entry !== 'string')) {
    throw new InvalidOptionError('allowedOrigins', 'must be an array of origins such as \'https://app.example.com\', \'https://*.example.com\' or \'*\'')
  }
  try {
    return parseOriginPolicy(value)
  } catch (err) {
    throw new InvalidOptionError('allowedOrigins', (err as Error).message)
  }
}

function compression (value: FanoutOptions['compression']): ResolvedOptions['compression'] {
  if (value === undefined || value === false) return false
  if (value === true) value = {}
  optionObject('compression', value, compressionNames, 'must be false, true or { threshold, level }')
  return Object.freeze({
    threshold: integer('compression.threshold', value.threshold ?? defaults.compressionThreshold, 0, 2 ** 31 - 1, 'bytes'),
    level: integer('compression.level', value.level ?? defaults.compressionLevel, 1, 9, 'zlib level')
  })
}

function inbound (value: FanoutOptions['inbound']): ResolvedOptions['inbound'] {
  if (value === false) return false
  if (value === undefined) value = {}
  optionObject('inbound', value, inboundNames, 'must be false or { messages, bytes } (per second, per connection)')
  return Object.freeze({
    messages: integer('inbound.messages', value.messages ?? defaults.inboundMessages, 1, 2 ** 31 - 1, 'frames per second'),
    bytes: integer('inbound.bytes', value.bytes ?? defaults.inboundBytes, 1, 2 ** 31 - 1, 'bytes per second')
  })
}

function metrics (value: FanoutOptions['metrics']): ResolvedOptions['metrics'] {
  if (value === undefined || value === true) value = {}
  if (value === false) value = { serve: false }
  optionObject('metrics', value, metricsNames, 'must be true, false or { registry, serve, endpoint, listen, cluster, fastifyMetrics }')
  // Duck-typed: the app may hold its own copy of prom-client.
  if (value.registry !== undefined && typeof value.registry?.registerMetric !== 'function') {
    throw new InvalidOptionError('metrics.registry', 'must be a prom-client Registry')
  }
  const inCluster = boolean('metrics.cluster', value.cluster ?? false)
  if (inCluster && !cluster.isWorker) {
    throw new InvalidOptionError('metrics.cluster', 'is for the workers of a node:cluster, and this process is not one (set it to `cluster.isWorker`, and serve the machine\'s metrics from the primary with clusterMetrics)')
  }
  if (inCluster && value.listen !== undefined) {
    throw new InvalidOptionError('metrics.listen', 'cannot be set with `metrics.cluster`: the cluster\'s primary serves the machine\'s metrics (clusterMetrics), not each worker')
  }
  return Object.freeze({
    registry: value.registry ?? new Registry(),
    serve: value.serve ?? true,
    endpoint: routePath('metrics.endpoint', value.endpoint ?? defaults.metricsEndpoint),
    listen: metricsListen(value.listen),
    cluster: inCluster,
    fastifyMetrics: value.fastifyMetrics ?? {}
  })
}

function metricsListen (value: MetricsOptions['listen']): ResolvedOptions['metrics']['listen'] {
  if (value === undefined) return undefined
  optionObject('metrics.listen', value, listenNames, 'must be { port, host? }: an internal address to serve metrics on, e.g. { port: 9091, host: \'127.0.0.1\' }')
  return Object.freeze({
    port: integer('metrics.listen.port', value.port, 1, 65535, 'a TCP port'),
    host: nonEmptyString('metrics.listen.host', value.host ?? defaults.metricsHost)
  })
}
