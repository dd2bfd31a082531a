import {
  bodyTooLarge, closingAnswer, errorBody, keyProviderFailed, OPENAPI_API_KEY_SCHEME, OPENAPI_BEARER_SCHEME, scopeForbidden, type Operation
} from '../openapi.js'
import { SERVER_API_METHODS, type ServerApiMethod } from './methods.js'
import { errorSchema, publishResult, requestSchemas, results } from './schemas.js'

// The server API's routes in the OpenAPI document (see ../openapi.ts for
// how routes are documented): the body and result schemas are the ones the
// routes validate and serialize with, and each method lists the Centrifugo
// error codes it answers, so that a client generated from the document
// knows them.

export interface ServerApiDocs {
  readonly prefix: string
  /** Whether `serverApi.key` is set: the API key scheme is listed only then. */
  readonly keyed: boolean
  readonly scopeClaim: string
  readonly scope: string
  readonly bodyLimit: number
}

const TAGS = ['Server API']

/**
 * The Centrifugo error codes each method answers with HTTP 200. Every method
 * answers 107 to a field it does not know or a missing one, and 100 when
 * Redis is unreachable (or on a failure of the server's own).
 */
const ERROR_CODES: Readonly<Record<ServerApiMethod, readonly number[]>> = {
  publish: [100, 102, 107, 108],
  broadcast: [100, 107, 108],
  subscribe: [100, 102, 107, 108],
  unsubscribe: [100, 102, 107, 108],
  disconnect: [100, 107, 108],
  history: [100, 102, 107, 108, 112],
  history_remove: [100, 102, 107, 108],
  presence: [100, 102, 107, 108],
  presence_stats: [100, 102, 107, 108],
  channels: [100, 107],
  info: [100, 107]
}

/** What one channel of a `broadcast` can fail with (in its `responses`). */
const BROADCAST_CHANNEL_CODES = [100, 102, 107]

const CODE_MEANINGS: Readonly<Record<number, string>> = {
  100: 'internal: Redis is unreachable, so the call would have acted on this instance only; a Redis call failed; an instance did not answer in time',
  102: 'unknown channel: its namespace is not configured',
  104: 'not found: a method this API does not have',
  107: 'bad request: a missing or empty required field, an unknown field, a bad value',
  108: 'not available: history or presence of a namespace without it, or a field this API does not honour',
  112: 'unrecoverable position: `since` is of another epoch'
}

const EXAMPLES: Readonly<Record<ServerApiMethod, object>> = {
  publish: { channel: 'chat:lobby', data: { text: 'hello' } },
  broadcast: { channels: ['chat:lobby', 'chat:support'], data: { text: 'hello' } },
  subscribe: { user: 'alice', channel: 'chat:support' },
  unsubscribe: { user: 'alice', channel: 'chat:support' },
  disconnect: { user: 'mallory', disconnect: { code: 4500, reason: 'banned' } },
  history: { channel: 'chat:lobby', limit: 10 },
  history_remove: { channel: 'chat:lobby' },
  presence: { channel: 'chat:lobby' },
  presence_stats: { channel: 'chat:lobby' },
  channels: { pattern: 'chat:*' },
  info: {}
}

/** Centrifugo's `{ code, message }`, with the codes `codes`. */
function centrifugoError (codes: readonly number[]): Operation {
  return {
    ...errorSchema,
    description: `Centrifugo's error: ${codes.map((code) => `${code} ${CODE_MEANINGS[code] ?? ''}`).join('; ')}`,
    properties: { ...errorSchema.properties, code: { type: 'integer', enum: [...codes], description: 'Centrifugo\'s error code: match on it' } }
  }
}

/** What the 200 reply's `result` is, for the document. */
function documentedResult (method: ServerApiMethod): Operation {
  if (method !== 'broadcast') return results[method] as Operation
  const outcome = {
    anyOf: [
      { type: 'object', required: ['result'], properties: { result: publishResult } },
      { type: 'object', required: ['error'], properties: { error: centrifugoError(BROADCAST_CHANNEL_CODES) } }
    ]
  }
  const responses = { type: 'array', description: 'One per channel, in the order of `channels`: its result or its error', items: outcome }
  return { ...results.broadcast, properties: { responses } }
}

function answered (method: ServerApiMethod | undefined): Operation {
  const refused = { type: 'object', required: ['error'], properties: { error: centrifugoError(method === undefined ? [104] : ERROR_CODES[method]) }, description: 'The method did not run' }
  return {
    'x-response-description': method === undefined
      ? 'Centrifugo\'s error 104, HTTP 200 as Centrifugo answers'
      : 'The method\'s `result`, or the Centrifugo `error` that kept it from running: HTTP 200 either way, as Centrifugo answers',
    ...(method === undefined ? refused : { anyOf: [{ type: 'object', required: ['result'], properties: { result: documentedResult(method) }, description: 'Done' }, refused] })
  }
}

/** The answers every route of the API shares, before its method runs. */
function refusals (docs: ServerApiDocs, body: string): Record<string, Operation> {
  const challenges = docs.keyed ? '`apikey, Bearer`' : '`Bearer`'
  return {
    400: errorBody(400, `${body} (FST_FANOUT_INVALID_API_REQUEST)`, { codes: ['FST_FANOUT_INVALID_API_REQUEST'] }),
    401: errorBody(401, 'No credentials (FST_FANOUT_API_CREDENTIALS_MISSING), an API key that does not match, sent where none is configured or in the query string ' +
      '(FST_FANOUT_API_KEY_INVALID), or a JWT that does not verify (FST_FANOUT_TOKEN_INVALID, FST_FANOUT_TOKEN_EXPIRED)', {
      codes: ['FST_FANOUT_API_CREDENTIALS_MISSING', 'FST_FANOUT_API_KEY_INVALID', 'FST_FANOUT_TOKEN_INVALID', 'FST_FANOUT_TOKEN_EXPIRED'],
      headers: {
        'WWW-Authenticate': {
          type: 'string',
          description: `The schemes the API takes, ${challenges}, for missing credentials or a refused key; \`Bearer error="invalid_token"\` for a refused JWT`
        }
      }
    }),
    403: scopeForbidden(docs.scope),
    413: bodyTooLarge(docs.bodyLimit),
    500: keyProviderFailed(),
    503: closingAnswer()
  }
}

function security (docs: ServerApiDocs): Array<Record<string, string[]>> {
  return docs.keyed ? [{ [OPENAPI_API_KEY_SCHEME]: [] }, { [OPENAPI_BEARER_SCHEME]: [] }] : [{ [OPENAPI_BEARER_SCHEME]: [] }]
}

function credentials (docs: ServerApiDocs): string {
  const jwt = `a JWT in \`Authorization: Bearer\` whose \`${docs.scopeClaim}\` claim holds \`${docs.scope}\``
  return docs.keyed ? `With the API key in \`X-API-Key\` (or \`Authorization: apikey <key>\`), or ${jwt}.` : `With ${jwt}.`
}

const pascal = (method: string): string => method.split('_').map((word) => word.charAt(0).toUpperCase() + word.slice(1)).join('')

/** `POST <prefix>/<method>`. */
export function serverApiOperation (method: ServerApiMethod, docs: ServerApiDocs): Operation {
  const request = requestSchemas[method] as Operation & { description: string }
  return {
    operationId: `fanoutServerApi${pascal(method)}`,
    summary: `Centrifugo's ${method}: ${request.description.charAt(0).toLowerCase()}${request.description.slice(1)}`,
    description: [
      `Centrifugo's HTTP server API, for its libraries (cent.js, cent, gocent). ${credentials(docs)}`,
      'Any content type is read as JSON; no body is an empty object. Types are never coerced, and unknown fields are refused (107).'
    ].join('\n\n'),
    tags: TAGS,
    security: security(docs),
    // Read as JSON whatever the content type: never a 415.
    consumes: ['application/json', '*/*'],
    body: { ...request, example: EXAMPLES[method] },
    response: {
      200: answered(method),
      ...refusals(docs, 'The body is not JSON, not an object, has a value of the wrong type, or holds a `__proto__` or `constructor.prototype` key')
    }
  }
}

/**
 * `POST <prefix>` (Centrifugo's older single endpoint) and
 * `POST <prefix>/{method}` for the methods it does not have: error 104.
 */
export function notServedOperation (which: 'endpoint' | 'method', docs: ServerApiDocs): Operation {
  const body = 'The body is not JSON, or holds a `__proto__` or `constructor.prototype` key'
  if (which === 'endpoint') {
    return {
      operationId: 'fanoutServerApiEndpoint',
      summary: 'Centrifugo\'s single endpoint (`{"method","params"}`): not served',
      description: `Answers 104: call \`POST ${docs.prefix}/<method>\` instead. ${credentials(docs)}`,
      tags: TAGS,
      security: security(docs),
      response: { 200: answered(undefined), ...refusals(docs, body) }
    }
  }
  return {
    operationId: 'fanoutServerApiNotServed',
    summary: 'A method this API does not have',
    description: `Answers 104, naming the methods there are (${SERVER_API_METHODS.join(', ')}), or why Centrifugo's ` +
      `\`batch\`, \`refresh\`, \`rpc\`, map and shared-poll methods are not served. ${credentials(docs)}`,
    tags: TAGS,
    security: security(docs),
    params: { type: 'object', required: ['method'], properties: { method: { type: 'string', description: 'Any name but the methods served' } } },
    response: { 200: answered(undefined), ...refusals(docs, body) }
  }
}
