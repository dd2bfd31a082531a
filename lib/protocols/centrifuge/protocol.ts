import type { CloseTable } from '../../core/close-codes.js'
import { DisconnectCode } from './codes.js'

const close = (advice: { code: number, reason: string }): readonly [number, string] => [advice.code, advice.reason]

/** Close codes in the SDK's ranges: the reconnecting ones (3000-3499) where the client should come back. */
export const CENTRIFUGE_CLOSES: CloseTable = Object.freeze({
  tokenExpired: close(DisconnectCode.EXPIRED),
  inboundLimit: close(DisconnectCode.TOO_MANY_REQUESTS),
  messageUnfinished: close(DisconnectCode.BAD_REQUEST),
  slowConsumer: close(DisconnectCode.SLOW),
  messagesMissed: close(DisconnectCode.INSUFFICIENT_STATE),
  insufficientState: close(DisconnectCode.INSUFFICIENT_STATE),
  shutdown: close(DisconnectCode.SHUTDOWN),
  noPong: close(DisconnectCode.NO_PONG),
  disconnected: close(DisconnectCode.FORCE_DISCONNECT)
})
