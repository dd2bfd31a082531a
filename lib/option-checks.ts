import { distance } from 'fastest-levenshtein'
import { InvalidOptionError } from './errors.js'

// The checks options go through: each throws InvalidOptionError with a
// message that names the option and says what it takes.

export function routePath (name: string, value: unknown): string {
  if (typeof value !== 'string' || !value.startsWith('/')) {
    throw new InvalidOptionError(name, `must be a path starting with '/', got ${JSON.stringify(value)}`)
  }
  return value
}

export function boolean (name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new InvalidOptionError(name, `must be true or false, got ${JSON.stringify(value)}`)
  return value
}

export function nonEmptyString (name: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') {
    throw new InvalidOptionError(name, `must be a non-empty string, got ${JSON.stringify(value)}`)
  }
  return value
}

export function integer (name: string, value: unknown, min: number, max: number, unit: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(name, `must be an integer number of ${unit} from ${min} to ${max}, got ${JSON.stringify(value)}`)
  }
  return value
}

/** Throws unless the option `name` is an object whose names are all in `known`; `expected` says what it takes. */
export function optionObject<T extends object> (name: string, value: unknown, known: Record<keyof T, true>, expected: string): asserts value is T {
  if (value === null || typeof value !== 'object') throw new InvalidOptionError(name, expected)
  knownNames(name + '.', value, Object.keys(known))
}

/** Refuses a name of `value` that is not in `known` (a typo would otherwise be silently ignored). */
export function knownNames (prefix: string, value: object, known: readonly string[]): void {
  for (const name of Object.keys(value)) {
    if (known.includes(name)) continue
    const suggestion = closestName(name, known)
    const hint = suggestion === undefined ? `the options are ${known.join(', ')}` : `did you mean \`${prefix}${suggestion}\`?`
    throw new InvalidOptionError(prefix + name, `is unknown; ${hint}`)
  }
}

// The known name closest to a misspelt one (at most a few edits away), for the error message.
function closestName (name: string, known: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Math.min(3, Math.floor(name.length / 2))
  for (const candidate of known) {
    const edits = candidate.toLowerCase() === name.toLowerCase() ? 0 : distance(name, candidate)
    if (edits <= bestDistance) {
      best = candidate
      bestDistance = edits
    }
  }
  return best
}
