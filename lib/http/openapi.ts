import { STATUS_CODES } from 'node:http'
import type { FastifyBaseLogger, FastifyContextConfig } from 'fastify'

// fastify-fanout's HTTP API, described for @fastify/swagger (OpenAPI 3.0 and
// 3.1) when the app registers it before fastify-fanout. Nothing here runs
// otherwise: each route carries a `config.swaggerTransform` (@fastify/swagger's
// per-route hook), called only while a document is generated, which hands
// over the route's documentation. The schemas Fastify validates and
// serializes with are left as they are, so every answer is written exactly
// as without a document (a 401 or a 503 body through a response schema
// would be cut to that schema's properties, and the app's own error
// handler's bodies with it).

/** A route's documentation: @fastify/swagger's route schema (summary, tags, security, body, response ...). */
export type Operation = Record<string, unknown>

/**
 * Name of the security scheme of the operations that take a JWT in
 * `Authorization: Bearer` (HTTP bearer). Added to `components.securitySchemes`
 * of the document unless the app defined a scheme of that name itself.
 */
export const OPENAPI_BEARER_SCHEME = 'fanoutBearer'

/**
 * Name of the security scheme of the server API's key (`serverApi.key`, in
 * the `X-API-Key` header). Added to the document as the bearer scheme is,
 * when the server API takes a key.
 */
export const OPENAPI_API_KEY_SCHEME = 'fanoutApiKey'

const securitySchemes: Readonly<Record<string, Operation>> = {
  [OPENAPI_BEARER_SCHEME]: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'A JWT, verified with the `jwt` options fastify-fanout was registered with; an operation that needs a scope in it says which. ' +
      'WebSocket clients may send it as the `token` query parameter or a `bearer.<jwt>` subprotocol instead ' +
      '(browsers cannot set headers on a WebSocket).'
  },
  [OPENAPI_API_KEY_SCHEME]: {
    type: 'apiKey',
    in: 'header',
    name: 'X-API-Key',
    description: 'The server API\'s key (`serverApi.key`), as Centrifugo\'s libraries send it; `Authorization: apikey <key>` is accepted too.'
  }
}

/** The security requirement of an operation that needs the token. */
function bearer (): Array<Record<string, string[]>> {
  return [{ [OPENAPI_BEARER_SCHEME]: [] }]
}

/** What @fastify/swagger passes to a route's transform (the part read here). */
export interface SwaggerTransformInput {
  readonly url: string
  readonly route?: { readonly method?: string | readonly string[] }
  readonly openapiObject?: { components?: { securitySchemes?: Record<string, unknown> } }
  readonly swaggerObject?: unknown
}

/** What a route's `config` holds for @fastify/swagger. */
export interface Documented {
  swaggerTransform: (input: SwaggerTransformInput) => { schema: Operation, url: string }
}

/**
 * Route `config` through which @fastify/swagger documents a route: the
 * operation is built when a document is generated (@fastify/swagger caches
 * the document), never while requests are served.
 *
 * A route's own transform replaces the app's global `transform` for that
 * route (@fastify/swagger's rule); fastify-fanout's schemas are plain JSON
 * Schema and need none.
 */
export function documented (log: FastifyBaseLogger, describe: () => Operation): FastifyContextConfig {
  const config: Documented = {
    swaggerTransform ({ url, route, openapiObject }) {
      if (openapiObject === undefined) {
        // Swagger 2.0 has no anyOf, no bearer scheme and no text/html next to
        // JSON: an operation cut down to fit would describe answers wrongly.
        const method = typeof route?.method === 'string' ? route.method : route?.method?.join(',') ?? ''
        log.warn(`fastify-fanout: ${method} ${url} is left out of the Swagger 2.0 document: register @fastify/swagger with \`openapi\` (3.0 or 3.1) to document it`)
        return { schema: { hide: true }, url }
      }
      const operation = describe()
      // The schemes the operation names must be in the document before
      // @fastify/swagger reads them (right after this transform).
      const named = ((operation.security ?? []) as Array<Record<string, unknown>>).flatMap((requirement) => Object.keys(requirement))
      const ours = Object.entries(securitySchemes).filter(([name]) => named.includes(name))
      if (ours.length > 0) {
        // A new object: the app's own `securitySchemes` (from its options) stays untouched, and wins.
        const components = openapiObject.components ??= {}
        components.securitySchemes = { ...Object.fromEntries(ours), ...components.securitySchemes }
      }
      return { schema: operation, url }
    }
  }
  // FastifyContextConfig is what other plugins' types say of `config`
  // (fastify-metrics', @fastify/swagger's when the app uses it): ours is
  // @fastify/swagger's member, typed here without depending on it.
  return config as FastifyContextConfig
}

interface ErrorOptions {
  /** The codes this answer carries; [] for an answer without one. Absent: whatever code the error has. */
  readonly codes?: readonly string[]
  /** The answer may come without a code (Fastify's own 503 while the app closes). */
  readonly codeOptional?: boolean
  readonly headers?: Record<string, unknown>
}

/**
 * Fastify's error body, `{ statusCode, code, error, message }`, as its error
 * handler writes it (the order too), for one status.
 */
export function errorSchema (status: number, { codes, codeOptional = false, headers }: ErrorOptions = {}): Operation & { properties: Operation } {
  const hasCode = codes === undefined || codes.length > 0
  const codeRequired = codes !== undefined && codes.length > 0 && !codeOptional
  return {
    type: 'object',
    required: codeRequired ? ['statusCode', 'code', 'error', 'message'] : ['statusCode', 'error', 'message'],
    properties: {
      statusCode: { type: 'integer', enum: [status] },
      ...(hasCode
        ? { code: codes === undefined ? { type: 'string', description: 'The error\'s code, when it has one' } : { type: 'string', enum: [...codes], description: 'Stable: match on it' } }
        : {}),
      error: { type: 'string', enum: [STATUS_CODES[status]] },
      message: { type: 'string', description: 'What went wrong, for people: the wording may change' }
    },
    ...(headers === undefined ? {} : { headers })
  }
}

/** A response that is Fastify's error body, with what it means. */
export function errorBody (status: number, description: string, options: ErrorOptions = {}): Operation {
  return { 'x-response-description': description, ...errorSchema(status, options) }
}

// What Fastify answers on every route once the app is closing (its
// `return503OnClosing`, on by default): `{ statusCode, error, message }`, no code.
const CLOSING = 'The app is closing: Fastify\'s own answer, without a code, while its `return503OnClosing` is on (the default)'
const closing = CLOSING.charAt(0).toLowerCase() + CLOSING.slice(1)

/** 503 without a code: Fastify's own answer on every route while the app closes. */
export function closingAnswer (): Operation {
  return errorBody(503, CLOSING, { codes: [] })
}

const wwwAuthenticate = {
  'WWW-Authenticate': { type: 'string', description: 'RFC 6750: `Bearer`, or `Bearer error="invalid_token"` with an `error_description` for an expired token' }
}

/** 401: no token, or a bad one. */
export function unauthorized (): Operation {
  return errorBody(401, 'No token (FST_FANOUT_TOKEN_MISSING), an invalid one (FST_FANOUT_TOKEN_INVALID, the message says why: malformed, badly signed, ' +
    'an algorithm not allowed, not valid yet, a failed verify option, no valid user claim ...) or an expired one (FST_FANOUT_TOKEN_EXPIRED)', {
    codes: ['FST_FANOUT_TOKEN_MISSING', 'FST_FANOUT_TOKEN_INVALID', 'FST_FANOUT_TOKEN_EXPIRED'],
    headers: wwwAuthenticate
  })
}

/** 500: the key provider (a `jwt.secret` function) failed; no token causes one. */
export function keyProviderFailed (): Operation {
  return errorBody(500, 'The token could not be checked: the key provider (a `jwt.secret` function) failed. Logged; no token causes it')
}

/** 403: a valid token without the scope the route needs. */
export function scopeForbidden (scope: string): Operation {
  return errorBody(403, `The token lacks the \`${scope}\` scope`, {
    codes: ['FST_FANOUT_SCOPE_FORBIDDEN'],
    headers: { 'WWW-Authenticate': { type: 'string', description: `\`Bearer error="insufficient_scope", scope="${scope}"\`` } }
  })
}

// Routes that read a body: what Fastify's body parsing answers before the handler.
export const bodyTooLarge = (limit: number): Operation => errorBody(413, `The body is over ${limit} bytes`, { codes: ['FST_ERR_CTP_BODY_TOO_LARGE'] })
const unsupportedMediaType = (): Operation => errorBody(415, 'A content type the app has no parser for (send `application/json`)', { codes: ['FST_ERR_CTP_INVALID_MEDIA_TYPE'] })

// ---------------------------------------------------------------- POST /broadcast

export interface BroadcastDocs {
  readonly scopeClaim: string
  readonly scope: string
  readonly bodyLimit: number
  readonly maxDataDepth: number
  /** The route's body schema. */
  readonly body: Operation & { properties: Record<string, Operation> }
  /** The result of one publication (the users broadcast's, or one channel's). */
  readonly result: Operation & { properties: Record<string, Operation> }
}

const bodyDescriptions: Record<string, string> = {
  data: 'Required: any JSON value, `null` included, delivered exactly as sent',
  users: 'Only these users\' connections (a single string is read as a list of one)',
  except: 'Skip these users\' connections (applies to `users` too)',
  channel: 'Publish to this channel\'s subscribers (Centrifugo-compatible endpoint) instead of to users',
  channels: 'Publish to each of these channels'
}

const resultDescriptions: Record<string, string> = {
  id: 'The message\'s id, as clients see it',
  delivered: 'Connections of this instance it was written to, when this instance delivered within the request (embedded backplane, or Redis unreachable)',
  dropped: 'Connections of this instance that could not take it (slow consumers); with `delivered`',
  instances: 'Instances it reached: 1 on the embedded backplane; with Redis, the subscribers Redis handed it to',
  partial: 'Redis was unreachable: only this instance\'s connections got it',
  offset: 'Its offset in the channel\'s stream (channels with history)',
  epoch: 'The stream\'s epoch (channels with history)'
}

/** `schema` with a description for each of its properties. */
function described (schema: Operation & { properties: Record<string, Operation> }, descriptions: Record<string, string>): Operation & { properties: Record<string, Operation> } {
  return { ...schema, properties: Object.fromEntries(Object.entries(schema.properties).map(([name, property]) => [name, { ...property, description: descriptions[name] }])) }
}

/** `POST /broadcast`. */
export function broadcastOperation (docs: BroadcastDocs): Operation {
  // The route validates with `propertyNames` (Fastify's Ajv would strip the
  // unknown members `additionalProperties: false` refuses); OpenAPI 3.0 has
  // no `propertyNames`, and both say the same here.
  const { propertyNames: _names, ...body } = described(docs.body, bodyDescriptions)
  const result = described(docs.result, resultDescriptions)
  const partial = { ...result.properties, partial: { ...result.properties.partial, enum: [true] } }
  const channelError = {
    type: 'object',
    required: ['error'],
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message'],
        properties: { code: { type: 'string', enum: ['FST_FANOUT_HISTORY_UNAVAILABLE'] }, message: { type: 'string' } }
      }
    },
    description: 'Not published: the channel keeps history and Redis is unreachable'
  }
  return {
    operationId: 'fanoutBroadcast',
    summary: 'Send a message to connected clients, or publish to channels',
    description: [
      `For other services: a token whose \`${docs.scopeClaim}\` claim (a space-separated string or an array) holds \`${docs.scope}\`.`,
      'Without `channel`/`channels`, `data` goes to every connection of both WebSocket endpoints, or to those of `users`, less those of `except`.',
      'With `channel` or `channels`, it is published to the channels\' subscribers (with an offset and epoch where the namespace keeps history).',
      `\`data\` may be nested at most ${docs.maxDataDepth} levels of arrays and objects. Unknown members are refused: a typo such as \`user\` must not broadcast to everyone.`,
      'A 503 may mean delivered in part: a retry would reach those connections twice.'
    ].join('\n\n'),
    tags: ['Broadcast'],
    security: bearer(),
    body: { ...body, additionalProperties: false, example: { data: { text: 'hello' } } },
    response: {
      202: {
        'x-response-description': 'Accepted: published everywhere',
        anyOf: [
          { type: 'object', required: ['channels'], description: 'With `channels`: each channel\'s result', properties: { channels: { type: 'object', additionalProperties: result } } },
          { ...result, description: 'Without `channels`' }
        ]
      },
      400: errorBody(400, 'The body does not match the schema, `data` is nested too deep or has no JSON form, or a channel is in no configured namespace ' +
        '(FST_FANOUT_INVALID_BROADCAST, the message says which); the body is not JSON (FST_ERR_CTP_INVALID_JSON_BODY) or is empty (FST_ERR_CTP_EMPTY_JSON_BODY)'),
      401: unauthorized(),
      403: scopeForbidden(docs.scope),
      413: bodyTooLarge(docs.bodyLimit),
      415: unsupportedMediaType(),
      500: keyProviderFailed(),
      503: {
        'x-response-description': `Redis is unreachable, so the message was not published everywhere; or ${closing}`,
        anyOf: [
          {
            type: 'object',
            required: ['statusCode', 'code', 'error', 'message', 'id', 'instances', 'partial'],
            description: 'Delivered to this instance\'s connections only (users broadcast): `partial`, with `delivered` and `dropped`',
            properties: { ...errorSchema(503, { codes: ['FST_FANOUT_BACKPLANE_DOWN'] }).properties, ...partial }
          },
          { ...errorSchema(503, { codes: ['FST_FANOUT_HISTORY_UNAVAILABLE'], codeOptional: true }), description: `The channel keeps history, whose offset comes from Redis: nothing was published. Without a code: ${closing}` },
          { ...result, required: ['id', 'instances', 'partial'], properties: partial, description: 'A channel without history, delivered on this instance only' },
          {
            type: 'object',
            required: ['channels'],
            description: 'With `channels`: what happened to each; retry only those not published everywhere',
            properties: { channels: { type: 'object', additionalProperties: { anyOf: [result, channelError] } } }
          }
        ]
      }
    }
  }
}

// ---------------------------------------------------------------- WebSocket upgrades

const switchingProtocols = (what: string): Operation => ({ type: 'null', 'x-response-description': `Switching Protocols: the WebSocket is open. ${what}` })

const handshakeRefused = (): Operation => ({
  'x-response-description': 'Admitted, but the WebSocket handshake is malformed (Sec-WebSocket-Key, -Version, -Protocol, -Extensions or Upgrade): ws\'s own answer, in words',
  content: { 'text/html': { schema: { type: 'string' } } }
})

/** 400 on the Centrifugo endpoint: subprotocols none of which it speaks, or ws's answer to a malformed handshake. */
const sdkHandshakeRefused = (): Operation => ({
  'x-response-description': 'The client offered WebSocket subprotocols and none is this endpoint\'s (FST_FANOUT_UNSUPPORTED_SUBPROTOCOL), ' +
    'or the handshake is malformed (ws\'s own answer, in words)',
  content: {
    'application/json': { schema: errorSchema(400, { codes: ['FST_FANOUT_UNSUPPORTED_SUBPROTOCOL'] }) },
    'text/html': { schema: { type: 'string' } }
  }
})

const originForbidden = (): Operation => errorBody(403, 'The request\'s Origin is not allowed (`allowedOrigins`; by default same origin only)', { codes: ['FST_FANOUT_ORIGIN_FORBIDDEN'] })

const upgradeRequired = (): Operation => errorBody(426, 'A plain HTTP request: connect with a WebSocket client', { codes: ['FST_FANOUT_UPGRADE_REQUIRED'] })

const unavailable = (): Operation => errorBody(503, 'The instance is at `maxConnections` (FST_FANOUT_TOO_MANY_CONNECTIONS) or shutting down ' +
  '(FST_FANOUT_SHUTTING_DOWN; while Fastify\'s `return503OnClosing` is on, its default, Fastify\'s own answer without a code): try another instance or later', {
  codes: ['FST_FANOUT_TOO_MANY_CONNECTIONS', 'FST_FANOUT_SHUTTING_DOWN'],
  codeOptional: true
})

export interface UpgradeDocs {
  readonly maxConnectionsPerUser: number
}

/** `GET /ws`: the plain protocol's endpoint. */
export function plainEndpointOperation ({ maxConnectionsPerUser }: UpgradeDocs): Operation {
  return {
    operationId: 'fanoutWebSocket',
    summary: 'Open a WebSocket (fastify-fanout\'s plain protocol)',
    description: 'A WebSocket upgrade, admitted before the upgrade: shutdown, Origin, the instance\'s limit, the token, the user\'s limit, in that order. ' +
      'Every refusal is an HTTP answer; after the upgrade, failures are WebSocket close codes. Messages arrive as ' +
      '`{"type":"message","id","data"}` text frames (see the README\'s wire protocol). Offer the `fanout.v1` subprotocol.',
    tags: ['WebSocket'],
    security: bearer(),
    querystring: {
      type: 'object',
      properties: { token: { type: 'string', description: 'The JWT, for clients that cannot send an `Authorization` header (kept out of the logs)' } }
    },
    headers: {
      type: 'object',
      properties: {
        'sec-websocket-protocol': { type: 'string', description: '`fanout.v1`, and `bearer.<jwt>` to carry the token from a browser (never echoed back)' }
      }
    },
    response: {
      101: switchingProtocols('The server answers with the `fanout.v1` subprotocol.'),
      400: handshakeRefused(),
      401: unauthorized(),
      403: originForbidden(),
      426: upgradeRequired(),
      429: errorBody(429, `The user already holds ${maxConnectionsPerUser} connections on this instance (\`maxConnectionsPerUser\`)`, { codes: ['FST_FANOUT_TOO_MANY_USER_CONNECTIONS'] }),
      500: keyProviderFailed(),
      503: unavailable()
    }
  }
}

/** `GET /connection/websocket`: the Centrifugo-compatible endpoint. */
export function centrifugeEndpointOperation (): Operation {
  return {
    operationId: 'fanoutCentrifugeWebSocket',
    summary: 'Open a WebSocket speaking Centrifugo\'s client protocol (JSON or Protobuf)',
    description: 'For Centrifugo\'s SDKs (centrifuge-js ...). Before the upgrade only what needs no token is checked (shutdown, Origin, the ' +
      'instance\'s limit): the token travels in the protocol\'s `connect` command, verified with the same `jwt` options, and its failures are ' +
      'protocol errors and close codes. JSON (text frames) unless the client offers `centrifuge-protobuf` and not `centrifuge-json`, or asks ' +
      'with `?format=protobuf`: then Protobuf (binary frames of varint-delimited messages).',
    tags: ['WebSocket'],
    security: [],
    response: {
      101: switchingProtocols('The client sends `connect` with its token next, within `centrifuge.connectTimeout`.'),
      400: sdkHandshakeRefused(),
      403: originForbidden(),
      426: upgradeRequired(),
      503: unavailable()
    }
  }
}

// ---------------------------------------------------------------- readiness and metrics

const readinessProperties = (ready: boolean): Operation => ({
  ready: { type: 'boolean', enum: [ready] },
  backplane: { type: 'string', enum: ready ? ['up'] : ['up', 'down'], description: 'Whether this instance reaches the others (Redis); always up on the embedded backplane' },
  ...(ready ? {} : { reason: { type: 'string', description: '`shutting down`, or why the backplane is down' } })
})

/** `GET /fanout/ready`: for load balancers. */
export function readinessOperation (): Operation {
  return {
    operationId: 'fanoutReadiness',
    summary: 'Whether this instance accepts connections and reaches every instance',
    description: 'For load balancers: reads state the instance tracks, so a probe costs no Redis round trip, and tells no counts (those are metrics).',
    tags: ['Operations'],
    security: [],
    response: {
      200: { 'x-response-description': 'Ready', type: 'object', required: ['ready', 'backplane'], properties: readinessProperties(true) },
      503: {
        'x-response-description': 'Not ready: shutting down, or Redis is unreachable (messages reach this instance only)',
        anyOf: [
          { type: 'object', required: ['ready', 'backplane', 'reason'], properties: readinessProperties(false) },
          { ...errorSchema(503, { codes: [] }), description: CLOSING }
        ]
      }
    }
  }
}

/** `GET /metrics` on the app's port (fastify-metrics), when `metrics.listen` does not move it to an internal one. */
export function metricsOperation (): Operation {
  return {
    operationId: 'fanoutMetrics',
    summary: 'Prometheus metrics',
    description: 'The instance\'s registry in Prometheus\' text format. On a public port it tells versions and counts: prefer `metrics: { listen }`, ' +
      'an internal address, which takes this route off the app (and out of this document).',
    tags: ['Operations'],
    security: [],
    response: {
      200: {
        'x-response-description': 'The metrics: Prometheus\' text format, or OpenMetrics with a registry of that type',
        content: { 'text/plain': { schema: { type: 'string' } }, 'application/openmetrics-text': { schema: { type: 'string' } } }
      },
      503: closingAnswer()
    }
  }
}
