import { InvalidMessageError } from '../../errors.js'

// The wire protocol, server to client: every message is one JSON text frame
//   {"type":"message","id":"<id>","data":<data>}
// Built once per message, then the same bytes go to every connection.

/**
 * Serializes `data` into the frame payload clients receive. Throws
 * InvalidMessageError when `data` has no JSON form (undefined, a function,
 * a BigInt, a cycle).
 */
export function encodeMessage (id: string, data: unknown): Buffer {
  let json: string | undefined
  try {
    json = JSON.stringify(data)
  } catch (err) {
    throw new InvalidMessageError((err as Error).message, { cause: err })
  }
  if (json === undefined) throw new InvalidMessageError(`${typeof data} has no JSON form`)
  return Buffer.from('{"type":"message","id":' + JSON.stringify(id) + ',"data":' + json + '}')
}
