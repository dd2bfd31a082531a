import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest, RawServerDefault, RouteGenericInterface, RouteOptions } from 'fastify'
import { Ajv, type ErrorObject } from 'ajv'
import secureJson from 'secure-json-parse'
import { hasBearerScheme, verifyServiceRequest } from '../../auth.js'
import { ApiCredentialsMissingError, ApiKeyInvalidError, InvalidApiRequestError } from '../../errors.js'
import type { FanoutMetrics } from '../../metrics.js'
import type { ResolvedOptions } from '../../options.js'
import { documented } from '../openapi.js'
import { serializers } from '../../redact.js'
import {
  ApiError, badRequest, createMethods, internal, notFound, SERVER_API_METHODS, UNSUPPORTED_METHODS,
  type MethodResult, type ServerApiContext
} from './methods.js'
import { notServedOperation, serverApiOperation, type ServerApiDocs } from './openapi.js'
import { replySchema, requestSchemas } from './schemas.js'

// Centrifugo's HTTP server API: `POST <prefix>/<method>` with a JSON body,
// answered `{"result":…}` or, when the method refuses, `{"error":{"code",
// "message"}}` with HTTP 200, as Centrifugo answers (its libraries read the
// error from the body). What Centrifugo would not decode either gets a 400:
// a body that is not JSON, not an object, or with a value of the wrong type.
// The routes live in their own encapsulated context: a body parser that
// takes any content type as JSON (curl's default is a form type), and an
// Ajv that neither coerces types nor drops unknown fields. The routes are
// documented for @fastify/swagger as the plugin's other routes are
// (openapi.ts): their schemas hold only what Fastify validates and
// serializes with.

/** Registers the server API's routes under `serverApi.prefix`. */
export async function registerServerApi (parent: FastifyInstance, options: ResolvedOptions, context: ServerApiContext, metrics: FanoutMetrics): Promise<void> {
  const settings = options.serverApi
  if (settings === false) return
  const { prefix } = settings
  type Route = RouteOptions<RawServerDefault, IncomingMessage, ServerResponse, RouteGenericInterface, { serverApiMethod: string }>
  const methods = createMethods(context)
  const keyMatches = settings.key === undefined ? undefined : keyMatcher(settings.key)
  // RFC 7235: a 401 names the schemes that would do.
  const challenges = keyMatches === undefined ? 'Bearer' : 'apikey, Bearer'
  const docs: ServerApiDocs = { prefix, keyed: keyMatches !== undefined, scopeClaim: options.scopeClaim, scope: options.broadcastScope, bodyLimit: options.bodyLimit }
  // Each request's outcome for the metric, when the handler decided it.
  const outcomes = new WeakMap<FastifyRequest, string>()

  /** A refused or missing key: a 401 naming the schemes that would do. */
  function keyRefused (reply: FastifyReply, error: Error): Error {
    reply.header('www-authenticate', challenges)
    return error
  }

  async function authenticate (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const { headers } = request
    const authorization = headers.authorization
    const apiKey = headers['x-api-key'] ?? (authorization !== undefined && /^\s*apikey(?:\s|$)/i.test(authorization) ? authorization.trim().split(/\s+/) : undefined)
    if (apiKey !== undefined) {
      if (keyMatches === undefined) {
        throw keyRefused(reply, new ApiKeyInvalidError(`this server takes no API key (serverApi.key is not set): send \`Authorization: Bearer <jwt>\` with the \`${options.broadcastScope}\` scope`))
      }
      const given = typeof apiKey === 'string' ? apiKey : apiKey.length === 2 ? apiKey[1] : undefined
      if (given === undefined) throw keyRefused(reply, new ApiKeyInvalidError(Array.isArray(headers['x-api-key']) ? 'X-API-Key was sent more than once' : 'the Authorization header is not `apikey <key>`'))
      if (!keyMatches(given)) throw keyRefused(reply, new ApiKeyInvalidError(`${headers['x-api-key'] === undefined ? 'the key of `Authorization: apikey`' : 'X-API-Key'} does not match serverApi.key`))
      return
    }
    if (hasBearerScheme(request)) {
      await verifyServiceRequest(request, reply, options.scopeClaim, options.broadcastScope)
      return
    }
    if (/[?&;]api_key=/.test(request.url)) {
      throw keyRefused(reply, new ApiKeyInvalidError('the api_key query parameter is not accepted (query strings end up in logs): send the key in X-API-Key'))
    }
    throw keyRefused(reply, new ApiCredentialsMissingError(options.broadcastScope))
  }

  function answer (request: FastifyRequest, reply: FastifyReply, method: string, outcome: MethodResult | ApiError): FastifyReply {
    if (outcome instanceof ApiError) {
      outcomes.set(request, String(outcome.code))
      if (outcome.code === 100) request.log.warn({ err: outcome.cause ?? outcome, method }, 'fanout: server API call failed')
      return reply.send({ error: { code: outcome.code, message: outcome.message } })
    }
    outcomes.set(request, 'ok')
    // History and presence come as JSON text, with publication data spliced in as stored.
    if ('json' in outcome && typeof outcome.json === 'string') return reply.type('application/json; charset=utf-8').send(`{"result":${outcome.json}}`)
    return reply.send({ result: outcome })
  }

  await parent.register(async function serverApi (scope) {
    const ajv = new Ajv({ strict: true, allErrors: false, coerceTypes: false, useDefaults: false, removeAdditional: false })
    scope.setValidatorCompiler(({ schema }) => ajv.compile(schema))
    // JSON for every content type, with Fastify's own parser's refusal of
    // prototype poisoning (secure-json-parse, which Fastify parses JSON with).
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', { parseAs: 'string', bodyLimit: options.bodyLimit }, (_request, body, done) => {
      const text = body as string
      if (text.trim() === '') {
        done(null, {})
        return
      }
      try {
        done(null, secureJson.parse(text, { protoAction: 'error', constructorAction: 'error' }))
      } catch (err) {
        done(new InvalidApiRequestError(`the body is not JSON: ${(err as Error).message}`), undefined)
      }
    })
    scope.addHook('onRequest', authenticate)
    // No body at all: the methods whose fields are all optional (info, channels) need none.
    scope.addHook('preValidation', async (request) => {
      if (request.body === undefined || request.body === null) request.body = {}
    })
    scope.addHook('onResponse', async (request, reply) => {
      const method = (request.routeOptions.config as { serverApiMethod?: string }).serverApiMethod ?? 'unknown'
      metrics.serverApiCalls.inc({ method, outcome: outcomes.get(request) ?? outcomeOf(reply.statusCode) })
    })

    for (const method of SERVER_API_METHODS) {
      const route: Route = {
        method: 'POST',
        url: `${prefix}/${method}`,
        bodyLimit: options.bodyLimit,
        logSerializers: serializers,
        config: { ...documented(scope.log, () => serverApiOperation(method, docs)), serverApiMethod: method },
        attachValidation: true,
        schema: { body: requestSchemas[method], response: { 200: replySchema(method) } },
        async handler (request, reply) {
          let outcome: MethodResult | ApiError
          try {
            if (request.validationError !== undefined) throw refusal(request.validationError.validation as ErrorObject[] | undefined, request.validationError.message)
            outcome = await (methods[method] as (body: unknown) => Promise<MethodResult>)(request.body)
          } catch (err) {
            if (err instanceof InvalidApiRequestError) throw err
            if (err instanceof ApiError) outcome = err
            else {
              // Centrifugo answers its own failures as error 100, never as a 500.
              request.log.error({ err, method }, 'fanout: server API method failed')
              outcome = internal(`${method} failed`)
            }
          }
          return answer(request, reply, method, outcome)
        }
      }
      scope.route(route)
    }

    // Centrifugo answers a method it does not have with 104 (its single
    // `POST <prefix>` endpoint does; its per-method routes 404). Every name
    // under the prefix gets that answer here, naming the methods there are.
    // At the root, such a catch-all would take the app's own routes.
    if (prefix !== '') {
      const unknown: Omit<Route, 'url' | 'config'> = {
        method: 'POST',
        bodyLimit: options.bodyLimit,
        logSerializers: serializers,
        schema: { response: { 200: replySchema(undefined) } },
        async handler (request, reply) {
          const name = (request.params as { method?: string }).method ?? ''
          const why = UNSUPPORTED_METHODS[name]
          const detail = why === undefined
            ? `no method ${JSON.stringify(name.slice(0, 100))}: the methods are ${SERVER_API_METHODS.join(', ')} (POST ${prefix}/<method>)`
            : `Centrifugo's ${name} is not supported here: ${why}`
          return answer(request, reply, name, notFound(detail))
        }
      }
      scope.route({ ...unknown, url: prefix, config: { ...documented(scope.log, () => notServedOperation('endpoint', docs)), serverApiMethod: 'unknown' } })
      scope.route({ ...unknown, url: `${prefix}/:method`, config: { ...documented(scope.log, () => notServedOperation('method', docs)), serverApiMethod: 'unknown' } })
    }
  })
}

/**
 * A validation failure: what Centrifugo would not decode (a value of the
 * wrong type, a body that is not an object) is a 400; a value it decodes
 * and then refuses (a missing or empty channel, an unknown field here) is
 * its error 107, with HTTP 200.
 */
function refusal (errors: ErrorObject[] | undefined, message: string): Error {
  const error = errors?.[0]
  if (error === undefined) return new InvalidApiRequestError(message)
  const where = error.instancePath === '' ? 'the body' : `\`${error.instancePath.slice(1).replaceAll('/', '.')}\``
  if (error.keyword === 'type') return new InvalidApiRequestError(`${where} ${error.message ?? 'has the wrong type'}`)
  if (error.keyword === 'additionalProperties') {
    return badRequest(`${where} has an unknown field \`${(error.params as { additionalProperty: string }).additionalProperty}\``)
  }
  if (error.keyword === 'required') return badRequest(`${where} needs \`${(error.params as { missingProperty: string }).missingProperty}\``)
  return badRequest(`${where} ${error.message ?? 'is not valid'}`)
}

function outcomeOf (status: number): string {
  if (status === 401 || status === 403) return 'unauthorized'
  if (status === 400 || status === 413) return 'invalid'
  return String(status)
}

/** Compares keys in constant time: digests of equal length, whatever the lengths of the keys. */
function keyMatcher (key: string): (given: string) => boolean {
  const expected = createHash('sha256').update(key).digest()
  return (given) => timingSafeEqual(createHash('sha256').update(given).digest(), expected)
}
