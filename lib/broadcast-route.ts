import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { hasScope, verifyRequest } from './auth.js'
import { BackplaneDownError, InvalidBroadcastError, ScopeForbiddenError } from './errors.js'
import type { Fanout } from './fanout.js'
import type { ResolvedOptions } from './options.js'
import { serializers } from './redact.js'

/** Body of `POST /broadcast`. */
export interface BroadcastBody {
  data: unknown
  users?: string[]
  except?: string[]
}

const userIds = {
  type: 'array',
  maxItems: 10_000,
  items: { type: 'string', minLength: 1, maxLength: 512 }
} as const

export const broadcastBodySchema = {
  type: 'object',
  required: ['data'],
  // propertyNames, not additionalProperties: Fastify's Ajv silently removes
  // unknown properties, and a typo such as `user` must not turn a targeted
  // message into a broadcast to everyone.
  propertyNames: { enum: ['data', 'users', 'except'] },
  properties: { data: {}, users: userIds, except: userIds }
} as const

const resultSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    delivered: { type: 'integer' },
    dropped: { type: 'integer' },
    instances: { type: 'integer' },
    partial: { type: 'boolean' }
  }
} as const

/** `POST /broadcast`: for other services, with a token that holds the broadcast scope. */
export function registerBroadcastRoute (scope: FastifyInstance, options: ResolvedOptions, fanout: Fanout): void {
  async function authorize (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const claims = await verifyRequest(request, reply)
    if (!hasScope(claims, options.scopeClaim, options.broadcastScope)) {
      reply.header('www-authenticate', `Bearer error="insufficient_scope", scope="${options.broadcastScope}"`)
      throw new ScopeForbiddenError(options.broadcastScope)
    }
  }

  scope.route<{ Body: BroadcastBody }>({
    method: 'POST',
    url: options.broadcastPath as string,
    bodyLimit: options.bodyLimit,
    logSerializers: serializers, // a token sent in the query string by mistake stays out of the logs
    onRequest: authorize,
    schema: { body: broadcastBodySchema, response: { 202: resultSchema } }, // 503 bodies go out as built
    attachValidation: true,
    async handler (request, reply) {
      if (request.validationError !== undefined) {
        throw new InvalidBroadcastError(request.validationError.message)
      }
      const { data, users, except } = request.body
      const result = await fanout.publish(data, { users, except })
      if (result.partial === true) {
        // Redis is unreachable: this instance's clients got it, others did not.
        // A retry would reach this instance's clients twice.
        const error = new BackplaneDownError(result.delivered ?? 0)
        return await reply.code(503).send({ statusCode: 503, code: error.code, error: 'Service Unavailable', message: error.message, ...result })
      }
      return await reply.code(202).send(result)
    }
  })
}
