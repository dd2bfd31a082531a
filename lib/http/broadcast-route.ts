import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { hasScope, verifyRequest } from '../auth.js'
import { BackplaneDownError, InvalidBroadcastError, ScopeForbiddenError } from '../errors.js'
import type { Fanout } from '../core/fanout.js'
import type { ResolvedOptions } from '../options.js'
import { serializers } from '../redact.js'
import { MAX_USER_ID_LENGTH, MAX_USER_IDS } from '../user-id.js'

/**
 * Deepest nesting of arrays and objects in `data`. JSON.parse takes any
 * depth, but serializing it again for the clients recurses, and a body
 * nested some thousands deep would exhaust the stack.
 */
export const MAX_DATA_DEPTH = 100

/** Body of `POST /broadcast`. */
export interface BroadcastBody {
  data: unknown
  users?: string[]
  except?: string[]
}

const userIds = {
  type: 'array',
  maxItems: MAX_USER_IDS,
  items: { type: 'string', minLength: 1, maxLength: MAX_USER_ID_LENGTH }
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

  // What the body holds is the client's doing: a value with no JSON form (from
  // an app's own content-type parser) is its 400, never our 500.
  async function publish (data: unknown, target: { users?: string[], except?: string[] }): ReturnType<Fanout['publish']> {
    try {
      return await fanout.publish(data, target)
    } catch (err) {
      if ((err as { code?: unknown }).code === 'FST_FANOUT_INVALID_MESSAGE') throw new InvalidBroadcastError((err as Error).message)
      throw err
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
      if (depthOf(data, MAX_DATA_DEPTH) > MAX_DATA_DEPTH) {
        throw new InvalidBroadcastError(`data is nested deeper than ${MAX_DATA_DEPTH} levels of arrays and objects`)
      }
      const result = await publish(data, { users, except })
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

/** Nesting depth of a parsed JSON value (a scalar is 0), counted no further than `limit` + 1. */
export function depthOf (value: unknown, limit: number): number {
  // Iterative, so that measuring a deep value cannot exhaust the stack either.
  let deepest = 0
  const stack: Array<[unknown, number]> = [[value, 0]]
  while (stack.length > 0) {
    const [current, depth] = stack.pop() as [unknown, number]
    if (current === null || typeof current !== 'object') continue
    if (depth + 1 > deepest) deepest = depth + 1
    if (deepest > limit) return deepest
    for (const child of Object.values(current)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1])
    }
  }
  return deepest
}
