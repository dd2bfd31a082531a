/**
 * The codes of the Centrifugo client protocol (v2) this endpoint sends: error
 * codes in command replies, unsubscribe codes in `unsubscribe` pushes, and
 * disconnect codes in WebSocket close frames. Numbers, messages and reasons
 * are Centrifugo's (docs `server/codes.md`; the Go library's `errors.go`,
 * `disconnect.go` and `unsubscribe.go`), so logs and client code written for
 * Centrifugo read the same here.
 */

/** An error in a command reply: `{"id":N,"error":{"code","message","temporary"?}}`. */
export interface ReplyError {
  readonly code: number
  readonly message: string
  /**
   * The client retries the command (reconnects, for `connect`). centrifuge-js
   * decides only from this flag (or a code below 100): the server must set it.
   */
  readonly temporary: boolean
}

/** A reason to end a subscription or a connection, with what the client does next. */
export interface Advice {
  readonly code: number
  /** Plain words: never JSON-parsable (the SDK would read a JSON reason as advice), at most 32 bytes. */
  readonly reason: string
}

function error (code: number, message: string, temporary = false): ReplyError {
  return Object.freeze({ code, message, temporary })
}

/** Error codes of command replies (100-1999; applications use 400-1999). */
export const ErrorCode = Object.freeze({
  INTERNAL: error(100, 'internal server error', true),
  UNAUTHORIZED: error(101, 'unauthorized'),
  UNKNOWN_CHANNEL: error(102, 'unknown channel'),
  PERMISSION_DENIED: error(103, 'permission denied'),
  METHOD_NOT_FOUND: error(104, 'method not found'),
  ALREADY_SUBSCRIBED: error(105, 'already subscribed'),
  LIMIT_EXCEEDED: error(106, 'limit exceeded'),
  BAD_REQUEST: error(107, 'bad request'),
  NOT_AVAILABLE: error(108, 'not available'),
  /** centrifuge-js fetches a new token (`getToken`) and retries, for `connect` and `subscribe`. */
  TOKEN_EXPIRED: error(109, 'token expired'),
  EXPIRED: error(110, 'expired'),
  TOO_MANY_REQUESTS: error(111, 'too many requests', true),
  /** A subscribe asked to recover (`flag` bit 2) and recovery failed. */
  UNRECOVERABLE_POSITION: error(112, 'unrecoverable position'),
  CONCURRENT_PAGINATION: error(113, 'concurrent pagination', true)
})

/** An unsubscribe push's code: 2000-2999, and the client resubscribes from 2500 on. */
export interface UnsubscribeAdvice extends Advice {
  readonly resubscribe: boolean
}

function unsubscribe (code: number, reason: string): UnsubscribeAdvice {
  return Object.freeze({ code, reason, resubscribe: code >= 2500 })
}

/** Codes of the `unsubscribe` push. */
export const UnsubscribeCode = Object.freeze({
  /** The server ended the subscription; final. */
  SERVER: unsubscribe(2000, 'server unsubscribe'),
  /** Publications may have been lost: the client resubscribes and recovers. */
  INSUFFICIENT_STATE: unsubscribe(2500, 'insufficient state'),
  /** The subscription token expired and was not refreshed: the client resubscribes with a new one. */
  EXPIRED: unsubscribe(2501, 'subscription expired'),
  /** The client drops its subscription token and stream position, then resubscribes (centrifuge-js, Go library; not in the docs' list). */
  STATE_INVALIDATED: unsubscribe(2502, 'state invalidated')
})

/** A disconnect: the WebSocket close code and reason (or a `disconnect` push), and whether the client reconnects. */
export interface DisconnectAdvice extends Advice {
  readonly reconnect: boolean
}

/** centrifuge-js reconnects unless the code is in 3500-3999 or 4500-4999 (and the reason is plain words). */
export function isTerminalDisconnect (code: number): boolean {
  return (code >= 3500 && code <= 3999) || (code >= 4500 && code <= 4999)
}

function disconnect (code: number, reason: string): DisconnectAdvice {
  return Object.freeze({ code, reason, reconnect: !isTerminalDisconnect(code) })
}

/**
 * Disconnect codes (3000-4999; applications use 4000-4999). Over a
 * bidirectional WebSocket they go in the close frame, as Centrifugo does.
 */
export const DisconnectCode = Object.freeze({
  CONNECTION_CLOSED: disconnect(3000, 'connection closed'),
  SHUTDOWN: disconnect(3001, 'shutdown'),
  INTERNAL: disconnect(3004, 'internal server error'),
  /** The connection's token expired and was not refreshed in time. */
  EXPIRED: disconnect(3005, 'connection expired'),
  SUBSCRIPTION_EXPIRED: disconnect(3006, 'subscription expired'),
  /** The client read too slowly: its queue overflowed. */
  SLOW: disconnect(3008, 'slow'),
  WRITE_ERROR: disconnect(3009, 'write error'),
  /** Publications may have been lost on a positioned channel: reconnect and recover. */
  INSUFFICIENT_STATE: disconnect(3010, 'insufficient state'),
  FORCE_RECONNECT: disconnect(3011, 'force reconnect'),
  /** The client did not answer the server's `{}` ping in time. */
  NO_PONG: disconnect(3012, 'no pong'),
  TOO_MANY_REQUESTS: disconnect(3013, 'too many requests'),
  /** The client drops its token and every stream position, then reconnects. */
  STATE_INVALIDATED: disconnect(3014, 'state invalidated'),
  INVALID_TOKEN: disconnect(3500, 'invalid token'),
  /** A frame or command broke the protocol. */
  BAD_REQUEST: disconnect(3501, 'bad request'),
  /** No `connect` command came in time after the upgrade. */
  STALE: disconnect(3502, 'stale'),
  /** The application disconnected the client for good. */
  FORCE_DISCONNECT: disconnect(3503, 'force disconnect'),
  CONNECTION_LIMIT: disconnect(3504, 'connection limit'),
  CHANNEL_LIMIT: disconnect(3505, 'channel limit'),
  /** The client spoke a protocol or format the endpoint does not serve. */
  INAPPROPRIATE_PROTOCOL: disconnect(3506, 'inappropriate protocol'),
  PERMISSION_DENIED: disconnect(3507, 'permission denied'),
  NOT_AVAILABLE: disconnect(3508, 'not available'),
  TOO_MANY_ERRORS: disconnect(3509, 'too many errors')
})

/** Centrifugo's limit for a disconnect reason; well under a close frame's 123 bytes. */
export const MAX_REASON_BYTES = 32

/**
 * Whether `reason` is safe as a close or push reason: a non-empty string of at
 * most 32 bytes that `JSON.parse` rejects. centrifuge-js treats an empty close
 * reason as "reconnect" whatever the code, and any JSON-parsable one as
 * reconnect advice (so `"123"` or `"true"` would end the client for good).
 */
export function isPlainReason (reason: unknown): reason is string {
  if (typeof reason !== 'string' || reason.length === 0 || Buffer.byteLength(reason) > MAX_REASON_BYTES) return false
  try {
    JSON.parse(reason)
    return false
  } catch {
    return true // not JSON: what we want
  }
}
