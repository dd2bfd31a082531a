import type { FastifyInstance } from 'fastify'
import { serializers } from '../redact.js'
import { documented, readinessOperation } from './openapi.js'

export interface ReadinessState {
  closing: boolean
  backplaneUp: boolean
}

/**
 * `GET /fanout/ready` for load balancers: 200 while this instance accepts
 * connections and reaches every instance, 503 otherwise. It reads state the
 * plugin already tracks, so a probe never costs a Redis round trip. The
 * answer says no more than a load balancer needs: it is on the public port,
 * and counts belong in metrics.
 */
export function registerReadinessRoute (scope: FastifyInstance, path: string, read: () => ReadinessState): void {
  scope.get(path, { logLevel: 'warn', logSerializers: serializers, config: documented(scope.log, readinessOperation) }, async (_request, reply) => {
    const { closing, backplaneUp } = read()
    const ready = !closing && backplaneUp
    const reason = closing ? 'shutting down' : backplaneUp ? undefined : 'Redis unreachable: messages reach this instance only'
    return await reply.code(ready ? 200 : 503).send({ ready, backplane: backplaneUp ? 'up' : 'down', reason })
  })
}
