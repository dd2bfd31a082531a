import { once } from 'node:events'
import Fastify, { type FastifyServerOptions } from 'fastify'
import type { Test } from 'tap'
import { Centrifuge, type Options, type Subscription, type SubscriptionOptions } from 'centrifuge'
import { Centrifuge as ProtobufCentrifuge } from 'centrifuge/build/protobuf'
import { WebSocket } from 'ws'
import { BinaryReader } from '@bufbuild/protobuf/wire'
import * as pb from '../lib/protocols/centrifuge/proto/client.js'
import { CentClient } from 'cent.js'
import fanout, { type FanoutOptions } from '../lib/index.js'
import { build, SECRET, type Built } from './helpers.js'

/**
 * Which build of the SDK the SDK-driven tests run: the JSON one, or with
 * FANOUT_TEST_SDK=protobuf (test/protobuf/) the Protobuf one, which the
 * Dart, Swift and Java SDKs' protocol is. Both runs are the same tests.
 */
export const SDK_CODEC: 'json' | 'protobuf' = process.env.FANOUT_TEST_SDK === 'protobuf' ? 'protobuf' : 'json'

/** Options of a test that reads or writes JSON frames itself: skipped in the Protobuf run (test/centrifuge-protobuf.test.ts covers the binary wire). */
export const JSON_WIRE_ONLY = { skip: SDK_CODEC === 'protobuf' ? 'reads or writes JSON frames itself' : false } as const

/** A payload as the Protobuf SDK sends it: raw bytes, here the JSON text of a value (as apps on the Protobuf SDKs do). */
function bytesOf (data: unknown): Uint8Array {
  return data instanceof Uint8Array ? data : Buffer.from(JSON.stringify(data ?? null))
}

/**
 * What the Protobuf SDK hands the app, with every payload (`data`,
 * `connInfo`, `chanInfo`: raw bytes there) read back as the JSON value it
 * holds, in place: the same values the JSON SDK hands over, so one test
 * asserts both. Empty bytes (the field was not sent) become undefined.
 */
function jsonView<T> (value: T, seen = new Set<object>()): T {
  if (value === null || typeof value !== 'object' || seen.has(value)) return value
  seen.add(value)
  const record = value as Record<string, unknown>
  for (const key of new Set([...Object.keys(record), 'data', 'connInfo', 'chanInfo'])) {
    const field = record[key]
    if (field instanceof Uint8Array) record[key] = field.length === 0 ? undefined : JSON.parse(Buffer.from(field).toString())
    else if (typeof field === 'object' && field !== null) jsonView(field, seen)
  }
  return value
}

/** The Protobuf build of the SDK, with JSON values in and out (see jsonView). */
class JsonOverProtobuf extends ProtobufCentrifuge {
  override emit (event: any, ...args: any[]): boolean {
    return super.emit(event, ...args.map((arg) => jsonView(arg)))
  }

  override async publish (channel: string, data: any): Promise<any> { return await super.publish(channel, bytesOf(data)) }
  override async send (data: any): Promise<void> { await super.send(bytesOf(data)) }
  override async rpc (method: string, data: any): Promise<any> { return jsonView(await super.rpc(method, bytesOf(data))) }
  override async history (channel: string, options?: any): Promise<any> { return jsonView(await super.history(channel, options)) }
  override async presence (channel: string): Promise<any> { return jsonView(await super.presence(channel)) }

  override newSubscription (channel: string, options?: Partial<SubscriptionOptions>): any {
    const sub = super.newSubscription(channel, options) as any
    const { emit, publish, history, presence } = sub
    sub.emit = (event: string, ...args: any[]) => emit.call(sub, event, ...args.map((arg) => jsonView(arg)))
    sub.publish = async (data: any) => await publish.call(sub, bytesOf(data))
    sub.history = async (options: any) => jsonView(await history.call(sub, options))
    sub.presence = async () => jsonView(await presence.call(sub))
    return sub
  }
}

/** The SDK class the tests construct. */
const SdkClient: typeof Centrifuge = SDK_CODEC === 'protobuf' ? JsonOverProtobuf as unknown as typeof Centrifuge : Centrifuge

/** The Centrifugo endpoint's URL on a built app. */
export function sdkUrl (built: Built, path = '/connection/websocket'): string {
  return built.url.replace('http', 'ws') + path
}

/** The options buildCentrifuge registers: a short connect timeout, 1 s heartbeats, the `chat` and `private` namespaces, then `options`. */
function centrifugeOptions (options: Partial<FanoutOptions>): Partial<FanoutOptions> {
  return {
    centrifuge: { connectTimeout: 500 },
    heartbeatInterval: 1000,
    ...options,
    channels: {
      ...options.channels,
      namespaces: {
        chat: { historySize: 100, historyTtl: 300_000, recovery: true, presence: true, joinLeave: true, publish: true },
        private: { subscribe: 'token' },
        ...options.channels?.namespaces
      }
    }
  }
}

/** An app with the Centrifugo endpoint on and a `chat` namespace like the example's, plus `extra`. */
export async function buildCentrifuge (t: Test, options: Partial<FanoutOptions> = {}, serverOptions: FastifyServerOptions = {}): Promise<Built & { sdkUrl: string }> {
  const built = await build(t, centrifugeOptions(options), serverOptions)
  return { ...built, sdkUrl: sdkUrl(built) }
}

/**
 * Closes `built`'s app and starts a new one, with `options`, on the same
 * port: what a client sees of a server process that restarts. The SDK keeps
 * reconnecting to the same URL meanwhile, and finds the new app there.
 * `whileDown` runs between the two (e.g. publishing on another instance).
 */
export async function restartCentrifuge (
  t: Test, built: Built, options: Partial<FanoutOptions> = {}, whileDown: () => Promise<void> = async () => {}
): Promise<Built & { sdkUrl: string }> {
  const { port } = new URL(built.url)
  await built.app.close()
  await whileDown()
  const app = Fastify()
  t.teardown(() => app.close())
  const resolved = centrifugeOptions(options)
  await app.register(fanout, { jwt: { secret: SECRET }, ...resolved })
  await app.listen({ port: Number(port), host: '127.0.0.1' })
  const restarted = { app, url: built.url, wsUrl: built.url.replace('http', 'ws') + (resolved.path ?? '/ws') }
  return { ...restarted, sdkUrl: sdkUrl(restarted) }
}

/** Every event a client or subscription emitted, by name, in order. */
export interface Recorder {
  readonly events: Array<[string, any]>
  /**
   * Without `from`: the next `name` event not yet taken by an earlier
   * `next(name)`, already seen or still to come (so an event that arrived
   * in the same frame as the one awaited before is never missed). With
   * `from` (an index into `events`): the first `name` event at or after it.
   */
  next: (name: string, from?: number) => Promise<any>
  all: (name: string) => any[]
}

export function record (emitter: { on: (name: any, listener: (ctx: any) => void) => unknown }, names: string[]): Recorder {
  const events: Array<[string, any]> = []
  const taken = new Map<string, number>()
  const waiting: Array<{ name: string, index: number, from: number, resolve: (ctx: any) => void }> = []
  const all = (name: string): any[] => events.filter(([event]) => event === name).map(([, ctx]) => ctx)
  for (const name of names) {
    emitter.on(name, (ctx: any) => {
      events.push([name, ctx])
      const position = events.length - 1
      const count = all(name).length
      for (const waiter of [...waiting]) {
        if (waiter.name !== name || position < waiter.from || (waiter.index >= 0 && count <= waiter.index)) continue
        waiting.splice(waiting.indexOf(waiter), 1)
        waiter.resolve(ctx)
      }
    })
  }
  return {
    events,
    async next (name, from) {
      if (from !== undefined) {
        const seen = events.slice(from).find(([event]) => event === name)
        if (seen !== undefined) return seen[1]
        return await new Promise((resolve) => waiting.push({ name, index: -1, from, resolve }))
      }
      const index = taken.get(name) ?? 0
      taken.set(name, index + 1)
      const seen = all(name)
      if (index < seen.length) return seen[index]
      return await new Promise((resolve) => waiting.push({ name, index, from: 0, resolve }))
    },
    all
  }
}

const CLIENT_EVENTS = ['connecting', 'connected', 'disconnected', 'error', 'message', 'publication', 'subscribed', 'subscribing', 'unsubscribed', 'join', 'leave']
const SUBSCRIPTION_EVENTS = ['subscribing', 'subscribed', 'unsubscribed', 'error', 'publication', 'join', 'leave']

/** A real centrifuge-js client (ws as its WebSocket: Node 20 has none), short timeouts, disconnected when the test ends. */
export function sdk (t: Test, url: string, options: Partial<Options> = {}): { client: Centrifuge, events: Recorder } {
  const client = new SdkClient(url, {
    websocket: WebSocket,
    timeout: 3000,
    minReconnectDelay: 50,
    maxReconnectDelay: 300,
    maxServerPingDelay: 2000,
    ...options
  })
  const events = record(client, CLIENT_EVENTS)
  t.teardown(() => { client.disconnect() })
  return { client, events }
}

export function subscription (client: Centrifuge, channel: string, options: Partial<SubscriptionOptions> = {}): { sub: Subscription, events: Recorder } {
  const sub = client.newSubscription(channel, { minResubscribeDelay: 50, maxResubscribeDelay: 300, ...options })
  return { sub, events: record(sub, SUBSCRIPTION_EVENTS) }
}

/** A subscription that has been answered `subscribed` (its first `subscribed` event is taken). */
export async function subscribed (client: Centrifuge, channel: string, options: Partial<SubscriptionOptions> = {}): Promise<{ sub: Subscription, events: Recorder }> {
  const made = subscription(client, channel, options)
  made.sub.subscribe()
  await made.events.next('subscribed')
  return made
}

/** A raw WebSocket to the endpoint: frames as text, for what the SDK would never send. */
export async function rawClient (t: Test, url: string, protocols?: string[]): Promise<{ ws: WebSocket, frames: string[], next: () => Promise<string>, closed: Promise<[number, string]> }> {
  const ws = new WebSocket(url, protocols)
  t.teardown(() => { ws.terminate() })
  const frames: string[] = []
  const waiting: Array<(frame: string) => void> = []
  ws.on('message', (data: Buffer) => {
    for (const line of data.toString().split('\n')) {
      const resolve = waiting.shift()
      if (resolve !== undefined) resolve(line)
      else frames.push(line)
    }
  })
  const closed = once(ws, 'close').then(([code, reason]) => [code as number, String(reason)] as [number, string])
  await once(ws, 'open')
  return {
    ws,
    frames,
    closed,
    next: async () => frames.length > 0 ? frames.shift() as string : await new Promise<string>((resolve) => waiting.push(resolve))
  }
}

/** What a recording WebSocket saw: every frame received and sent, in order, as JSON text (Protobuf frames decoded). */
export interface Wire {
  /** The class to give the SDK as its `websocket` option. */
  readonly WebSocket: new (address: string | URL, protocols?: string | string[]) => WebSocket
  readonly received: string[]
  readonly sent: string[]
  /** Every line the server sent (frames split at newlines). */
  lines: () => string[]
}

/** A WebSocket class for the SDK that records the frames of every socket it opens. */
export function wire (): Wire {
  const received: string[] = []
  const sent: string[] = []
  class Recording extends WebSocket {
    constructor (address: string | URL, protocols?: string | string[]) {
      super(address, protocols)
      // The Protobuf SDK sets binaryType 'arraybuffer' once the socket is made.
      this.on('message', (data: Buffer | ArrayBuffer, isBinary: boolean) => {
        received.push(isBinary ? protobufAsJson(Buffer.from(data as Uint8Array), pb.Reply) : data.toString())
      })
    }

    override send (data: any, options?: any, callback?: any): void {
      sent.push(typeof data === 'string' ? data : protobufAsJson(Buffer.from(data as Uint8Array), pb.Command))
      super.send(data, options, callback)
    }
  }
  return { WebSocket: Recording, received, sent, lines: () => received.flatMap((frame) => frame.split('\n')) }
}

/**
 * A Protobuf frame as the JSON protocol would carry it: one line per
 * message, fields with their zero value left out, payload bytes as the
 * JSON they hold (`{ $bytes: hex }` when they hold none). Tests that read the wire then read either codec's.
 */
export function protobufAsJson (frame: Buffer, type: { decode: (reader: BinaryReader, length: number) => unknown }): string {
  const reader = new BinaryReader(frame)
  const lines: string[] = []
  while (reader.pos < reader.len) lines.push(JSON.stringify(asJson(type.decode(reader, reader.uint32())) ?? {}))
  return lines.join('\n')
}

function asJson (value: unknown): unknown {
  if (value instanceof Uint8Array) {
    if (value.length === 0) return undefined
    try {
      return JSON.parse(Buffer.from(value).toString())
    } catch {
      return { $bytes: Buffer.from(value).toString('hex') } // not JSON: shown as hex
    }
  }
  if (value instanceof Map) value = Object.fromEntries(value)
  if (Array.isArray(value)) return value.length === 0 ? undefined : value.map(asJson)
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value).map(([key, field]) => [key, asJson(field)] as const).filter(([, field]) => field !== undefined)
    return Object.fromEntries(entries)
  }
  return value === 0 || value === '' || value === false ? undefined : value
}

/**
 * cent.js, Centrifugo's server API library for Node, as a service calls it. Its typings are narrower than the API it
 * sends to (data only objects, no b64data, disconnect without its
 * `disconnect` object, broadcast's result typed as an array): the calls go
 * through as Centrifugo documents them.
 */
export type Cent = { [M in 'publish' | 'broadcast' | 'subscribe' | 'unsubscribe' | 'disconnect' | 'refresh' | 'getPresence' | 'getPresenceStats' | 'getHistory' | 'removeHistory' | 'getChannels' | 'getInfo']: (params?: Record<string, unknown>) => Promise<any> }

export function centClient (url: string, apiKey: string): Cent {
  return new CentClient({ url, apiKey }) as unknown as Cent
}
