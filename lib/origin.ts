// Origin policy: which browser pages may open a WebSocket. Checked before
// the upgrade so that a page on a foreign site can never ride a user's
// token or cookies into a socket (cross-site WebSocket hijacking).

/**
 * Decides whether an Origin header value is acceptable for a request to
 * `host` (its Host, `''` or undefined when absent) over `scheme` (`'http'`
 * or `'https'`: Fastify's `request.protocol`).
 */
export type OriginPolicy = (origin: string, host: string | undefined, scheme: string) => boolean

interface WildcardPattern {
  scheme: string
  suffix: string // ".example.com" (the part after the `*`)
  port: string
}

/**
 * Builds the policy from the `allowedOrigins` option.
 * - `undefined`: same-origin only (the Origin's scheme is the request's and
 *   its host[:port] equals the Host header).
 * - `'*'` in the list: any origin.
 * - `scheme://host[:port]`: that exact origin.
 * - `scheme://*.domain[:port]`: any subdomain of domain (not domain itself).
 * Throws an Error naming the bad entry.
 */
export function parseOriginPolicy (allowed: readonly string[] | undefined): OriginPolicy {
  if (allowed === undefined) return sameOrigin
  if (allowed.includes('*')) return anyOrigin

  const exact = new Set<string>()
  const wildcards: WildcardPattern[] = []
  for (const entry of allowed) {
    const match = /^([a-z][a-z0-9+.-]*):\/\/(\*\.)?([^/:*?#@\s]+)(?::(\d{1,5}))?$/i.exec(entry)
    if (match === null) {
      throw new Error(`has ${JSON.stringify(entry)}, which is not an origin: write 'https://app.example.com', 'https://*.example.com' or '*'`)
    }
    const [, scheme, star, host, port = ''] = match as unknown as [string, string, string | undefined, string, string | undefined]
    if (star === undefined) {
      exact.add(new URL(entry).origin) // drops default ports and case, as browsers send it
    } else {
      wildcards.push({ scheme: scheme.toLowerCase(), suffix: '.' + host.toLowerCase(), port })
    }
  }

  return function allowListed (origin) {
    const normalized = normalize(origin)
    if (exact.has(normalized)) return true
    if (wildcards.length === 0) return false
    const parsed = parseOrigin(normalized)
    if (parsed === null) return false
    for (const pattern of wildcards) {
      if (parsed.scheme === pattern.scheme && parsed.port === pattern.port &&
          parsed.hostname.length > pattern.suffix.length && parsed.hostname.endsWith(pattern.suffix)) {
        return true
      }
    }
    return false
  }
}

function anyOrigin (): boolean {
  return true
}

// Same scheme, host and port: an http server admits only http:// pages, so a
// page on https://, ftp:// or any other scheme of the same name is foreign.
// Compared as browsers serialize origins (no path, no user, no default port).
function sameOrigin (origin: string, host: string | undefined, scheme: string): boolean {
  if (host === undefined || host === '' || (scheme !== 'http' && scheme !== 'https')) return false
  const own = ownHost(host.toLowerCase(), scheme)
  return own !== undefined && normalize(origin) === `${scheme}://${own}`
}

// The Host header as an origin's host: the scheme's default port dropped;
// undefined unless it is a plain host[:port] (no user, path or query in it).
function ownHost (host: string, scheme: string): string | undefined {
  const parsed = parseOrigin(`${scheme}://${host}`)
  if (parsed === null || parsed.hostname === '') return undefined
  const defaultPort = scheme === 'https' ? ':443' : ':80'
  return parsed.host === host || parsed.host + defaultPort === host ? parsed.host : undefined
}

// Browsers send origins in lower case without a trailing slash; normalize what
// we compare so that configuration written in another case still matches.
function normalize (origin: string): string {
  return origin.toLowerCase().replace(/\/$/, '')
}

function parseOrigin (origin: string): { scheme: string, host: string, hostname: string, port: string } | null {
  if (origin === 'null') return null // opaque origins (sandboxed frames, file:) are never same-origin
  let url: URL
  try {
    url = new URL(origin)
  } catch {
    return null // not a URL: cannot match anything
  }
  return { scheme: url.protocol.slice(0, -1), host: url.host, hostname: url.hostname, port: url.port }
}
