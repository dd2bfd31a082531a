import { isUtf8 } from 'node:buffer'
import { InvalidMessageError } from '../errors.js'

/**
 * Serializes a message's `data` to the JSON text every protocol splices into
 * its frames: once per message, by the instance that accepted it. Throws
 * InvalidMessageError when `data` has no JSON form (undefined, a function,
 * a BigInt, a cycle).
 */
export function serializeData (data: unknown): Buffer {
  let json: string | undefined
  try {
    json = JSON.stringify(data)
  } catch (err) {
    throw new InvalidMessageError((err as Error).message, { cause: err })
  }
  if (json === undefined) throw new InvalidMessageError(`${typeof data} has no JSON form`)
  return Buffer.from(json)
}

/** A publication's data as it travels: JSON text, or bytes that are not JSON (`binary`). */
export interface PublicationData {
  readonly bytes: Buffer
  readonly binary: boolean
  /** The JSON value the bytes hold; undefined when `binary`. */
  readonly value?: unknown
}

/**
 * Data given as bytes (a Uint8Array from the application, `b64data` from a
 * service, a Protobuf client's payload): JSON text when the bytes are JSON,
 * so that JSON clients receive them too; otherwise binary, for Protobuf
 * clients only. Either way the bytes travel untouched, except that line
 * feeds in JSON text (whitespace between its tokens, never inside a string)
 * become spaces: a message to Redis and a JSON frame keep one per line.
 * Throws InvalidMessageError for empty bytes (Protobuf cannot tell them
 * from none).
 */
export function dataFromBytes (data: Uint8Array): PublicationData {
  if (data.length === 0) throw new InvalidMessageError('bytes must not be empty')
  // A copy: the caller may reuse its buffer once publish returns, and history keeps these.
  const bytes = Buffer.from(data)
  const json = jsonIn(bytes)
  if (json === undefined) return { bytes, binary: true }
  return { bytes: bytes.includes(NEWLINE) ? Buffer.from(bytes.map((byte) => byte === NEWLINE ? SPACE : byte)) : bytes, binary: false, value: json.value }
}

const NEWLINE = 0x0a
const SPACE = 0x20

/** The JSON value that `bytes` hold as UTF-8 text, or undefined when they hold none. */
export function jsonIn (bytes: Uint8Array): { readonly value: unknown } | undefined {
  if (!isUtf8(bytes)) return undefined
  try {
    return { value: JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString()) }
  } catch {
    return undefined
  }
}

/**
 * Deepest nesting of arrays and objects in a message's `data`, from a
 * service or a client. JSON.parse takes any depth, but serializing it again
 * for the clients recurses, and data nested some thousands deep would
 * exhaust the stack.
 */
export const MAX_DATA_DEPTH = 100

/** Nesting depth of a parsed JSON value (a scalar is 0), counted no further than `limit` + 1. */
export function depthOf (value: unknown, limit: number): number {
  // Iterative, so that measuring a deep value cannot exhaust the stack either.
  let deepest = 0
  const stack: Array<[unknown, number]> = [[value, 0]]
  while (stack.length > 0) {
    const [current, depth] = stack.pop() as [unknown, number]
    if (current === null || typeof current !== 'object') continue
    if (depth + 1 > deepest) deepest = depth + 1
    if (deepest > limit) return deepest
    for (const child of Object.values(current)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1])
    }
  }
  return deepest
}
