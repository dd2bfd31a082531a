import type { Envelope } from '../../backplane/types.js'
import type { WireProtocol } from '../../core/protocol.js'

// The /ws wire protocol, server to client: every message is one JSON text frame
//   {"type":"message","id":"<id>","data":<data>}
// built once per message around the data's JSON, then the same bytes go to
// every /ws connection. Channel publications are not part of it.

const OPEN = Buffer.from('{"type":"message","id":')
const DATA = Buffer.from(',"data":')
const CLOSE = Buffer.from('}')

export const PLAIN_PROTOCOL: WireProtocol = Object.freeze({
  slot: 0,
  binary: false,
  recovers: false,
  encode (envelope: Envelope): Buffer | undefined {
    if (envelope.channel !== undefined) return undefined
    return Buffer.concat([OPEN, Buffer.from(JSON.stringify(envelope.id)), DATA, envelope.data, CLOSE])
  }
})
