import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { verifyServiceRequest } from '../auth.js'
import { BackplaneDownError, InvalidBroadcastError } from '../errors.js'
import type { Channels } from '../channels/channels.js'
import type { ResolvedNamespace } from '../channels/namespaces.js'
import { depthOf, MAX_DATA_DEPTH, serializeData } from '../core/data.js'
import type { Fanout } from '../core/fanout.js'
import type { ChannelDeliveryResult } from '../types.js'
import type { ResolvedOptions } from '../options.js'
import { serializers } from '../redact.js'
import { broadcastOperation, documented } from './openapi.js'
import { MAX_USER_ID_LENGTH, MAX_USER_IDS } from '../user-id.js'

/** Body of `POST /broadcast`. */
export interface BroadcastBody {
  data: unknown
  users?: string[]
  except?: string[]
  /** Publish to this channel's subscribers instead of to users. */
  channel?: string
  /** Publish to each of these channels. */
  channels?: string[]
}

/** Most channels one request may publish to. */
export const MAX_CHANNELS_PER_REQUEST = 1000

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
  propertyNames: { enum: ['data', 'users', 'except', 'channel', 'channels'] },
  properties: {
    data: {},
    users: userIds,
    except: userIds,
    channel: { type: 'string', minLength: 1 },
    channels: { type: 'array', minItems: 1, maxItems: MAX_CHANNELS_PER_REQUEST, items: { type: 'string', minLength: 1 } }
  }
} as const

const resultSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    delivered: { type: 'integer' },
    dropped: { type: 'integer' },
    instances: { type: 'integer' },
    partial: { type: 'boolean' },
    offset: { type: 'integer' },
    epoch: { type: 'string' }
  }
} as const

// Required, and first in anyOf: the serializer answers with the first schema
// that validates, and resultSchema (nothing required) validates this shape too
// but has none of its properties: `{ channels: … }` went out as `{}`.
const channelsResultSchema = {
  type: 'object',
  required: ['channels'],
  properties: {
    channels: { type: 'object', additionalProperties: resultSchema }
  }
} as const

/** `POST /broadcast`: for other services, with a token that holds the broadcast scope. */
export function registerBroadcastRoute (scope: FastifyInstance, options: ResolvedOptions, fanout: Fanout, channels: Channels): void {
  async function authorize (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    await verifyServiceRequest(request, reply, options.scopeClaim, options.broadcastScope)
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
    schema: { body: broadcastBodySchema, response: { 202: { anyOf: [channelsResultSchema, resultSchema] } } }, // 503 bodies go out as built
    config: documented(scope.log, () => broadcastOperation({
      scopeClaim: options.scopeClaim,
      scope: options.broadcastScope,
      bodyLimit: options.bodyLimit,
      maxDataDepth: MAX_DATA_DEPTH,
      body: broadcastBodySchema,
      result: resultSchema
    })),
    attachValidation: true,
    async handler (request, reply) {
      if (request.validationError !== undefined) {
        throw new InvalidBroadcastError(request.validationError.message)
      }
      const { data, users, except, channel } = request.body
      if (depthOf(data, MAX_DATA_DEPTH) > MAX_DATA_DEPTH) {
        throw new InvalidBroadcastError(`data is nested deeper than ${MAX_DATA_DEPTH} levels of arrays and objects`)
      }
      if (channel !== undefined || request.body.channels !== undefined) {
        const published = await publishToChannels(channels, request.body)
        const results = 'channels' in published ? Object.values(published.channels) : [published]
        // As for users: a retry would reach this instance's subscribers twice.
        const partial = results.some((result) => 'error' in result || result.partial === true)
        return await reply.code(partial ? 503 : 202).send(published)
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

/**
 * Publishes to `channel`, or to each of `channels` (the data serialized
 * once). One channel answers with its result (offset and epoch where the
 * channel keeps history); several with `{ channels: { <name>: result } }`.
 */
async function publishToChannels (channels: Channels, body: BroadcastBody): Promise<ChannelDeliveryResult | { channels: Record<string, ChannelDeliveryResult | { error: { code: string, message: string } }> }> {
  if (body.users !== undefined || body.except !== undefined) {
    throw new InvalidBroadcastError('a channel publication goes to the channel\'s subscribers: leave out users and except')
  }
  if (body.channel !== undefined && body.channels !== undefined) throw new InvalidBroadcastError('send either channel or channels, not both')
  const names = body.channels ?? [body.channel as string]
  const namespaces = names.map((name) => {
    const lookup = channels.settings.lookup(name)
    if (!lookup.ok) throw new InvalidBroadcastError(`channel ${JSON.stringify(name.slice(0, 100))}: ${lookup.reason}`)
    return lookup.namespace
  })
  let data: Buffer
  try {
    data = serializeData(body.data)
  } catch (err) {
    throw new InvalidBroadcastError((err as Error).message)
  }
  if (body.channels === undefined) return await channels.publish(names[0] as string, namespaces[0] as ResolvedNamespace, data)
  // Each channel on its own: one that cannot get its offset (Redis down)
  // says so in its entry, next to those that were published.
  const settled = await Promise.allSettled(names.map(async (name, i) => await channels.publish(name, namespaces[i] as ResolvedNamespace, data)))
  return {
    channels: Object.fromEntries(names.map((name, i) => {
      const outcome = settled[i] as PromiseSettledResult<ChannelDeliveryResult>
      if (outcome.status === 'fulfilled') return [name, outcome.value]
      const error = outcome.reason as Error & { code?: string }
      if (error.code !== 'FST_FANOUT_HISTORY_UNAVAILABLE') throw error
      return [name, { error: { code: error.code, message: error.message } }]
    }))
  }
}
