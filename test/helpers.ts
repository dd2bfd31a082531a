import { spawn, type ChildProcess } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import type { IncomingMessage } from 'node:http'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { createSigner } from 'fast-jwt'
import type { Test } from 'tap'
import { WebSocket, type ClientOptions } from 'ws'
import fanout, { type FanoutOptions, type MessageFrame } from '../lib/index.js'

export const SECRET = 'test-secret-that-is-long-enough-for-hs256'
const sign = createSigner({ key: SECRET })

/** A signed HS256 token for `claims` (pass `exp` in the past for an expired one). */
export function token (claims: Record<string, unknown> = { sub: 'alice' }, key = SECRET): string {
  return key === SECRET ? sign(claims) : createSigner({ key })(claims)
}

/**
 * An HMAC-signed token with any header and any payload: an object, or the
 * payload's exact JSON text (for values JSON.stringify cannot write, such as
 * 1e400 or 9007199254740993). Signed with SHA-256 unless `hash` says otherwise.
 */
export function forge (header: unknown, payload: unknown, { key = SECRET, hash = 'sha256', raw = false }: { key?: string, hash?: string, raw?: boolean } = {}): string {
  const part = (value: unknown, isRaw = false): string => Buffer.from(isRaw ? String(value) : JSON.stringify(value)).toString('base64url')
  const input = `${part(header)}.${part(payload, raw)}`
  return `${input}.${createHmac(hash, key).update(input).digest('base64url')}`
}

export function serviceToken (scope = 'broadcast'): string {
  return token({ sub: 'service', scope })
}

export interface Built {
  app: FastifyInstance
  url: string
  wsUrl: string
}

/** A listening app with fastify-fanout (and the routes `routes` adds); closed when the test ends. */
export async function build (
  t: Test, options: Partial<FanoutOptions> = {}, serverOptions: FastifyServerOptions = {}, routes: (app: FastifyInstance) => void = () => {}
): Promise<Built> {
  const app = Fastify(serverOptions)
  t.teardown(() => app.close())
  await app.register(fanout, { jwt: { secret: SECRET }, ...options })
  routes(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const path = options.path ?? '/ws'
  return { app, url: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}${path}` }
}

/** An open `ws` client authenticated with `jwt` (query parameter); terminated when the test ends. */
export async function connect (t: Test, wsUrl: string, jwt = token(), options: ClientOptions = {}): Promise<WebSocket> {
  const ws = new WebSocket(`${wsUrl}?token=${jwt}`, options)
  t.teardown(() => ws.terminate())
  inboxOf(ws)
  await once(ws, 'open')
  return ws
}

interface Inbox {
  frames: MessageFrame[]
  waiting: Array<{ resolve: (frame: MessageFrame) => void, reject: (err: Error) => void }>
  closed?: number
}

// Every client buffers what it receives from the moment it opens, so a test
// can never miss a frame that arrived before it started waiting.
const inboxes = new WeakMap<WebSocket, Inbox>()

/** Starts buffering what a client receives (`connect` does it for its clients). */
export function collect (ws: WebSocket): void {
  inboxOf(ws)
}

function inboxOf (ws: WebSocket): Inbox {
  let inbox = inboxes.get(ws)
  if (inbox !== undefined) return inbox
  const created: Inbox = { frames: [], waiting: [] }
  inbox = created
  inboxes.set(ws, created)
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    const frame = isBinary ? { type: 'binary' } as unknown as MessageFrame : JSON.parse(data.toString()) as MessageFrame
    const waiter = created.waiting.shift()
    if (waiter === undefined) created.frames.push(frame)
    else waiter.resolve(frame)
  })
  ws.on('close', (code: number) => {
    created.closed = code
    for (const waiter of created.waiting.splice(0)) waiter.reject(new Error(`closed with ${code} while waiting for a message`))
  })
  return created
}

/** Resolves with the next message frame a client receives (buffered since it opened). */
export async function nextMessage<T = unknown> (ws: WebSocket): Promise<MessageFrame<T>> {
  const inbox = inboxOf(ws)
  const frame = inbox.frames.shift()
  if (frame !== undefined) return frame as MessageFrame<T>
  if (inbox.closed !== undefined) throw new Error(`closed with ${inbox.closed} while waiting for a message`)
  return await new Promise((resolve, reject) => {
    inbox.waiting.push({ resolve: resolve as (frame: MessageFrame) => void, reject })
  })
}

/** Collects the next `count` messages. */
export async function messages<T = unknown> (ws: WebSocket, count: number): Promise<Array<MessageFrame<T>>> {
  const received: Array<MessageFrame<T>> = []
  while (received.length < count) received.push(await nextMessage<T>(ws))
  return received
}

export interface Rejection {
  status: number
  headers: IncomingMessage['headers']
  body: { statusCode: number, code: string, error: string, message: string }
}

/** Attempts an upgrade that must fail; resolves with the HTTP answer. */
export async function rejectedUpgrade (url: string, options: ClientOptions = {}, protocols?: string[]): Promise<Rejection> {
  const ws = new WebSocket(url, protocols, options)
  return await new Promise((resolve, reject) => {
    ws.on('open', () => { ws.terminate(); reject(new Error('the upgrade succeeded')) })
    ws.on('error', () => {}) // the 'unexpected-response' handler below settles the test
    ws.on('unexpected-response', (_request, response: IncomingMessage) => {
      let raw = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { raw += chunk })
      response.on('end', () => {
        ws.terminate()
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body: JSON.parse(raw) })
      })
    })
  })
}

/** Waits for a client to be closed; resolves with the close code and reason. */
export async function closed (ws: WebSocket): Promise<{ code: number, reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) throw new Error('already closed')
  const [code, reason] = await once(ws, 'close') as [number, Buffer]
  return { code, reason: reason.toString() }
}

/** POSTs a broadcast with a service token. */
export async function broadcast (url: string, body: unknown, jwt = serviceToken()): Promise<Response> {
  return await fetch(`${url}/broadcast`, {
    method: 'POST',
    headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body)
  })
}

/** Resolves once `condition()` holds, polling on the event loop (no fixed sleeps). */
export async function until (condition: () => boolean | Promise<boolean>, what: string, timeout = 5000): Promise<void> {
  const deadline = Date.now() + timeout
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** One metric sample's value from Prometheus text, or undefined. */
export function sample (text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(labels === '' ? `${name} ` : `${name}{${labels}}`))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
}

export interface RunningExample {
  child: ChildProcess
  output: string
  /** The server's own pid, as it printed it (not the child's when `command` runs it through npm). */
  pid: number
  base: string
  userToken: string
  serviceToken: string
}

/**
 * Runs an example script (in development mode, no JWT_SECRET) in a child
 * process until it has printed its banner; killed when the test ends.
 * `command` runs it another way instead, e.g. `['npm', 'run', 'start']`.
 */
export async function runExample (t: Test, script: string, env: Record<string, string>, command?: [string, ...string[]]): Promise<RunningExample> {
  const [file, ...args] = command ?? [process.execPath, '--import', 'tsx', fileURLToPath(new URL(script, import.meta.url))]
  const child = spawn(file, args, {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env: { ...process.env, HOST: '127.0.0.1', JWT_SECRET: '', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  t.teardown(() => { clearTimeout(killer); child.kill('SIGKILL') })
  let output = ''
  child.stdout.setEncoding('utf8')
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: string) => {
      output += chunk
      if (output.includes('curl -X POST')) resolve()
    })
    child.once('exit', (code) => reject(new Error(`${script} exited early with ${code}: ${output}`)))
  })
  const printed = (pattern: RegExp): string => {
    const value = pattern.exec(output)?.[1]
    if (value === undefined) throw new Error(`${script} did not print ${pattern}: ${output}`)
    return value
  }
  return {
    child,
    output,
    pid: Number(printed(/\(pid (\d+)\)/)),
    base: printed(/listening on (http:\/\/\S+)/),
    userToken: printed(/user token: +(\S+)/),
    serviceToken: printed(/service token: +(\S+)/)
  }
}
