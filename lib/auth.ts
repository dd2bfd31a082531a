import type { FastifyReply, FastifyRequest } from 'fastify'
import { TokenExpiredError, TokenInvalidError, TokenMissingError } from './errors.js'
import type { TokenClaims } from './types.js'

/** The subprotocol fastify-fanout speaks; browsers offer it next to their token. */
export const SUBPROTOCOL = 'fanout.v1'
/** Browsers cannot set headers on a WebSocket: they offer `bearer.<jwt>` as a subprotocol. */
export const TOKEN_PROTOCOL_PREFIX = 'bearer.'
/** Name of the request decorator our @fastify/jwt registration adds. */
export const JWT_VERIFY = 'fanoutJwtVerify'

const BEARER = /^Bearer +(\S+)\s*$/i

/**
 * Finds the token of a request: the `Authorization: Bearer` header; for a
 * WebSocket upgrade also the `token` query parameter or a `bearer.<jwt>`
 * subprotocol. Used as @fastify/jwt's `extractToken`.
 */
export function extractToken (request: FastifyRequest): string | undefined {
  const authorization = request.headers.authorization
  if (authorization !== undefined) return BEARER.exec(authorization)?.[1]
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

/**
 * ws `handleProtocols`: answer with our subprotocol, never with the token one
 * (that would echo the secret back). Other routes' subprotocols still work.
 */
export function selectProtocol (protocols: Set<string>): string | false {
  if (protocols.has(SUBPROTOCOL)) return SUBPROTOCOL
  for (const protocol of protocols) {
    if (!protocol.startsWith(TOKEN_PROTOCOL_PREFIX)) return protocol
  }
  return false
}

/**
 * Verifies the request's token through @fastify/jwt and returns its claims.
 * Failures become fastify-fanout errors with a specific message and a
 * `WWW-Authenticate` header (RFC 6750).
 */
export async function verifyRequest (request: FastifyRequest, reply: FastifyReply): Promise<TokenClaims> {
  if (extractToken(request) === undefined) {
    reply.header('www-authenticate', 'Bearer')
    throw new TokenMissingError()
  }
  const verify = (request as unknown as Record<string, () => Promise<unknown>>)[JWT_VERIFY] as () => Promise<unknown>
  let claims: unknown
  try {
    claims = await verify.call(request)
  } catch (err) {
    throw authenticationError(err as { code?: string, statusCode?: number, message: string }, reply)
  }
  if (claims === null || typeof claims !== 'object') {
    reply.header('www-authenticate', 'Bearer error="invalid_token"')
    throw new TokenInvalidError('its payload is not a JSON object')
  }
  return claims as TokenClaims
}

function authenticationError (err: { code?: string, statusCode?: number, message: string }, reply: FastifyReply): Error {
  if (err.code === 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED') {
    reply.header('www-authenticate', 'Bearer error="invalid_token", error_description="token expired"')
    return new TokenExpiredError()
  }
  // Anything else @fastify/jwt answers with 400/401 is a token the client
  // must replace: malformed, badly signed, unsigned, wrong claims, untrusted.
  if (err.statusCode === 400 || err.statusCode === 401) {
    reply.header('www-authenticate', 'Bearer error="invalid_token"')
    return new TokenInvalidError(invalidReason(err.message))
  }
  return err as Error // a server-side failure (e.g. a key provider): 500, logged
}

function invalidReason (message: string): string {
  // @fastify/jwt prefixes fast-jwt's own explanation; keep the explanation.
  const reason = message.replace(/^Authorization token is invalid:\s*/i, '').replace(/\.$/, '')
  return reason === '' ? 'rejected by the verifier' : reason.charAt(0).toLowerCase() + reason.slice(1)
}

/** The user id a token names, from `claim`; undefined when absent or not a string or number. */
export function userIdOf (claims: TokenClaims, claim: string): string | undefined {
  const value = claims[claim]
  if (typeof value === 'string' && value !== '') return value
  if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  return undefined
}

/** Whether the token grants `scope`: a space-separated string (OAuth 2) or an array of names. */
export function hasScope (claims: TokenClaims, claim: string, scope: string): boolean {
  const value = claims[claim]
  if (typeof value === 'string') return value.split(' ').includes(scope)
  if (Array.isArray(value)) return value.includes(scope)
  return false
}
