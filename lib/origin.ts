// Origin policy: which browser pages may open a WebSocket. Checked before
// the upgrade so that a page on a foreign site can never ride a user's
// token or cookies into a socket (cross-site WebSocket hijacking).

/**
 * Decides whether an Origin header value is acceptable for a request to
 * `host` (its Host, `''` or undefined when absent) over `scheme` (`'http'`
 * or `'https'`: Fastify's `request.protocol`).
 */
export type OriginPolicy = (origin: string, host: string | undefined, scheme: string) => boolean

const DEFAULT_PORTS: Record<string, string> = { http: '80', https: '443' }

interface Origin {
  scheme: string
  hostname: string
  port: string // '' for none or the scheme's default
  origin: string // scheme://hostname[:port], as browsers serialize it
}

/**
 * Builds the policy from the `allowedOrigins` option.
 * - `undefined`: same-origin only (the Origin's scheme is the request's and
 *   its host[:port] equals the Host header).
 * - `'*'` in the list: any origin.
 * - `scheme://host[:port]`: that exact origin.
 * - `scheme://*.domain[:port]`: any subdomain of domain (not domain itself).
 * Case and the scheme's default port do not matter in entries. Throws an
 * Error naming the bad entry.
 */
export function parseOriginPolicy (allowed: readonly string[] | undefined): OriginPolicy {
  if (allowed === undefined) return sameOrigin
  if (allowed.includes('*')) return anyOrigin

  const exact = new Set<string>()
  const wildcards: Origin[] = [] // hostname holds the suffix: ".example.com"
  for (const entry of allowed) {
    const match = /^([a-z][a-z0-9+.-]*):\/\/(\*\.)?([^/:*?#@\s[\]]+)(?::(\d{1,5}))?$/i.exec(entry)
    const parsed = match === null ? undefined : originOf(match[1] as string, match[3] as string, match[4] ?? '')
    if (match === null || parsed === undefined) {
      throw new Error(`has ${JSON.stringify(entry)}, which is not an origin: write 'https://app.example.com', 'https://*.example.com' or '*'`)
    }
    if (match[2] === undefined) {
      exact.add(parsed.origin)
    } else {
      // A name ending in a number is an IP address to URL parsers: it has no subdomains.
      if (/(^|\.)(\d+|0x[0-9a-f]*)$/i.test(parsed.hostname)) throw new Error(`has ${JSON.stringify(entry)}, a wildcard over an IP address, which has no subdomains`)
      wildcards.push({ ...parsed, hostname: '.' + parsed.hostname })
    }
  }

  return function allowListed (origin) {
    const parsed = serializedOrigin(origin)
    if (parsed === undefined) return false
    if (exact.has(parsed.origin)) return true
    for (const pattern of wildcards) {
      if (parsed.scheme === pattern.scheme && parsed.port === pattern.port &&
          parsed.hostname.length > pattern.hostname.length && parsed.hostname.endsWith(pattern.hostname)) {
        return true
      }
    }
    return false
  }
}

// Compared as text, never through URL#origin: that is 'null' for schemes
// such as capacitor://, which would let every opaque origin (sandboxed
// frames, file: pages) in. http and https hosts are normalized by URL
// (punycode, IP forms) as browsers do.
function originOf (scheme: string, host: string, port: string): Origin | undefined {
  scheme = scheme.toLowerCase()
  let hostname = host.toLowerCase()
  if (DEFAULT_PORTS[scheme] !== undefined) {
    try {
      hostname = new URL(`${scheme}://${host}`).hostname
    } catch {
      return undefined
    }
  }
  if (port !== '' && Number(port) > 65535) return undefined
  const number = port === '' ? '' : String(Number(port))
  const effective = number === DEFAULT_PORTS[scheme] ? '' : number
  return { scheme, hostname, port: effective, origin: `${scheme}://${hostname}${effective === '' ? '' : ':' + effective}` }
}

// An Origin header as browsers write it (any case, no path, user, query or
// default port), or undefined.
function serializedOrigin (text: string): Origin | undefined {
  const normalized = normalize(text)
  const match = /^([a-z][a-z0-9+.-]*):\/\/(\[[0-9a-f:.]+\]|[^/?#@\s:[\]]+)(?::(\d{1,5}))?$/.exec(normalized)
  if (match === null) return undefined
  const parsed = originOf(match[1] as string, match[2] as string, match[3] ?? '')
  return parsed?.origin === normalized ? parsed : undefined
}

function anyOrigin (): boolean {
  return true
}

// Same scheme, host and port: an http server admits only http:// pages, so a
// page on https://, ftp:// or any other scheme of the same name is foreign.
function sameOrigin (origin: string, host: string | undefined, scheme: string): boolean {
  if (host === undefined || (scheme !== 'http' && scheme !== 'https')) return false
  // The Host header must be a plain host[:port] (no user, path or query in it).
  const match = /^(\[[0-9a-f:.]+\]|[^/?#@\s:[\]]+)(?::(\d{1,5}))?$/i.exec(host)
  const own = match === null ? undefined : originOf(scheme, match[1] as string, match[2] ?? '')
  return own !== undefined && serializedOrigin(origin)?.origin === own.origin
}

// Browsers send origins in lower case without a trailing slash; normalize what
// we compare so that an origin written in another case still matches.
function normalize (origin: string): string {
  return origin.toLowerCase().replace(/\/$/, '')
}
