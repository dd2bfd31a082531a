import { randomBytes } from 'node:crypto'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import fastifyJwt from '@fastify/jwt'
import fastifyWebsocket from '@fastify/websocket'
import fastifyMetricsModule from 'fastify-metrics'
import { WebSocket } from 'ws'
import { extractToken, JWT_VERIFY, selectProtocol } from './auth.js'
import { MemoryBackplane } from './backplane/memory.js'
import { registerRedisBackplane } from './backplane/redis.js'
import type { Backplane } from './backplane/types.js'
import { registerBroadcastRoute } from './http/broadcast-route.js'
import { answerSurvey } from './http/server-api/methods.js'
import { registerServerApi } from './http/server-api/routes.js'
import { createDecorator } from './decorator.js'
import { registerEndpoint } from './protocols/plain/endpoint.js'
import { registerCentrifugeEndpoint } from './protocols/centrifuge/endpoint.js'
import { Channels } from './channels/channels.js'
import type { Connection } from './core/connection.js'
import { PLAIN_PROTOCOL } from './protocols/plain/message.js'
import { registerReadinessRoute } from './http/readiness.js'
import { InvalidOptionError, WebSocketAlreadyRegisteredError } from './errors.js'
import { Fanout } from './core/fanout.js'
import { Flusher } from './core/flusher.js'
import { Housekeeping } from './core/housekeeping.js'
import { FanoutMetrics, metricsPluginOptions } from './metrics.js'
import { registerMetricsServer } from './http/metrics-server.js'
import { reportToPrimary } from './cluster/worker.js'
import { resolveOptions, type ResolvedOptions } from './options.js'
import { Registry } from './core/registry.js'
import { closeAll, closeClients } from './shutdown.js'
import { WS_CLOSES } from './core/close-codes.js'
import { closeOnUnreadBody } from './http/unread-body.js'
import type { FanoutOptions } from './types.js'

// Connections written per event-loop turn: about 10 ms of socket writes, so
// HTTP requests, pings and upgrades are served during big fan-outs.
const FLUSH_SLICE = 1024

// fastify-metrics is CommonJS with `exports.default`: from ESM its plugin is one level down.
const fastifyMetrics = fastifyMetricsModule.default

async function fanout (fastify: FastifyInstance, rawOptions: FanoutOptions): Promise<void> {
  const options = resolveOptions(rawOptions)
  if (fastify.hasDecorator('websocketServer')) throw new WebSocketAlreadyRegisteredError()
  if (options.metrics.serve && fastify.hasDecorator('metrics')) {
    throw new InvalidOptionError('metrics', 'cannot serve /metrics: fastify-metrics is already registered; set `metrics: { serve: false }` and expose `fastify.fanout.metricsRegistry` through your own')
  }

  // base64url without '.', so connection ids (instance id + '.' + counter) split cleanly.
  const instanceId = randomBytes(6).toString('base64url')
  const startedAt = Date.now()
  // The embedded backplane until a Redis client is ready (during registration).
  let backplane: Backplane = new MemoryBackplane()
  const registry = new Registry({
    watchUser: (userId) => { backplane.watchUser(userId) },
    unwatchUser: (userId) => { backplane.unwatchUser(userId) },
    watchChannel: (channel) => { backplane.watchChannel(channel) },
    unwatchChannel: (channel) => { backplane.unwatchChannel(channel) }
  })
  const metrics = new FanoutMetrics(options.metrics.registry, {
    connections: () => registry.size,
    backplaneUp: () => backplane.up,
    subscriptions: () => registry.subscriptionCount,
    channels: () => registry.channelCount
  })
  const engine = new Fanout(instanceId, registry, metrics, async (envelope) => await backplane.publish(envelope), options.compression)
  const flusher = new Flusher(FLUSH_SLICE)
  const housekeeping = new Housekeeping(options, registry, metrics, fastify.log)
  const channels = new Channels(options.channels, registry, () => backplane, () => engine.nextId(), metrics, fastify.log)
  housekeeping.addSweep((now) => {
    channels.sweep(now)
    if (backplane instanceof MemoryBackplane) backplane.sweep(now)
  })
  let closing = false
  let connectionSequence = 0

  await fastify.register(fastifyWebsocket, {
    options: websocketServerOptions(options),
    // Replaces @fastify/websocket's default (close without a code): refuse new
    // upgrades, stop housekeeping (pings, expiry), then 1001 to everyone and wait for them.
    async preClose () {
      closing = true
      housekeeping.stop()
      flusher.flushAll() // what was accepted goes out before the close frames
      await closeClients(fastify.websocketServer, options.closeTimeout, fastify.log)
    },
    // For sockets that are not (or not yet) fastify-fanout connections;
    // ours replace this listener with their own (see Connection).
    errorHandler (error, socket, request) {
      request.log.info({ err: error }, 'fanout: websocket error')
      if (socket.readyState === WebSocket.OPEN) socket.terminate()
    }
  })
  if (options.metrics.serve) await fastify.register(fastifyMetrics, metricsPluginOptions(options.metrics, fastify.log))
  if (options.metrics.listen !== undefined) {
    registerMetricsServer(fastify, options.metrics.registry, { ...options.metrics.listen, path: options.metrics.endpoint })
  }
  if (options.metrics.cluster) reportToPrimary(fastify, options.metrics.registry, instanceId)

  fastify.decorate('fanout', createDecorator(registry, engine, channels, metrics, () => backplane.up))
  // On the instance we are registered on, so 404s and the app's own refusals
  // close too, not only ours (see unread-body.ts).
  if (options.closeOnUnreadBody) fastify.addHook('onSend', closeOnUnreadBody)

  // Our routes and our @fastify/jwt live in their own encapsulated context so
  // that they never clash with the app's own JWT setup or hooks.
  await fastify.register(async function fanoutRoutes (scope) {
    if (options.redis !== undefined) {
      backplane = await registerRedisBackplane(scope, options.redis, { prefix: options.channelPrefix, instanceId, metrics, log: fastify.log })
    }
    await scope.register(fastifyJwt, {
      ...options.jwt,
      namespace: `fanout_${instanceId}`,
      jwtVerify: JWT_VERIFY,
      verify: { ...options.jwt.verify, extractToken }
    })
    // What connections of every endpoint share; each endpoint adds its protocol.
    const connections = {
      registry,
      metrics,
      log: fastify.log,
      maxBufferedBytes: options.maxBufferedBytes,
      maxPayload: options.maxPayload,
      closeSlowConsumers: options.slowConsumer === 'close',
      inbound: options.inbound,
      housekeeping,
      send: (connection: Connection, data: unknown) => engine.sendToConnection(connection, data),
      flusher
    }
    const nextConnectionId = (): string => instanceId + '.' + (++connectionSequence).toString(36)
    const isClosing = (): boolean => closing
    registerEndpoint(scope, {
      options,
      registry,
      metrics,
      connections: { ...connections, closes: WS_CLOSES, protocol: PLAIN_PROTOCOL },
      nextConnectionId,
      isClosing
    })
    registerCentrifugeEndpoint(scope, {
      options,
      registry,
      metrics,
      housekeeping,
      channels,
      connections,
      nextConnectionId,
      isClosing
    })
    if (options.broadcastPath !== false) registerBroadcastRoute(scope, options, engine, channels)
    await registerServerApi(scope, options, {
      channels,
      engine,
      registry,
      instanceId,
      startedAt,
      survey: async (question, timeout) => await backplane.survey(question, timeout)
    }, metrics)
    if (options.readinessPath !== false) {
      registerReadinessRoute(scope, options.readinessPath, () => ({ closing, backplaneUp: backplane.up }))
    }
  })

  fastify.addHook('onReady', async () => {
    await backplane.start((envelope) => engine.deliver(envelope), (phase) => {
      if (options.backplaneGap === 'close') closeAll(registry, 'messagesMissed', phase)
    }, (question) => answerSurvey({ registry, instanceId, startedAt }, question))
    housekeeping.start()
  })
  fastify.addHook('onClose', async () => {
    housekeeping.stop()
    await backplane.close() // the Redis one closed already, before its client (idempotent)
  })
}

function websocketServerOptions (options: ResolvedOptions): fastifyWebsocket.WebsocketPluginOptions['options'] {
  const serverOptions: fastifyWebsocket.WebsocketPluginOptions['options'] & { closeTimeout: number } = {
    // The largest of the endpoints' limits; each connection is held to its own (Connection).
    maxPayload: options.centrifuge === false ? options.maxPayload : Math.max(options.maxPayload, options.centrifuge.maxPayload),
    // ws's default emits every message of a received chunk in one go, so one
    // flooding socket holds the event loop; one message per turn lets every
    // other socket, timer and request in between.
    allowSynchronousEvents: false,
    handleProtocols: selectProtocol,
    closeTimeout: options.closeTimeout,
    perMessageDeflate: options.compression === false
      ? false
      : {
          threshold: options.compression.threshold,
          zlibDeflateOptions: { level: options.compression.level },
          // Each message compressed on its own: no per-connection deflate
          // window held between messages.
          serverNoContextTakeover: true,
          clientNoContextTakeover: true
        }
  }
  return serverOptions
}

const plugin: FastifyPluginAsync<FanoutOptions> = fp(fanout, {
  fastify: '5.x',
  name: 'fastify-fanout'
})

export default plugin
export { plugin as fanout }
export { CloseCode } from './core/close-codes.js'
export { clusterMetrics } from './cluster/primary.js'
export { SUBPROTOCOL, TOKEN_PROTOCOL_PREFIX } from './auth.js'
export { closeOnUnreadBody } from './http/unread-body.js'
export { OPENAPI_API_KEY_SCHEME, OPENAPI_BEARER_SCHEME } from './http/openapi.js'
export { serializers, logHooks } from './redact.js'
export { MAX_USER_ID_LENGTH } from './user-id.js'
export { MAX_DATA_DEPTH } from './core/data.js'
export * as errors from './errors.js'
export type * from './types.js'
