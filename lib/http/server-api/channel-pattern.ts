// The `pattern` of the server API's `channels` method, with the syntax of
// the glob library Centrifugo matches it with (gobwas/glob, no separators):
//   *       any characters, none included
//   ?       one character
//   [abc]   one of these; [a-z] a range; [!abc] and [!a-z] anything else
//   {a,b*}  one of these patterns (nesting allowed)
//   \x      x itself
// Everything else is itself. Path-oriented JavaScript globs (picomatch,
// minimatch) read `/`, a leading `!` and extglobs in their own way, and
// would match channel names differently than Centrifugo does.
//
// Every instance runs the pattern over every channel it holds, so matching
// must not backtrack: a RegExp built from `*a*a*a*a*a*b` takes seconds on one
// 100-character channel. The pattern becomes a small automaton instead, run
// over the channel with a set of live states: time grows with pattern length
// times channel length, whatever the pattern.

/** Longest pattern accepted: bounds the automaton (and the work per channel). */
export const MAX_PATTERN_LENGTH = 512

type CharTest = (char: string) => boolean

/** What a pattern is made of: a character of some kind, any run of characters, or alternatives. */
type Piece = { kind: 'char', test: CharTest } | { kind: 'star' } | { kind: 'either', options: Piece[][] }

/** A state consumes one character that passes `test`, or (without one) moves on for free. */
interface State {
  test: CharTest | undefined
  next: number[]
}

const ACCEPT = 0

/** A matcher for `pattern`, or why it is not one. */
export function compileChannelPattern (pattern: string): ((channel: string) => boolean) | { problem: string } {
  const chars = [...pattern]
  if (chars.length > MAX_PATTERN_LENGTH) return { problem: `it is longer than ${MAX_PATTERN_LENGTH} characters` }
  let pieces: Piece[]
  try {
    pieces = parse(chars)
  } catch (err) {
    return { problem: (err as Error).message }
  }
  const states: State[] = [{ test: undefined, next: [] }]
  const start = build(states, pieces, ACCEPT)
  return (channel) => run(states, start, channel)
}

function parse (chars: readonly string[]): Piece[] {
  let i = 0

  // Reads up to the end, or (inside braces) to the `,` or `}` that ends an alternative.
  function sequence (inBraces: boolean): Piece[] {
    const pieces: Piece[] = []
    while (i < chars.length) {
      const char = chars[i] as string
      if (inBraces && (char === ',' || char === '}')) return pieces
      i++
      if (char === '*') pieces.push({ kind: 'star' })
      else if (char === '?') pieces.push({ kind: 'char', test: anything })
      else if (char === '\\') {
        if (i === chars.length) throw new SyntaxError('it ends with a lone `\\`')
        pieces.push(literal(chars[i++] as string))
      } else if (char === '[') pieces.push({ kind: 'char', test: bracket() })
      else if (char === '{') pieces.push({ kind: 'either', options: braces() })
      else pieces.push(literal(char))
    }
    if (inBraces) throw new SyntaxError('a `{` is not closed')
    return pieces
  }

  function bracket (): CharTest {
    const negated = chars[i] === '!'
    if (negated) i++
    const ranges: Array<[number, number]> = []
    while (i < chars.length && chars[i] !== ']') {
      let char = chars[i++] as string
      if (char === '\\' && i < chars.length) char = chars[i++] as string
      let end = char
      if (chars[i] === '-' && i + 1 < chars.length && chars[i + 1] !== ']') {
        i++
        end = chars[i++] as string
        if (end === '\\' && i < chars.length) end = chars[i++] as string
        if ((end.codePointAt(0) as number) < (char.codePointAt(0) as number)) throw new SyntaxError(`the range \`${char}-${end}\` runs backwards`)
      }
      ranges.push([char.codePointAt(0) as number, end.codePointAt(0) as number])
    }
    if (i === chars.length) throw new SyntaxError('a `[` is not closed')
    if (ranges.length === 0) throw new SyntaxError('a `[]` holds nothing')
    i++ // ']'
    return (c) => {
      const code = c.codePointAt(0) as number
      return ranges.some(([from, to]) => code >= from && code <= to) !== negated
    }
  }

  function braces (): Piece[][] {
    const options: Piece[][] = []
    for (;;) {
      options.push(sequence(true))
      if (chars[i++] === '}') return options
    }
  }

  return sequence(false)
}

function literal (char: string): Piece {
  return { kind: 'char', test: (c) => c === char }
}

function anything (): boolean {
  return true
}

/** Adds the states of `pieces`, back to front, each leading to what follows it; returns the first. */
function build (states: State[], pieces: readonly Piece[], then: number): number {
  const add = (test: CharTest | undefined, next: number[]): number => states.push({ test, next }) - 1
  let first = then
  for (let index = pieces.length - 1; index >= 0; index--) {
    const piece = pieces[index] as Piece
    if (piece.kind === 'char') {
      first = add(piece.test, [first])
    } else if (piece.kind === 'star') {
      const loop = add(undefined, [first])
      states[loop]?.next.push(add(anything, [loop]))
      first = loop
    } else {
      const after = first
      first = add(undefined, piece.options.map((option) => build(states, option, after)))
    }
  }
  return first
}

/** Whether the automaton accepts `channel`: one pass, a set of live states. */
function run (states: readonly State[], start: number, channel: string): boolean {
  let live = closure(states, [start])
  for (const char of channel) {
    const moved: number[] = []
    for (const index of live) {
      const state = states[index] as State
      if (state.test?.(char) === true) moved.push(...state.next)
    }
    if (moved.length === 0) return false
    live = closure(states, moved)
  }
  return live.has(ACCEPT)
}

/** The states reachable from `from` without consuming a character (those that consume, and ACCEPT). */
function closure (states: readonly State[], from: number[]): Set<number> {
  const seen = new Set<number>()
  const result = new Set<number>()
  const stack = [...from]
  while (stack.length > 0) {
    const index = stack.pop() as number
    if (seen.has(index)) continue
    seen.add(index)
    const state = states[index] as State
    if (state.test !== undefined || index === ACCEPT) result.add(index)
    if (state.test === undefined) stack.push(...state.next)
  }
  return result
}
