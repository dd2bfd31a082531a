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
