import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { JWT_VERIFY, type RequestVerifier } from '../../auth.js'
import { Connection, type ConnectionContext } from '../../core/connection.js'
import { ExpiryWheel } from '../../core/expiry.js'
import type { Housekeeping } from '../../core/housekeeping.js'
import type { Registry } from '../../core/registry.js'
import type { Channels } from '../../channels/channels.js'
import type { Subscription } from '../../channels/subscription.js'
import { OriginForbiddenError, ShuttingDownError, TooManyConnectionsError, UnsupportedSubprotocolError, UpgradeRequiredError } from '../../errors.js'
import type { FanoutMetrics } from '../../metrics.js'
import type { ResolvedOptions } from '../../options.js'
import { serializers } from '../../redact.js'
import { centrifugeEndpointOperation, documented } from '../../http/openapi.js'
import type { ClientCodec } from './codec.js'
import { DisconnectCode } from './codes.js'
import { createJsonCodec } from './json-codec.js'
import { createProtobufCodec } from './protobuf-codec.js'
import { CENTRIFUGE_CLOSES } from './protocol.js'
import { Session, type SessionContext } from './session.js'

/** The subprotocol the JSON SDKs may offer; echoed when offered. */
export const JSON_SUBPROTOCOL = 'centrifuge-json'
/** The subprotocol the Protobuf SDKs (Dart, Swift, Java, centrifuge-js's protobuf build) offer. */
export const PROTOBUF_SUBPROTOCOL = 'centrifuge-protobuf'

/**
 * Whether a connection speaks Protobuf: the subprotocol the handshake chose
 * (`selectProtocol`: JSON when a client offers both), or, without one, the
 * query string (`?format=protobuf` or `?cf_protocol=protobuf`, for clients
 * that cannot offer subprotocols). JSON otherwise.
 */
function speaksProtobuf (socket: WebSocket, request: FastifyRequest): boolean {
  if (socket.protocol !== '') return socket.protocol === PROTOBUF_SUBPROTOCOL
  const query = request.query as Record<string, unknown> | undefined
  return query?.format === 'protobuf' || query?.cf_protocol === 'protobuf'
}

/** The subprotocols a client offered (Sec-WebSocket-Protocol), in its order. */
function offeredSubprotocols (request: FastifyRequest): string[] {
  const header = request.headers['sec-websocket-protocol']
  if (header === undefined) return []
  return header.split(',').map((protocol) => protocol.trim()).filter((protocol) => protocol !== '')
}

export interface CentrifugeEndpointContext {
  readonly options: ResolvedOptions
  readonly registry: Registry
  readonly metrics: FanoutMetrics
  readonly housekeeping: Housekeeping
  readonly channels: Channels
  /** Connection settings shared with /ws, without the protocol-specific members. */
  readonly connections: Omit<ConnectionContext, 'protocol' | 'closes' | 'receive' | 'closed' | 'pingPayload' | 'serverSubscription'>
  readonly nextConnectionId: () => string
  readonly isClosing: () => boolean
}

const kSession = Symbol('fanout.centrifugeSession')
type SessionHolder = Connection & { [kSession]?: Session }

/**
 * The endpoint Centrifugo's SDKs connect to. Before the upgrade only what
 * needs no token is checked (shutdown, Origin, the instance's limit): the
 * SDK sends its token in the `connect` command, and treats any refused
 * upgrade as a network failure it retries forever. Connections that send
 * no `connect` within `connectTimeout` are closed with 3502.
 */
export function registerCentrifugeEndpoint (scope: FastifyInstance, context: CentrifugeEndpointContext): void {
  const { options, registry, metrics } = context
  if (options.centrifuge === false) return
  const settings = options.centrifuge
  const { path, connectTimeout } = settings
  /** Upgraded connections that have not identified yet, oldest first. */
  const pending = new Set<Connection>()
  const subscriptionExpiry = new ExpiryWheel<Subscription>()
  let verify: RequestVerifier | undefined
  let sessionContext: SessionContext | undefined

  const sessionOf = (connection: Connection): Session | undefined => (connection as SessionHolder)[kSession]
  const json = createJsonCodec()
  const protobuf = createProtobufCodec()
  // One connection context per codec: the protocol (text or binary frames,
  // its shared pushes) and the ping are the codec's, everything else is shared.
  const connectionContexts = new Map<ClientCodec, ConnectionContext>()
  const sharedContext: Omit<ConnectionContext, 'protocol' | 'pingPayload'> = {
    ...context.connections,
    maxPayload: settings.maxPayload,
    closes: CENTRIFUGE_CLOSES,
    receive (connection, data, isBinary) {
      sessionOf(connection)?.receive(data, isBinary)
    },
    serverSubscription (connection, channel, subscribe) {
      sessionOf(connection)?.serverSubscription(channel, subscribe)
    },
    closed (connection) {
      pending.delete(connection)
      sessionOf(connection)?.closed()
    }
  }
  for (const codec of [json, protobuf]) connectionContexts.set(codec, { ...sharedContext, protocol: codec.wire, pingPayload: codec.ping })

  context.housekeeping.addSweep((now) => {
    for (const connection of pending) {
      if (now - connection.connectedAt < connectTimeout) break // insertion order: the rest are younger
      pending.delete(connection)
      metrics.rejected('stale')
      connection.closeWith(DisconnectCode.STALE.code, DisconnectCode.STALE.reason)
    }
    for (const subscription of subscriptionExpiry.sweep(now)) sessionOf(subscription.connection)?.subscriptionExpired(subscription)
  })

  async function admit (request: FastifyRequest): Promise<void> {
    // Shutdown first: once close begins @fastify/websocket stops taking
    // upgrades, and an upgrade request arrives as a plain GET.
    if (context.isClosing()) {
      metrics.rejected('shutting_down')
      throw new ShuttingDownError()
    }
    if (!request.ws) throw new UpgradeRequiredError(path)
    const offered = offeredSubprotocols(request)
    if (offered.length > 0 && !offered.includes(JSON_SUBPROTOCOL) && !offered.includes(PROTOBUF_SUBPROTOCOL)) {
      metrics.rejected('protocol')
      throw new UnsupportedSubprotocolError(JSON.stringify(offered.join(', ').slice(0, 200)), `${JSON_SUBPROTOCOL} or ${PROTOBUF_SUBPROTOCOL}`)
    }
    try {
      const origin = request.headers.origin
      if (origin !== undefined && !options.origins(origin, request.host, request.protocol)) {
        throw new OriginForbiddenError(JSON.stringify(origin.slice(0, 200)))
      }
      if (registry.size + pending.size >= options.maxConnections) throw new TooManyConnectionsError()
    } catch (err) {
      const code = (err as { code?: string }).code
      metrics.rejected(code === 'FST_FANOUT_ORIGIN_FORBIDDEN' ? 'origin' : 'instance_limit')
      throw err
    }
  }

  function onConnection (socket: WebSocket, request: FastifyRequest): void {
    verify ??= (request as unknown as Record<string, RequestVerifier>)[JWT_VERIFY]
    sessionContext ??= {
      registry,
      channels: context.channels,
      metrics,
      log: context.connections.log,
      userClaim: options.userClaim,
      clockTolerance: options.clockTolerance,
      refreshGrace: settings.refreshGrace,
      maxConnectionsPerUser: options.maxConnectionsPerUser,
      onRpc: settings.onRpc,
      onSend: settings.onSend,
      hookTimeout: settings.hookTimeout,
      verify,
      subscriptionExpiry,
      pingSeconds: options.heartbeatInterval === 0 ? 0 : Math.max(1, Math.round(options.heartbeatInterval / 1000))
    }
    const codec = speaksProtobuf(socket, request) ? protobuf : json
    const connection = new Connection(context.nextConnectionId(), socket, connectionContexts.get(codec) as ConnectionContext)
    if (context.isClosing()) {
      connection.closeFor('shutdown')
      return
    }
    // Pending (the stale bound, the instance limit) until connect succeeds.
    ;(connection as SessionHolder)[kSession] = new Session(connection, sessionContext, codec, request.headers, () => { pending.delete(connection) })
    pending.add(connection)
  }

  scope.route({
    method: 'GET',
    url: path,
    websocket: true,
    logSerializers: serializers,
    config: documented(scope.log, centrifugeEndpointOperation),
    onRequest: admit,
    handler: onConnection as unknown as (request: FastifyRequest, reply: FastifyReply) => void
  })
}
