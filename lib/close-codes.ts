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
  /** Closed by the application (`fanout.disconnectUser`, `connection.close`). */
  DISCONNECTED: 4000,
  /** The client fell more than `maxBufferedBytes` behind. */
  SLOW_CONSUMER: 4008,
  /** The user already holds `maxConnectionsPerUser` connections. */
  TOO_MANY_USER_CONNECTIONS: 4029
})

/** Codes an application may pass to `close()`: 1000 and 3000-4999. */
export function isApplicationCloseCode (code: unknown): code is number {
  return typeof code === 'number' && Number.isInteger(code) && (code === 1000 || (code >= 3000 && code <= 4999))
}
