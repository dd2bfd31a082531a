// Browsers cannot set headers on a WebSocket, so tokens travel in query
// strings, and query strings travel into logs: the request line of every
// route (404s included), Fastify's "Route GET:/x?token=... not found"
// message, and the raw bytes of a request Node could not parse (a client
// error's `rawPacket`, logged at trace level). Everything here keeps tokens
// out of them; our routes use it, and apps pass it to their logger so that
// requests that never reach our routes are covered too.

const REDACTED = '[redacted]'

// Query parameters that carry bearer tokens: ours and RFC 6750's; and
// Centrifugo's API key parameter, which the server API refuses but a caller
// may still send.
const TOKEN_PARAMETERS = new Set(['token', 'access_token', 'api_key'])

// A JWS compact serialization: a base64url JSON header ("eyJ" is `{"`), then
// payload and signature. Caught under any name, and in paths.
const JWT = /eyJ[\w-]*\.[\w-]*\.[\w-]*/g
const JWT_SHAPE = /^eyJ[\w-]*\.[\w-]*\.[\w-]*$/

/**
 * `url` with the value of every token parameter replaced by `[redacted]`.
 * Names are compared decoded, as the query parser sees them (`tok%65n`,
 * `%74oken`), in any case, every occurrence; a JWT-shaped value is
 * redacted under any name.
 */
export function redactUrl (url: string): string {
  // Fastify's `useSemicolonDelimiter` makes `;` start a query as well.
  const start = url.search(/[?;]/)
  const path = start === -1 ? url : url.slice(0, start)
  const redactedPath = path.replace(JWT, REDACTED)
  if (start === -1) return redactedPath
  return redactedPath + url[start] + url.slice(start + 1).replace(/[^&;#]+/g, redactParameter)
}

function redactParameter (parameter: string): string {
  const equals = parameter.indexOf('=')
  const name = equals === -1 ? parameter : parameter.slice(0, equals)
  const value = equals === -1 ? '' : parameter.slice(equals + 1)
  const decodedName = decode(name)
  if (JWT_SHAPE.test(decodedName)) return REDACTED
  if (equals === -1) return parameter
  if (TOKEN_PARAMETERS.has(decodedName.toLowerCase()) || JWT_SHAPE.test(decode(value))) return name + '=' + REDACTED
  return parameter
}

// As the query parser decodes (`+` is a space); a sequence that is not valid
// UTF-8 decodes byte by byte, so that no spelling escapes the comparison.
function decode (text: string): string {
  if (!text.includes('%') && !text.includes('+')) return text
  const spaced = text.replace(/\+/g, ' ')
  try {
    return decodeURIComponent(spaced)
  } catch {
    return spaced.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)))
  }
}

/** `text` with every URL-like word redacted by {@link redactUrl}, and any JWT in it. */
export function redactText (text: string): string {
  return text.replace(/\S*[?;]\S*/g, redactUrl).replace(JWT, REDACTED)
}

/** What Fastify's request serializer logs: the URL redacted. */
export interface SerializedRequest {
  method?: string
  url?: string
  version?: string
  host?: string
  remoteAddress?: string
  remotePort?: number
  [key: string]: unknown
}

/** What pino's error serializer logs. */
export interface SerializedError {
  type: string
  message: string
  stack: string
  [key: string]: unknown
}

interface RequestLike {
  method?: string
  url?: string
  headers?: Record<string, string | string[] | undefined>
  host?: string
  ip?: string
  socket?: { remotePort?: number } | null
}

/**
 * The request log serializer: Fastify's default fields, with tokens
 * redacted from the URL. Accepts a Fastify request or a raw Node request.
 */
export function serializeRequest (request: RequestLike): SerializedRequest {
  const version = request.headers?.['accept-version']
  return {
    method: request.method,
    url: typeof request.url === 'string' ? redactUrl(request.url) : request.url,
    version: Array.isArray(version) ? version.join(', ') : version,
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort
  }
}

/**
 * The error log serializer: type, message, stack and the error's own fields
 * like pino's, without `rawPacket` (the raw bytes of an unparsable request,
 * headers and query string included) and with tokens redacted from the text.
 */
export function serializeError (error: Error): SerializedError {
  // Errors made without a stack trace (ours, answering floods) have none: it
  // stays absent, as with pino. Anything that is not an object passes as is.
  return serializeErrorValue(error, new Set()) as SerializedError
}

function serializeErrorValue (error: unknown, seen: Set<object>): unknown {
  if (error === null || typeof error !== 'object') return error
  if (seen.has(error)) return '[Circular]'
  seen.add(error)
  const source = error as Record<string, unknown> & { message?: unknown, stack?: unknown, cause?: unknown, errors?: unknown }
  const serialized: Record<string, unknown> = {
    type: error.constructor?.name ?? 'Object',
    message: typeof source.message === 'string' ? redactText(source.message) : source.message,
    stack: typeof source.stack === 'string' ? redactText(source.stack) : source.stack
  }
  for (const key in source) {
    if (key === 'rawPacket' || Object.hasOwn(serialized, key)) continue
    serialized[key] = serializeField(source[key], seen)
  }
  // Not enumerable on errors built with `{ cause }`, nor on AggregateError.
  if (source.cause !== undefined && !Object.hasOwn(serialized, 'cause')) serialized.cause = serializeField(source.cause, seen)
  if (Array.isArray(source.errors) && !Object.hasOwn(serialized, 'errors')) serialized.errors = source.errors.map((e) => serializeField(e, seen))
  return serialized
}

function serializeField (value: unknown, seen: Set<object>): unknown {
  return value instanceof Error ? serializeErrorValue(value, seen) : value
}

/**
 * Log serializers that keep tokens out of the logs, for the whole app:
 * `Fastify({ logger: { serializers } })`. fastify-fanout's own routes use
 * them whatever the app's logger does.
 */
export const serializers = Object.freeze({ req: serializeRequest, err: serializeError })

/**
 * pino hooks that redact tokens from log messages, such as Fastify's
 * "Route GET:/x?token=... not found": `Fastify({ logger: { serializers, hooks: logHooks } })`.
 */
export const logHooks = Object.freeze({
  logMethod (this: unknown, args: unknown[], method: (...args: unknown[]) => void): void {
    method.apply(this, args.map((arg) => typeof arg === 'string' ? redactText(arg) : arg))
  }
})
