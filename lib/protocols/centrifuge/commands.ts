import { Ajv, type SchemaObject, type ValidateFunction } from 'ajv'
import type { PublicationData } from '../../core/data.js'

// Client -> server half of the Centrifugo client protocol v2 (JSON): a text
// frame holds one or more commands, one JSON object a line,
//   {"id":1,"connect":{"token":"…","name":"js"}}
//   {"id":2,"subscribe":{"channel":"chat","recoverable":true,"flag":1}}
// plus two commands without an id: `{}`, the client's pong, and
// `{"send":{"data":…}}`, which gets no reply. Field names and types follow
// definitions/client.proto of centrifugal/protocol; fields this module does
// not know are left alone, since centrifuge-js sends flags for features only
// Centrifugo has.

/** The command methods, in the order of the fields of client.proto's `Command`. */
export const METHODS = Object.freeze([
  'connect', 'subscribe', 'unsubscribe', 'publish', 'presence', 'presence_stats',
  'history', 'ping', 'send', 'rpc', 'refresh', 'sub_refresh'
] as const)

export type Method = typeof METHODS[number]

/** Ids are uint32 in client.proto. */
export const MAX_COMMAND_ID = 0xFFFFFFFF

/**
 * Commands a frame may hold. centrifuge-js sends `connect` and every pending
 * `subscribe` in one frame, so this must exceed the endpoint's channel limit
 * (Centrifugo's default: 128).
 */
export const DEFAULT_MAX_COMMANDS_PER_FRAME = 256

/** A position in a channel's stream, as a client sends it. */
export interface StreamPositionRequest {
  readonly offset?: number
  readonly epoch?: string
}

/** A server-side subscription the client asks to recover, in `connect.subs`. */
export interface ConnectSubscription extends StreamPositionRequest {
  readonly recover?: boolean
}

export interface ConnectRequest {
  /** Connection JWT; centrifuge-js leaves the field out when it has none. */
  readonly token?: string
  /** Any JSON value from the application (`data` / `getData` option). */
  readonly data?: unknown
  /** Client name (`"js"` for centrifuge-js). */
  readonly name?: string
  readonly version?: string
  /** Recovery positions of the recoverable server-side subscriptions the client had, by channel. */
  readonly subs?: Readonly<Record<string, ConnectSubscription>>
  /** Centrifugo's header emulation. */
  readonly headers?: Readonly<Record<string, string>>
}

export interface SubscribeRequest extends StreamPositionRequest {
  readonly channel: string
  /** Subscription JWT. */
  readonly token?: string
  readonly data?: unknown
  /** Recover from `offset` in `epoch` (sent whenever the last reply said `recoverable`). */
  readonly recover?: boolean
  /** Requests; the server decides. */
  readonly positioned?: boolean
  readonly recoverable?: boolean
  readonly join_leave?: boolean
  /** Bit 1: channel compaction (always set by centrifuge-js); bit 2: answer 112 when recovery fails. */
  readonly flag?: number
  /** Delta compression format (`"fossil"`). */
  readonly delta?: string
  /** Tag filter (a FilterNode tree). */
  readonly tf?: Readonly<Record<string, unknown>>
  /** 0 (or absent) for a plain subscription; others are Centrifugo's map and shared-poll subscriptions. */
  readonly type?: number
}

export interface ChannelRequest {
  readonly channel: string
}

export type UnsubscribeRequest = ChannelRequest
export type PresenceRequest = ChannelRequest
export type PresenceStatsRequest = ChannelRequest

export interface PublishRequest {
  readonly channel: string
  readonly data?: unknown
  /** The data as the client sent it, when it sent bytes (Protobuf): what is published. */
  readonly publication?: PublicationData
  /** 0 (or absent) for a plain publication; 1 is Centrifugo's map publish. */
  readonly type?: number
}

export interface HistoryRequest {
  readonly channel: string
  /** Absent or 0: only the stream position; -1: every publication kept. */
  readonly limit?: number
  readonly since?: StreamPositionRequest
  readonly reverse?: boolean
}

/** No fields. */
export type PingRequest = Readonly<Record<string, unknown>>

export interface SendRequest {
  readonly data?: unknown
}

export interface RpcRequest {
  /** May be empty. */
  readonly method?: string
  readonly data?: unknown
}

export interface RefreshRequest {
  readonly token: string
}

export interface SubRefreshRequest {
  readonly channel: string
  readonly token: string
  /** 0 (or absent) for a token refresh; others are Centrifugo's shared-poll tracking. */
  readonly type?: number
}

/** Each method's parameters. */
export interface Requests {
  connect: ConnectRequest
  subscribe: SubscribeRequest
  unsubscribe: UnsubscribeRequest
  publish: PublishRequest
  presence: PresenceRequest
  presence_stats: PresenceStatsRequest
  history: HistoryRequest
  ping: PingRequest
  send: SendRequest
  rpc: RpcRequest
  refresh: RefreshRequest
  sub_refresh: SubRefreshRequest
}

/**
 * One command. `params` is the object the client sent, validated: fields
 * this module does not know are still on it. `send` is never answered, so its
 * id is always 0.
 */
export type Command = { [M in Method]: { readonly id: number, readonly method: M, readonly params: Requests[M] } }[Method]

export type InvalidCode = 104 | 107

/** What one line of a frame is. */
export type ParsedLine =
  | { readonly kind: 'command', readonly command: Command }
  | { readonly kind: 'pong' }
  /**
   * A command with a valid id that cannot be run: answer `id` with the error
   * `code` (104 method not found, 107 bad request) and go on with the frame.
   * `message` is the one to send; `detail` says what was wrong, for logs.
   */
  | { readonly kind: 'invalid', readonly id: number, readonly method?: Method, readonly code: InvalidCode, readonly message: string, readonly detail: string }

/** A frame's lines in order, or why the frame breaks the protocol (close with 3501 "bad request"). */
export type ParsedFrame =
  | { readonly ok: true, readonly lines: ParsedLine[] }
  | { readonly ok: false, readonly reason: string }

export interface CommandParserOptions {
  /**
   * Most lines (commands and pongs) in one frame; more and the frame is bad.
   * @defaultValue 256
   */
  readonly maxCommandsPerFrame?: number
}

// ------------------------------------------------------------ schemas

const string = { type: 'string' } as const
const boolean = { type: 'boolean' } as const
/** A channel name: a non-empty string. */
const channel = { type: 'string', minLength: 1 } as const
/** uint64 in client.proto; here exact in a double. */
const offset = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const
const int32 = { type: 'integer', minimum: -0x80000000, maximum: 0x7FFFFFFF } as const
/** A bit set (int64 in client.proto). */
const flag = offset

function object (properties: Record<string, SchemaObject>, required: string[] = []): SchemaObject {
  // No `additionalProperties`: unknown fields pass, and stay on the object.
  return { type: 'object', properties, required }
}

const position = { offset, epoch: string }

/** Freezes a constant all the way down, so that parsers can share it (Ajv only reads schemas). */
function deepFreeze<T extends object> (value: T): T {
  for (const child of Object.values(value)) {
    if (typeof child === 'object' && child !== null) deepFreeze(child)
  }
  return Object.freeze(value)
}

/**
 * One JSON Schema per method's parameters. `data` fields (raw JSON in
 * client.proto's `bytes`) take any JSON value, so the schemas leave them out.
 */
const SCHEMAS: Readonly<Record<Method, SchemaObject>> = deepFreeze({
  connect: object({
    token: string,
    name: string,
    version: string,
    subs: {
      type: 'object',
      propertyNames: channel,
      additionalProperties: object({ recover: boolean, ...position })
    },
    headers: { type: 'object', additionalProperties: string }
  }),
  subscribe: object({
    channel,
    token: string,
    recover: boolean,
    ...position,
    positioned: boolean,
    recoverable: boolean,
    join_leave: boolean,
    flag,
    delta: string,
    tf: { type: 'object' },
    type: int32
  }, ['channel']),
  unsubscribe: object({ channel }, ['channel']),
  publish: object({ channel, type: int32 }, ['channel']),
  presence: object({ channel }, ['channel']),
  presence_stats: object({ channel }, ['channel']),
  history: object({ channel, limit: int32, since: object(position), reverse: boolean }, ['channel']),
  ping: object({}),
  send: object({}),
  rpc: object({ method: string }),
  refresh: object({ token: { type: 'string', minLength: 1 } }, ['token']),
  sub_refresh: object({ channel, token: { type: 'string', minLength: 1 }, type: int32 }, ['channel', 'token'])
})

// ------------------------------------------------------------ parser

const NEWLINE = 10

type Validators = { readonly [M in Method]: ValidateFunction<Requests[M]> }

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isCommandId (value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_COMMAND_ID
}

/** Longest detail: a path can hold a client's key (a channel name in `connect.subs`) of any length. */
const MAX_DETAIL = 200

function shorten (detail: string): string {
  return detail.length > MAX_DETAIL ? detail.slice(0, MAX_DETAIL) + '…' : detail
}

/**
 * Parses and validates the commands of one text frame. Build one per
 * endpoint: the constructor compiles a validator per method (Ajv), and
 * `parse` then costs one `JSON.parse` and one validator call a line.
 *
 * Rules, line by line (blank lines are skipped):
 * - not JSON, not an object, an `id` that is not an integer in 1..2^32-1,
 *   a method without an id (except `send`), a bad or doubled `send`:
 *   the frame is bad;
 * - no method: a pong without an id; 104 with one;
 * - more than one method: 107 (client.proto allows the error);
 * - parameters that are not an object or break the method's schema: 107.
 * A frame without any line, or with more than `maxCommandsPerFrame`, is bad.
 */
export class CommandParser {
  readonly #ajv: Ajv
  readonly #validators: Validators
  readonly #methods: ReadonlySet<string>
  readonly #maxCommands: number

  constructor (options: CommandParserOptions = {}) {
    const maxCommands = options.maxCommandsPerFrame ?? DEFAULT_MAX_COMMANDS_PER_FRAME
    if (!Number.isInteger(maxCommands) || maxCommands < 1) {
      throw new TypeError(`maxCommandsPerFrame must be a positive integer, got ${String(maxCommands)}`)
    }
    this.#maxCommands = maxCommands
    this.#methods = new Set<string>(METHODS)
    // The first error only (allErrors: false): a bad command is refused at it.
    const ajv = this.#ajv = new Ajv({ strict: true, allErrors: false })
    const compile = <M extends Method>(method: M): ValidateFunction<Requests[M]> => ajv.compile<Requests[M]>(SCHEMAS[method])
    this.#validators = {
      connect: compile('connect'),
      subscribe: compile('subscribe'),
      unsubscribe: compile('unsubscribe'),
      publish: compile('publish'),
      presence: compile('presence'),
      presence_stats: compile('presence_stats'),
      history: compile('history'),
      ping: compile('ping'),
      send: compile('send'),
      rpc: compile('rpc'),
      refresh: compile('refresh'),
      sub_refresh: compile('sub_refresh')
    }
  }

  parse (frame: string): ParsedFrame {
    const lines: ParsedLine[] = []
    let start = 0
    let number = 0
    while (start <= frame.length) {
      let end = frame.indexOf('\n', start)
      if (end === -1) end = frame.length
      number++
      if (!isBlank(frame, start, end)) {
        if (lines.length === this.#maxCommands) return { ok: false, reason: `more than ${this.#maxCommands} commands in a frame` }
        const line = this.#line(frame.slice(start, end))
        if (typeof line === 'string') return { ok: false, reason: `line ${number}: ${line}` }
        lines.push(line)
      }
      start = end + 1
    }
    if (lines.length === 0) return { ok: false, reason: 'empty frame' }
    return { ok: true, lines }
  }

  /** A line's meaning, or why it makes the frame bad. */
  #line (text: string): ParsedLine | string {
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      return 'not JSON' // the caller closes the connection: nothing to log beyond that
    }
    if (!isRecord(value)) return 'not a JSON object'
    const hasId = 'id' in value
    const id = value.id
    if (hasId && !isCommandId(id)) return `id must be an integer from 1 to ${MAX_COMMAND_ID}`

    let method: Method | undefined
    let methods = 0
    for (const key of Object.keys(value)) {
      if (this.#methods.has(key)) {
        method = key as Method
        methods++
      }
    }
    if (method === undefined) {
      if (!hasId) return PONG
      return invalid(id as number, undefined, 104, 'no known method')
    }
    if (methods > 1) {
      if (!hasId) return 'more than one method'
      return invalid(id as number, undefined, 107, 'more than one method')
    }
    if (method !== 'send' && !hasId) return `${method} without an id`

    const params = value[method]
    const validate = this.#validators[method]
    if (!isRecord(params) || !validate(params)) {
      const detail = isRecord(params) ? shorten(this.#ajv.errorsText(validate.errors, { dataVar: method })) : `${method} must be an object`
      // send gets no reply: there is no one to tell but the connection.
      if (method === 'send') return detail
      return invalid(id as number, method, 107, detail)
    }
    // The validator narrowed params to Requests[method]; TypeScript cannot tie the two back together.
    return { kind: 'command', command: { id: method === 'send' ? 0 : id as number, method, params } as Command }
  }
}

const PONG: ParsedLine = Object.freeze({ kind: 'pong' })

const MESSAGES: Readonly<Record<InvalidCode, string>> = { 104: 'method not found', 107: 'bad request' }

function invalid (id: number, method: Method | undefined, code: InvalidCode, detail: string): ParsedLine {
  return method === undefined
    ? { kind: 'invalid', id, code, message: MESSAGES[code], detail }
    : { kind: 'invalid', id, method, code, message: MESSAGES[code], detail }
}

/** Whether frame[start, end) holds only JSON whitespace (space, tab, CR; LF ends a line). */
function isBlank (frame: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = frame.charCodeAt(i)
    if (c !== 0x20 && c !== 0x09 && c !== 0x0d && c !== NEWLINE) return false
  }
  return true
}
