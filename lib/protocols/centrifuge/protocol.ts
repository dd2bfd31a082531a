import type { Envelope } from '../../backplane/types.js'
import type { CloseTable } from '../../core/close-codes.js'
import type { WireProtocol } from '../../core/protocol.js'
import { DisconnectCode } from './codes.js'
import { joinPush, leavePush, messagePush, pubPush, PING } from './replies.js'

/**
 * What the engine's envelopes are on this endpoint: a channel publication
 * is a `pub` push (with its offset and epoch when the channel keeps
 * history), a join/leave notice a `join`/`leave` push, and a message to
 * users or to everyone a `message` push (the SDK's `message` event). Each
 * is built once per envelope and shared by every connection of this
 * protocol.
 */
export const CENTRIFUGE_PROTOCOL: WireProtocol = Object.freeze({
  slot: 1,
  recovers: true,
  encode (envelope: Envelope): Buffer {
    return Buffer.from(encodePush(envelope))
  }
})

export function encodePush (envelope: Envelope): string {
  const { channel } = envelope
  if (channel === undefined) return messagePush(envelope.data.toString())
  if (envelope.presence !== undefined && envelope.info !== undefined) {
    return envelope.presence === 'join' ? joinPush(channel, envelope.info) : leavePush(channel, envelope.info)
  }
  return pubPush(channel, { data: envelope.data.toString(), offset: envelope.offset, epoch: envelope.epoch, info: envelope.info })
}

/** The server's ping; the client answers with the same when the connect reply said `pong: true`. */
export const PING_PAYLOAD = Buffer.from(PING)

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
