import type { Envelope } from '../../backplane/types.js'
import type { WireProtocol } from '../../core/protocol.js'
import type { ClientCodec } from './codec.js'
import { CommandParser } from './commands.js'
import * as replies from './replies.js'

/**
 * What the engine's envelopes are for JSON clients: a channel publication
 * is a `pub` push (with its offset and epoch when the channel keeps
 * history), a join/leave notice a `join`/`leave` push, and a message to
 * users or to everyone a `message` push (the SDK's `message` event). Each
 * is built once per envelope and shared by every JSON connection. A
 * publication of bytes that are not JSON has no form here (counted as
 * dropped, `unencodable`).
 */
export const JSON_WIRE: WireProtocol = Object.freeze({
  slot: 1,
  binary: false,
  recovers: true,
  encode (envelope: Envelope): Buffer | undefined {
    if (envelope.binary === true) return undefined
    return Buffer.from(encodePush(envelope))
  }
})

function encodePush (envelope: Envelope): string {
  const { channel } = envelope
  if (channel === undefined) return replies.messagePush(envelope.data.toString())
  if (envelope.presence !== undefined && envelope.info !== undefined) {
    return envelope.presence === 'join' ? replies.joinPush(channel, envelope.info) : replies.leavePush(channel, envelope.info)
  }
  return replies.pubPush(channel, { data: envelope.data.toString(), offset: envelope.offset, epoch: envelope.epoch, info: envelope.info })
}

const text = (payload: string): Buffer => Buffer.from(payload)

/** The JSON codec of an endpoint (its parser compiles a validator per method: build one per endpoint). */
export function createJsonCodec (parser = new CommandParser()): ClientCodec {
  return Object.freeze({
    name: 'json',
    wire: JSON_WIRE,
    ping: text(replies.PING),
    parse (data: Buffer, isBinary: boolean) {
      if (isBinary) return { ok: false, reason: 'binary frame on the JSON protocol' } as const
      return parser.parse(data.toString())
    },
    reply: (id, method, result) => text(replies.reply(id, method, result as replies.Result<typeof method> | undefined)),
    errorReply: (id, error) => text(replies.errorReply(id, error)),
    connectResult: replies.connectResult,
    subscribeResult: replies.subscribeResult,
    historyResult: replies.historyResult,
    presenceResult: replies.presenceResult,
    presenceStatsResult: replies.presenceStatsResult,
    refreshResult: replies.refreshResult,
    subRefreshResult: replies.subRefreshResult,
    rpcResult: replies.rpcResult,
    unsubscribePush: (channel, advice) => text(replies.unsubscribePush(channel, advice)),
    subscribePush: (channel, fields) => text(replies.subscribePush(channel, fields))
  } satisfies ClientCodec)
}
