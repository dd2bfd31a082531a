import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { invalidToken, userIdOf, verifyRequest } from '../../auth.js'
import { CloseCode } from '../../core/close-codes.js'
import { Connection, type ConnectionContext } from '../../core/connection.js'
import {
  OriginForbiddenError, ShuttingDownError, TooManyConnectionsError,
  TooManyUserConnectionsError, UpgradeRequiredError
} from '../../errors.js'
import type { FanoutMetrics, RejectReason } from '../../metrics.js'
import type { ResolvedOptions } from '../../options.js'
import { serializers } from '../../redact.js'
import { documented, plainEndpointOperation } from '../../http/openapi.js'
import type { Registry } from '../../core/registry.js'
import type { TokenClaims } from '../../types.js'

export interface EndpointContext {
  readonly options: ResolvedOptions
  readonly registry: Registry
  readonly metrics: FanoutMetrics
  readonly connections: ConnectionContext
  readonly nextConnectionId: () => string
  /** True from the moment `fastify.close()` begins. */
  readonly isClosing: () => boolean
}

interface Identity {
  userId: string
  claims: TokenClaims
}

const kIdentity = Symbol('fanout.identity')

type AdmittedRequest = FastifyRequest & { [kIdentity]?: Identity }

const REJECT_REASONS: Record<string, RejectReason> = {
  FST_FANOUT_TOKEN_MISSING: 'token_missing',
  FST_FANOUT_TOKEN_INVALID: 'token_invalid',
  FST_FANOUT_TOKEN_EXPIRED: 'token_expired',
  FST_FANOUT_ORIGIN_FORBIDDEN: 'origin',
  FST_FANOUT_TOO_MANY_CONNECTIONS: 'instance_limit',
  FST_FANOUT_TOO_MANY_USER_CONNECTIONS: 'user_limit',
  FST_FANOUT_SHUTTING_DOWN: 'shutting_down'
}

/** The WebSocket route: every admission check runs before the upgrade. */
export function registerEndpoint (scope: FastifyInstance, context: EndpointContext): void {
  const { options, registry, metrics } = context

  async function admit (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    try {
      // Before the upgrade check: once close begins @fastify/websocket stops
      // taking upgrades, and an upgrade request arrives as a plain GET, which
      // must not be told to upgrade.
      if (context.isClosing()) throw new ShuttingDownError()
      if (!request.ws) throw new UpgradeRequiredError(options.path)
      ;(request as AdmittedRequest)[kIdentity] = await check(request, reply)
    } catch (err) {
      const reason = REJECT_REASONS[(err as { code?: string }).code ?? '']
      if (reason !== undefined) metrics.rejected(reason)
      throw err
    }
  }

  // Cheap checks first: a full or closing instance spends no CPU on signatures.
  async function check (request: FastifyRequest, reply: FastifyReply): Promise<Identity> {
    const origin = request.headers.origin
    // request.host and request.protocol honour `trustProxy` (X-Forwarded-Host/-Proto).
    if (origin !== undefined && !options.origins(origin, request.host, request.protocol)) {
      throw new OriginForbiddenError(JSON.stringify(origin.slice(0, 200)))
    }
    if (registry.size >= options.maxConnections) throw new TooManyConnectionsError()

    const claims = await verifyRequest(request, reply)
    const identified = userIdOf(claims, options.userClaim)
    if ('problem' in identified) throw invalidToken(reply, identified.problem)
    const { userId } = identified
    if (registry.countOf(userId) >= options.maxConnectionsPerUser) {
      throw new TooManyUserConnectionsError(options.maxConnectionsPerUser)
    }
    return { userId, claims }
  }

  function onConnection (socket: WebSocket, request: FastifyRequest): void {
    const identity = (request as AdmittedRequest)[kIdentity] as Identity
    // Upgrades admitted together may overshoot a limit, or finish after
    // shutdown began: re-check now that the socket exists.
    if (context.isClosing()) {
      socket.close(CloseCode.GOING_AWAY, 'server shutting down')
      return
    }
    if (registry.size >= options.maxConnections) {
      metrics.rejected('instance_limit')
      socket.close(CloseCode.TRY_AGAIN_LATER, 'instance connection limit reached')
      return
    }
    if (registry.countOf(identity.userId) >= options.maxConnectionsPerUser) {
      metrics.rejected('user_limit')
      socket.close(CloseCode.TOO_MANY_USER_CONNECTIONS, 'too many connections for this user')
      return
    }
    const connection = new Connection(context.nextConnectionId(), socket, context.connections, {
      userId: identity.userId,
      claims: identity.claims,
      expiresAt: expiresAt(identity.claims, options.clockTolerance)
    })
    registry.add(connection)
    metrics.connectionsAccepted.inc()
  }

  scope.route({
    method: 'GET',
    url: options.path,
    websocket: true,
    logSerializers: serializers, // tokens in the query string never reach the logs
    config: documented(scope.log, () => plainEndpointOperation({ maxConnectionsPerUser: options.maxConnectionsPerUser })),
    onRequest: admit,
    handler: onConnection as unknown as (request: FastifyRequest, reply: FastifyReply) => void
  })
}

/**
 * When the token's authority ends, in ms: its `exp` (seconds) plus the clock
 * tolerance its verification allowed, so that a token just admitted is not
 * closed at the next tick; never without `exp`.
 */
function expiresAt (claims: TokenClaims, clockTolerance: number): number {
  return typeof claims.exp === 'number' && Number.isFinite(claims.exp) ? claims.exp * 1000 + clockTolerance : Infinity
}
