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
