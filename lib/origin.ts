// Origin policy: which browser pages may open a WebSocket. Checked before
// the upgrade so that a page on a foreign site can never ride a user's
// token or cookies into a socket (cross-site WebSocket hijacking).

/** Decides whether an Origin header value is acceptable for a request to `host`. */
export type OriginPolicy = (origin: string, host: string | undefined) => boolean

interface WildcardPattern {
  scheme: string
  suffix: string // ".example.com" (the part after the `*`)
  port: string
}

/**
 * Builds the policy from the `allowedOrigins` option.
 * - `undefined`: same-origin only (the Origin's host[:port] equals the Host header).
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

function sameOrigin (origin: string, host: string | undefined): boolean {
  if (host === undefined) return false
  const parsed = parseOrigin(normalize(origin))
  return parsed !== null && parsed.host === host.toLowerCase()
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
