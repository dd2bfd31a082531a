import type { FastifyReply, FastifyRequest } from 'fastify'
import { ScopeForbiddenError, TokenExpiredError, TokenInvalidError, TokenMissingError } from './errors.js'
import type { TokenClaims } from './types.js'
import { userIdProblem } from './user-id.js'

/** The subprotocol fastify-fanout speaks; browsers offer it next to their token. */
export const SUBPROTOCOL = 'fanout.v1'
/** Browsers cannot set headers on a WebSocket: they offer `bearer.<jwt>` as a subprotocol. */
export const TOKEN_PROTOCOL_PREFIX = 'bearer.'
/** Name of the request decorator our @fastify/jwt registration adds. */
export const JWT_VERIFY = 'fanoutJwtVerify'

/** @fastify/jwt's request verifier (the JWT_VERIFY decorator), called with a request as `this`. */
export type RequestVerifier = (this: unknown) => Promise<unknown>

const kCommandToken = Symbol('fanout.commandToken')

/**
 * What @fastify/jwt verifies a token sent inside a protocol (Centrifugo's
 * `connect` and `refresh`) as: a request-like object holding the token,
 * which extractToken returns first. Key providers and `trusted` callbacks
 * see the upgrade request's headers.
 */
interface TokenCarrier {
  readonly headers: FastifyRequest['headers']
  readonly query: Record<string, never>
  readonly ws: true
  readonly [kCommandToken]: string
  readonly [JWT_VERIFY]: RequestVerifier
}

const BEARER_SCHEME = /^\s*Bearer(?:\s|$)/i
const BEARER = /^\s*Bearer +(\S+)\s*$/i

/**
 * Finds the token of a request: the `Authorization: Bearer` header; for a
 * WebSocket upgrade also the `token` query parameter or a `bearer.<jwt>`
 * subprotocol. Another Authorization scheme (browsers resend cached Basic
 * credentials) does not hide those. Used as @fastify/jwt's `extractToken`.
 */
export function extractToken (request: FastifyRequest): string | undefined {
  const commandToken = (request as Partial<TokenCarrier>)[kCommandToken]
  if (commandToken !== undefined) return commandToken
  const authorization = request.headers.authorization
  if (authorization !== undefined && BEARER_SCHEME.test(authorization)) return BEARER.exec(authorization)?.[1]
  if (!request.ws) return undefined

  const query = request.query as Record<string, unknown> | undefined
  if (typeof query?.token === 'string' && query.token !== '') return query.token

  const protocols = request.headers['sec-websocket-protocol']
  if (protocols !== undefined) {
    for (const protocol of protocols.split(',')) {
      const trimmed = protocol.trim()
      if (trimmed.startsWith(TOKEN_PROTOCOL_PREFIX) && trimmed.length > TOKEN_PROTOCOL_PREFIX.length) {
        return trimmed.slice(TOKEN_PROTOCOL_PREFIX.length)
      }
    }
  }
  return undefined
}

/** Whether the request's Authorization header uses the Bearer scheme (well-formed or not). */
export function hasBearerScheme (request: FastifyRequest): boolean {
  const authorization = request.headers.authorization
  return authorization !== undefined && BEARER_SCHEME.test(authorization)
}

// A Bearer header the client meant but got wrong: its mistake is named, and
// never quietly replaced by a token from elsewhere in the request.
function hasMalformedBearer (request: FastifyRequest): boolean {
  const authorization = request.headers.authorization
  return authorization !== undefined && BEARER_SCHEME.test(authorization) && !BEARER.test(authorization)
}

/**
 * ws `handleProtocols`: answer with our subprotocol, never with the token one
 * (that would echo the secret back). Other routes' subprotocols still work.
 */
export function selectProtocol (protocols: Set<string>): string | false {
  if (protocols.has(SUBPROTOCOL)) return SUBPROTOCOL
  // Centrifugo's SDKs: JSON when a client offers both (the endpoint speaks
  // the one chosen here).
  if (protocols.has('centrifuge-json')) return 'centrifuge-json'
  if (protocols.has('centrifuge-protobuf')) return 'centrifuge-protobuf'
  for (const protocol of protocols) {
    if (!protocol.startsWith(TOKEN_PROTOCOL_PREFIX)) return protocol
  }
  return false
}

// fast-jwt codes that mean the server could not verify a token (its own
// options or key), not that the token is bad: those stay 500s.
const SERVER_SIDE_CODES = new Set(['FAST_JWT_INVALID_OPTION', 'FAST_JWT_KEY_FETCHING_ERROR', 'FAST_JWT_SIGN_ERROR'])
// Claims whose time checks must not be skipped by a value that is not a date.
const DATE_CLAIMS = ['exp', 'nbf'] as const
// Every time claim fast-jwt formats as a date when a check fails.
const TIME_CLAIMS = [...DATE_CLAIMS, 'iat'] as const
// The most seconds from 1970 a JavaScript Date holds (year 275760).
const MAX_DATE_SECONDS = 8.64e12

/** Whether `value` is a NumericDate (RFC 7519) that JavaScript can hold as a Date. */
function isDateValue (value: unknown): value is number {
  return typeof value === 'number' && Math.abs(value) <= MAX_DATE_SECONDS
}

/**
 * Verifies the request's token through @fastify/jwt and returns its claims.
 * Every problem with the token is a 401 (FST_FANOUT_TOKEN_MISSING, _INVALID
 * with the reason, or _EXPIRED) with a `WWW-Authenticate` header (RFC 6750);
 * only a failing key provider is a 500.
 */
export async function verifyRequest (request: FastifyRequest, reply: FastifyReply): Promise<TokenClaims> {
  if (hasMalformedBearer(request)) throw invalidToken(reply, 'the Authorization header is not `Bearer <token>`')
  const token = extractToken(request)
  if (token === undefined) {
    reply.header('www-authenticate', 'Bearer')
    throw new TokenMissingError()
  }
  const verify = (request as unknown as Record<string, RequestVerifier>)[JWT_VERIFY] as RequestVerifier
  return await verifyWith(verify, request, token, reply)
}

/**
 * Verifies a token a client sent inside the protocol, with the same
 * @fastify/jwt registration and options as upgrades and routes. Throws
 * FST_FANOUT_TOKEN_INVALID or _EXPIRED as verifyRequest does.
 */
export async function verifyToken (verify: RequestVerifier, token: string, headers: FastifyRequest['headers']): Promise<TokenClaims> {
  // @fastify/jwt's verifier calls itself again on the request it is given.
  const carrier: TokenCarrier = { headers, query: {}, ws: true, [kCommandToken]: token, [JWT_VERIFY]: verify }
  return await verifyWith(verify, carrier, token, undefined)
}

async function verifyWith (verify: RequestVerifier, request: unknown, token: string, reply: FastifyReply | undefined): Promise<TokenClaims> {
  let claims: unknown
  try {
    claims = await verify.call(request)
  } catch (err) {
    throw authenticationError(err, reply, token)
  }
  if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) {
    throw invalidToken(reply, 'its payload is not a JSON object')
  }
  for (const claim of DATE_CLAIMS) {
    // JSON numbers such as 1e400 parse to Infinity, which fast-jwt's checks
    // accept as an `exp` that never comes; an app may also turn those checks
    // off (ignoreExpiration). Whoever reads `exp` later gets a real date.
    if (Object.hasOwn(claims, claim) && !isDateValue((claims as TokenClaims)[claim])) {
      throw invalidToken(reply, dateReason(claim))
    }
  }
  return claims as TokenClaims
}

/** A 401 FST_FANOUT_TOKEN_INVALID saying why, with its WWW-Authenticate header set. */
export function invalidToken (reply: FastifyReply | undefined, reason: string): Error {
  reply?.header('www-authenticate', 'Bearer error="invalid_token"')
  return new TokenInvalidError(reason)
}

// Classified by error code, not by status: @fastify/jwt wraps only some of
// fast-jwt's errors into its own 401s and passes the others on as they are
// (no status, so they would be 500s): a disallowed algorithm, a token not
// active yet, a claim of the wrong type, a payload that is not an object,
// an unknown `crit` header.
function authenticationError (err: unknown, reply: FastifyReply | undefined, token: string): Error {
  const code = (err as { code?: unknown } | null)?.code
  if (code === 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED' || code === 'FAST_JWT_EXPIRED') {
    reply?.header('www-authenticate', 'Bearer error="invalid_token", error_description="token expired"')
    return new TokenExpiredError()
  }
  // FST_JWT_*: @fastify/jwt's errors, all about the request's token.
  // FAST_JWT_*: fast-jwt's, about the token unless the server's own doing.
  if (typeof code === 'string' && (code.startsWith('FST_JWT_') || (code.startsWith('FAST_JWT_') && !SERVER_SIDE_CODES.has(code)))) {
    return invalidToken(reply, invalidReason((err as Error).message))
  }
  // fast-jwt writes the time of a failed check with Date#toISOString, which
  // throws a RangeError (no code) for a time no Date holds: an `nbf` of
  // 1e300 or 1e400, an `exp` of -1e300.
  const outOfRange = dateClaimOutOfRange(token)
  if (outOfRange !== undefined) return invalidToken(reply, dateReason(outOfRange))
  return err as Error // a key provider or `trusted` callback that failed: 500, logged
}

function dateReason (claim: string): string {
  return `the \`${claim}\` claim must be a number of seconds within the range of dates`
}

// The first date claim of the token's (unverified) payload that is a number no Date holds.
function dateClaimOutOfRange (token: string): string | undefined {
  let claims: unknown
  try {
    claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString())
  } catch {
    return undefined
  }
  if (claims === null || typeof claims !== 'object') return undefined
  return TIME_CLAIMS.find((claim) => {
    const value = (claims as TokenClaims)[claim]
    return typeof value === 'number' && !isDateValue(value)
  })
}

function invalidReason (message: unknown): string {
  if (typeof message !== 'string') return 'rejected by the verifier'
  // @fastify/jwt prefixes fast-jwt's own explanation; keep the explanation.
  // Some quote the token's header (`crit` names): keep the answer short.
  const reason = message.replace(/^Authorization token is invalid:\s*/i, '').replace(/\.$/, '').slice(0, 200)
  return reason === '' ? 'rejected by the verifier' : reason.charAt(0).toLowerCase() + reason.slice(1)
}

/** The user id a token names, from `claim`, or why it names none. */
export function userIdOf (claims: TokenClaims, claim: string): { userId: string } | { problem: string } {
  const value = claims[claim]
  if (value === undefined || value === '' || value === null) return { problem: `no \`${claim}\` claim naming the user` }
  if (typeof value === 'number') {
    // Above 2^53 distinct ids parse to the same number: 2^53 + 1 would be 2^53's user.
    if (Number.isSafeInteger(value)) return { userId: String(value) }
    return { problem: `the \`${claim}\` claim is a number but not an integer up to 2^53 - 1 (send large ids as strings)` }
  }
  const problem = userIdProblem(value)
  if (problem !== undefined) return { problem: `the \`${claim}\` claim ${problem}` }
  return { userId: value as string }
}

/**
 * Verifies a service's request (`POST /broadcast`, the server API): its
 * token as verifyRequest does, then `scope` in `scopeClaim`, or a 403
 * FST_FANOUT_SCOPE_FORBIDDEN with the `insufficient_scope` challenge.
 */
export async function verifyServiceRequest (request: FastifyRequest, reply: FastifyReply, scopeClaim: string, scope: string): Promise<TokenClaims> {
  const claims = await verifyRequest(request, reply)
  if (!hasScope(claims, scopeClaim, scope)) {
    reply.header('www-authenticate', `Bearer error="insufficient_scope", scope="${scope}"`)
    throw new ScopeForbiddenError(scope)
  }
  return claims
}

/** Whether the token grants `scope`: a space-separated string (OAuth 2) or an array of names. */
export function hasScope (claims: TokenClaims, claim: string, scope: string): boolean {
  const value = claims[claim]
  if (typeof value === 'string') return value.split(' ').includes(scope)
  if (Array.isArray(value)) return value.includes(scope)
  return false
}
