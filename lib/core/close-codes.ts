import { InvalidCloseCodeError, InvalidCloseReasonError } from '../errors.js'

/**
 * WebSocket close codes fastify-fanout sends. 1000-1015 are RFC 6455's;
 * 4000-4999 are private-use codes this plugin defines.
 */
export const CloseCode = Object.freeze({
  /** RFC 6455: the server is shutting down; reconnect elsewhere. */
  GOING_AWAY: 1001,
  /** RFC 6455: the client broke the protocol (sent by ws). */
  PROTOCOL_ERROR: 1002,
  /** RFC 6455: a text frame that is not UTF-8 (sent by ws). */
  INVALID_DATA: 1007,
  /** RFC 6455: a frame exceeded `maxPayload` (sent by ws). */
  MESSAGE_TOO_BIG: 1009,
  /** RFC 6455: the instance filled up while this upgrade was in flight; retry. */
  TRY_AGAIN_LATER: 1013,
  /** RFC 6455: the client left a message unfinished for longer than `messageTimeout`. */
  POLICY_VIOLATION: 1008,
  /** Closed by the application (`fanout.disconnectUser`, `connection.close`). */
  DISCONNECTED: 4000,
  /** The token's `exp` has passed: reconnect with a fresh token. */
  TOKEN_EXPIRED: 4001,
  /** The client fell more than `maxBufferedBytes` behind. */
  SLOW_CONSUMER: 4008,
  /** The client sent more frames or bytes per second than the inbound budget allows. */
  INBOUND_LIMIT: 4009,
  /**
   * This instance lost its Redis subscription for a while: messages published
   * meanwhile may not have reached the connection. Reconnect (and refetch state).
   */
  MESSAGES_MISSED: 4011,
  /** The user already holds `maxConnectionsPerUser` connections. */
  TOO_MANY_USER_CONNECTIONS: 4029
})

/** Codes an application may pass to `close()`: 1000 and 3000-4999. */
export function isApplicationCloseCode (code: unknown): code is number {
  return typeof code === 'number' && Number.isInteger(code) && (code === 1000 || (code >= 3000 && code <= 4999))
}

/** A close frame's reason fits in its 125-byte payload after the 2-byte code. */
export const MAX_CLOSE_REASON_BYTES = 123

/** Whether `reason` fits a close frame: a string of at most 123 bytes of UTF-8. */
export function isCloseReason (reason: unknown): reason is string {
  return typeof reason === 'string' && Buffer.byteLength(reason) <= MAX_CLOSE_REASON_BYTES
}

/** Throws the plugin's TypeError for a code or reason an application may not close with. */
export function assertCloseArguments (code: unknown, reason: unknown): void {
  if (!isApplicationCloseCode(code)) throw new InvalidCloseCodeError(code)
  if (!isCloseReason(reason)) throw new InvalidCloseReasonError(MAX_CLOSE_REASON_BYTES)
}

/** Why the server closes a connection on its own, whatever the endpoint's protocol. */
export type ServerCloseReason = 'tokenExpired' | 'inboundLimit' | 'messageUnfinished' | 'slowConsumer' | 'messagesMissed' | 'insufficientState' | 'shutdown' | 'disconnected'

/**
 * An endpoint's close code and reason for each; every endpoint brings its
 * own table. `noPong`: a connection silent for two heartbeat intervals; when
 * absent, its socket is terminated without a close frame (its peer is gone).
 */
export type CloseTable = Readonly<Record<ServerCloseReason, readonly [code: number, reason: string]>> & {
  readonly noPong?: readonly [code: number, reason: string]
}

/** The plain `/ws` endpoint's table. */
export const WS_CLOSES: CloseTable = Object.freeze({
  tokenExpired: [CloseCode.TOKEN_EXPIRED, 'token expired'],
  inboundLimit: [CloseCode.INBOUND_LIMIT, 'inbound budget exceeded'],
  messageUnfinished: [CloseCode.POLICY_VIOLATION, 'message unfinished'],
  slowConsumer: [CloseCode.SLOW_CONSUMER, 'slow consumer'],
  messagesMissed: [CloseCode.MESSAGES_MISSED, 'messages may have been missed: reconnect'],
  insufficientState: [CloseCode.MESSAGES_MISSED, 'messages may have been missed: reconnect'],
  shutdown: [CloseCode.GOING_AWAY, 'server shutting down'],
  disconnected: [CloseCode.DISCONNECTED, 'disconnected by server']
})
