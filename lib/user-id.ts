import { InvalidArgumentError } from './errors.js'

// What a user id is, in one place: the token check, the broadcast route's
// schema and the decorator all use these limits, so a user who can connect
// can always be targeted, and the other way round.

/** Longest user id, in characters (code points, as JSON Schema counts them). */
export const MAX_USER_ID_LENGTH = 512
/** Most user ids in one `users` or `except` list. */
export const MAX_USER_IDS = 10_000

/** Why `value` is not a valid user id, or undefined when it is one. */
export function userIdProblem (value: unknown): string | undefined {
  if (typeof value !== 'string') return `must be a string, got ${describe(value)}`
  if (value === '') return 'must not be empty'
  if (characterCount(value) > MAX_USER_ID_LENGTH) return `must be at most ${MAX_USER_ID_LENGTH} characters`
  return undefined
}

const SURROGATE_PAIR = /[\uD800-\uDBFF][\uDC00-\uDFFF]/g

// Counts code points, as Ajv's maxLength does (a pair of UTF-16 surrogates is
// one character), so the route and the token check agree on every id.
function characterCount (value: string): number {
  if (value.length <= MAX_USER_ID_LENGTH) return value.length // cannot hold more code points
  return value.length - (value.match(SURROGATE_PAIR)?.length ?? 0)
}

/** Throws FST_FANOUT_INVALID_ARGUMENT unless `value` is a user id. */
export function assertUserId (name: string, value: unknown): asserts value is string {
  const problem = userIdProblem(value)
  if (problem !== undefined) throw new InvalidArgumentError(name, `${problem} (a user id is a non-empty string of at most ${MAX_USER_ID_LENGTH} characters)`)
}

/** Throws FST_FANOUT_INVALID_ARGUMENT unless `value` is undefined or an array of user ids. */
export function assertUserIds (name: string, value: unknown): asserts value is readonly string[] | undefined {
  if (value === undefined) return
  // A string would be iterated character by character: 'alice' would mean a, l, i, c, e.
  if (!Array.isArray(value)) throw new InvalidArgumentError(name, `must be an array of user ids, got ${describe(value)}`)
  if (value.length > MAX_USER_IDS) throw new InvalidArgumentError(name, `must hold at most ${MAX_USER_IDS} user ids, got ${value.length}`)
  for (let i = 0; i < value.length; i++) assertUserId(`${name}[${i}]`, value[i])
}

const TARGET_KEYS = new Set(['users', 'except'])

/** Throws FST_FANOUT_INVALID_ARGUMENT unless `value` is a broadcast target: `{ users?, except? }`. */
export function assertTarget (value: unknown): asserts value is { users?: readonly string[], except?: readonly string[] } {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidArgumentError('target', `must be an object such as { users: ['alice'] }, got ${describe(value)}`)
  }
  // As the route refuses unknown properties: a typo such as `user` must not
  // turn a message for one user into a broadcast to everyone.
  const unknown = Object.keys(value).find((key) => !TARGET_KEYS.has(key))
  if (unknown !== undefined) throw new InvalidArgumentError('target', `has an unknown property ${JSON.stringify(unknown)}: use \`users\` and \`except\``)
  const { users, except } = value as { users?: unknown, except?: unknown }
  assertUserIds('target.users', users)
  assertUserIds('target.except', except)
}

function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return `${typeof value} ${String(value)}`
  return typeof value
}
