// What every property test shares: bounded runs, reproducible failures, and
// requests a test makes without a client library in the way.
import { randomBytes } from 'node:crypto'
import { request, type IncomingHttpHeaders } from 'node:http'
import type { Parameters } from 'fast-check'

/**
 * fast-check parameters: `runs` per property (times FUZZ_SCALE, e.g. 10 for
 * a long local run); FUZZ_SEED (with FUZZ_PATH) replays the failure
 * fast-check printed.
 */
export function fuzzParameters<T> (runs: number): Parameters<T> {
  const scale = Number(process.env.FUZZ_SCALE ?? 1)
  const seed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED)
  return {
    numRuns: Math.max(1, Math.round(runs * (Number.isFinite(scale) && scale > 0 ? scale : 1))),
    ...(seed === undefined ? {} : { seed, path: process.env.FUZZ_PATH })
  }
}

export interface Answer {
  status: number
  headers: IncomingHttpHeaders
  body: { statusCode?: number, code?: string, message?: string }
}

/**
 * A WebSocket upgrade request on a fresh socket: resolves with 101 (the
 * socket is destroyed at once) or with the HTTP answer and its JSON body.
 */
export async function upgrade (port: number, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path,
      agent: false,
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': randomBytes(16).toString('base64'),
        ...headers
      }
    })
    req.on('upgrade', (response, socket) => {
      socket.destroy()
      resolve({ status: 101, headers: response.headers, body: {} })
    })
    req.on('response', (response) => {
      let raw = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { raw += chunk })
      response.on('end', () => {
        try {
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body: JSON.parse(raw) })
        } catch (err) {
          reject(new Error(`${response.statusCode}: not JSON: ${raw.slice(0, 200)}`, { cause: err }))
        }
      })
    })
    req.on('error', reject)
    req.end()
  })
}
