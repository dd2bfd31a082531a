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

/** A matcher for `pattern`, or why it is not one. */
export function compileChannelPattern (pattern: string): ((channel: string) => boolean) | { problem: string } {
  const chars = [...pattern]
  let i = 0

  // Reads up to the end, or (inside braces) to the `,` or `}` that ends an alternative.
  function sequence (inBraces: boolean): string {
    let source = ''
    while (i < chars.length) {
      const char = chars[i] as string
      if (inBraces && (char === ',' || char === '}')) return source
      i++
      if (char === '*') source += '[\\s\\S]*'
      else if (char === '?') source += '[\\s\\S]'
      else if (char === '\\') {
        if (i === chars.length) throw new SyntaxError('it ends with a lone `\\`')
        source += escape(chars[i++] as string)
      } else if (char === '[') source += bracket()
      else if (char === '{') source += braces()
      else source += escape(char)
    }
    if (inBraces) throw new SyntaxError('a `{` is not closed')
    return source
  }

  function bracket (): string {
    const negated = chars[i] === '!'
    if (negated) i++
    let body = ''
    let count = 0
    while (i < chars.length && chars[i] !== ']') {
      let char = chars[i++] as string
      if (char === '\\' && i < chars.length) char = chars[i++] as string
      if (chars[i] === '-' && i + 1 < chars.length && chars[i + 1] !== ']') {
        i++
        let end = chars[i++] as string
        if (end === '\\' && i < chars.length) end = chars[i++] as string
        if ((end.codePointAt(0) as number) < (char.codePointAt(0) as number)) throw new SyntaxError(`the range \`${char}-${end}\` runs backwards`)
        body += `${inClass(char)}-${inClass(end)}`
      } else {
        body += inClass(char)
      }
      count++
    }
    if (i === chars.length) throw new SyntaxError('a `[` is not closed')
    if (count === 0) throw new SyntaxError('a `[]` holds nothing')
    i++ // ']'
    return negated ? `[^${body}]` : `[${body}]`
  }

  function braces (): string {
    const alternatives: string[] = []
    for (;;) {
      alternatives.push(sequence(true))
      if (i === chars.length) throw new SyntaxError('a `{` is not closed')
      if (chars[i++] === '}') return `(?:${alternatives.join('|')})`
    }
  }

  try {
    const source = sequence(false)
    const regex = new RegExp(`^${source}$`, 'u')
    return (channel) => regex.test(channel)
  } catch (err) {
    return { problem: (err as Error).message }
  }
}

// What a RegExp with the `u` flag lets be escaped: its syntax characters, and `-` within a class.
function escape (char: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(char) ? '\\' + char : char
}

function inClass (char: string): string {
  return /[\\\]^[-]/.test(char) ? '\\' + char : char
}
