import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire'
import type { Envelope } from '../../backplane/types.js'
import type { ClientInfo, Publication } from '../../channels/types.js'
import { dataFromBytes, jsonIn } from '../../core/data.js'
import type { WireProtocol } from '../../core/protocol.js'
import type { ClientCodec, ReplyMethod, Result, SubscribeResultFields } from './codec.js'
import { DEFAULT_MAX_COMMANDS_PER_FRAME, METHODS, type Command, type Method, type ParsedFrame, type ParsedLine, type Requests } from './commands.js'
import * as pb from './proto/client.js'

// The Protobuf encoding of the client protocol (`centrifuge-protobuf`): a
// binary frame holds one or more Commands (client to server) or Replies
// (server to client), each preceded by its length as a varint. The messages
// are generated from proto/client.proto by ts-proto; this module only maps
// them to and from what a session says, which is the same as over JSON.
// `bytes` fields carry payloads untouched: a publication's JSON text goes out
// as those bytes, and what a client sends is read as JSON when it is JSON.

/** A reply or push with its length in front, as one frame (or part of one) carries it. */
function delimited (reply: pb.Reply): Buffer {
  const writer = new BinaryWriter()
  writer.fork()
  pb.Reply.encode(reply, writer)
  const bytes = writer.join().finish()
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** A JSON value, or raw bytes given as a Uint8Array, as the payload of a `bytes` field. */
function bytesOf (value: unknown, name: string): Buffer | undefined {
  if (value === undefined) return undefined
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  const text = JSON.stringify(value) as string | undefined
  if (text === undefined) throw new TypeError(`${name} must be a JSON value or a Uint8Array`)
  return Buffer.from(text)
}

function clientInfo (info: ClientInfo): pb.ClientInfo {
  return {
    user: info.user,
    client: info.client,
    conn_info: bytesOf(info.conn_info, 'conn_info'),
    chan_info: bytesOf(info.chan_info, 'chan_info')
  }
}

function publication (pub: Publication): pb.Publication {
  return { data: typeof pub.data === 'string' ? Buffer.from(pub.data) : pub.data, offset: pub.offset, info: pub.info === undefined ? undefined : clientInfo(pub.info) }
}

/**
 * What the engine's envelopes are for Protobuf clients: the same pushes as
 * for JSON ones (core/protocol.ts), built once per envelope and shared by
 * every Protobuf connection.
 */
export const PROTOBUF_WIRE: WireProtocol = Object.freeze({
  slot: 2,
  binary: true,
  recovers: true,
  encode (envelope: Envelope): Buffer {
    const { channel } = envelope
    if (channel === undefined) return delimited({ push: { message: { data: envelope.data } } })
    if (envelope.presence !== undefined && envelope.info !== undefined) {
      const notice = { info: clientInfo(envelope.info) }
      return delimited({ push: envelope.presence === 'join' ? { channel, join: notice } : { channel, leave: notice } })
    }
    return delimited({
      push: {
        channel,
        pub: {
          data: envelope.data,
          offset: envelope.offset,
          epoch: envelope.epoch,
          info: envelope.info === undefined ? undefined : clientInfo(envelope.info)
        }
      }
    })
  }
})

/** The server's ping: an empty Reply. */
const PING = delimited({})

/** The codec's results are its generated messages, branded for the method they answer. */
const result = <M extends ReplyMethod>(message: object): Result<M> => message as Result<M>

function subscribeResult (fields: SubscribeResultFields): pb.SubscribeResult {
  return {
    expires: fields.expires,
    ttl: fields.ttl,
    recoverable: fields.recoverable,
    positioned: fields.positioned,
    epoch: fields.epoch,
    offset: fields.offset,
    was_recovering: fields.was_recovering,
    recovered: fields.recovered,
    publications: fields.publications?.map(publication),
    data: bytesOf(fields.data, 'data')
  }
}

/** The Protobuf codec of an endpoint. */
export function createProtobufCodec (maxCommandsPerFrame = DEFAULT_MAX_COMMANDS_PER_FRAME): ClientCodec {
  return Object.freeze({
    name: 'protobuf',
    wire: PROTOBUF_WIRE,
    ping: PING,
    parse: (data: Buffer, isBinary: boolean) => parseFrame(data, isBinary, maxCommandsPerFrame),
    reply: (id, method, answer) => delimited({ id, [method]: answer ?? {} } as pb.Reply),
    errorReply: (id, error) => delimited({ id, error: { code: error.code, message: error.message, temporary: error.temporary } }),
    connectResult: (fields) => result<'connect'>({
      client: fields.client,
      version: fields.version,
      data: bytesOf(fields.data, 'data'),
      subs: fields.subs === undefined ? undefined : new Map(Object.entries(fields.subs) as unknown as Array<[string, pb.SubscribeResult]>),
      expires: fields.expires,
      ttl: fields.ttl,
      ping: fields.ping,
      pong: fields.pong
    } satisfies pb.ConnectResult),
    subscribeResult: (fields) => result<'subscribe'>(subscribeResult(fields)),
    historyResult: (fields) => result<'history'>({
      publications: fields.publications.map(publication), epoch: fields.epoch, offset: fields.offset
    } satisfies pb.HistoryResult),
    presenceResult: (clients) => result<'presence'>({
      presence: new Map(Object.entries(clients).map(([client, info]) => [client, clientInfo(info)]))
    } satisfies pb.PresenceResult),
    presenceStatsResult: (fields) => result<'presence_stats'>({ ...fields } satisfies pb.PresenceStatsResult),
    refreshResult: (fields) => result<'refresh'>({ expires: fields.expires, ttl: fields.ttl } satisfies pb.RefreshResult),
    subRefreshResult: (fields) => result<'sub_refresh'>({ expires: fields.expires, ttl: fields.ttl } satisfies pb.SubRefreshResult),
    rpcResult: (data) => result<'rpc'>({ data: bytesOf(data, 'data') } satisfies pb.RPCResult),
    unsubscribePush: (channel, advice) => delimited({ push: { channel, unsubscribe: { code: advice.code, reason: advice.reason } } }),
    subscribePush: (channel, fields = {}) => delimited({
      push: {
        channel,
        subscribe: {
          recoverable: fields.recoverable,
          positioned: fields.positioned,
          epoch: fields.epoch,
          offset: fields.offset,
          data: bytesOf(fields.data, 'data')
        }
      }
    })
  } satisfies ClientCodec)
}

// ------------------------------------------------------------ commands

/**
 * The commands of one binary frame, with the JSON parser's rules
 * (commands.ts) where they apply: a command without a method and id is a
 * pong, an id without a known method 104, two methods or a missing channel
 * or token 107 (answered, the frame goes on); a frame that is not a
 * sequence of delimited Commands breaks the protocol (3501): a text frame,
 * an empty one, a length or varint running past its end, a message running
 * past the one around it, a field number 0, groups, an invalid wire type, a
 * string that is not UTF-8, an offset beyond 2^53. Unknown fields are
 * skipped, as proto3 asks.
 */
function parseFrame (data: Buffer, isBinary: boolean, maxCommands: number): ParsedFrame {
  if (!isBinary) return { ok: false, reason: 'text frame on the Protobuf protocol' }
  if (data.length === 0) return { ok: false, reason: 'empty frame' }
  const frame = new BinaryReader(data)
  const lines: ParsedLine[] = []
  for (let number = 1; frame.pos < frame.len; number++) {
    if (lines.length === maxCommands) return { ok: false, reason: `more than ${maxCommands} commands in a frame` }
    let command: pb.Command
    try {
      const length = frame.uint32()
      if (length > frame.len - frame.pos) return { ok: false, reason: `command ${number}: its length runs past the end of the frame` }
      // A reader of this command's bytes alone: nothing in it can read the next one's.
      const body = data.subarray(frame.pos, frame.pos + length)
      frame.pos += length
      const problem = structureProblem(new BinaryReader(body), body.length, COMMAND)
      if (problem !== undefined) return { ok: false, reason: `command ${number}: ${problem}` }
      command = pb.Command.decode(new BinaryReader(body, strictUtf8))
    } catch (err) {
      return { ok: false, reason: `command ${number}: not a Protobuf Command (${(err as Error).message})` }
    }
    const line = lineOf(command)
    if (typeof line === 'string') return { ok: false, reason: `command ${number}: ${line}` }
    lines.push(line)
  }
  return { ok: true, lines }
}

/**
 * Which fields of a message hold messages, and their own: what the generated
 * decoders cannot check, since they stop at the end of the whole input and
 * at a field number 0, so a nested message could run past the one around it
 * or end early. Mirrors client.proto (test/protobuf-schema.test.ts holds it
 * to it).
 */
export interface MessageShape { readonly [field: number]: MessageShape }

const NO_MESSAGES: MessageShape = Object.freeze({})
const SUBSCRIBE_REQUEST = NO_MESSAGES
export const COMMAND: MessageShape = Object.freeze({
  4: Object.freeze({ 3: Object.freeze({ 2: SUBSCRIBE_REQUEST }), 6: NO_MESSAGES }), // connect: subs (map entries of SubscribeRequest), headers
  5: SUBSCRIBE_REQUEST,
  6: NO_MESSAGES,
  7: NO_MESSAGES,
  8: NO_MESSAGES,
  9: NO_MESSAGES,
  10: Object.freeze({ 8: NO_MESSAGES }), // history: since
  11: NO_MESSAGES,
  12: NO_MESSAGES,
  13: NO_MESSAGES,
  14: NO_MESSAGES,
  15: NO_MESSAGES
})

/**
 * Why the message ending at `end` is not well formed, or undefined: every
 * tag valid (no field 0, no groups, which this protocol never uses), every
 * value within the message, and each nested message of `shape` likewise.
 */
function structureProblem (reader: BinaryReader, end: number, shape: MessageShape): string | undefined {
  while (reader.pos < end) {
    const [field, wireType] = reader.tag()
    if (wireType === WireType.StartGroup || wireType === WireType.EndGroup) return `field ${field}: groups are not part of this protocol`
    const nested = shape[field]
    if (wireType !== WireType.LengthDelimited || nested === undefined) {
      reader.skip(wireType, field)
    } else {
      const length = reader.uint32()
      if (length > end - reader.pos) return `field ${field}: runs past the end of its message`
      const problem = structureProblem(reader, reader.pos + length, nested)
      if (problem !== undefined) return `field ${field}: ${problem}`
    }
    if (reader.pos > end) return `field ${field}: runs past the end of its message`
  }
  return undefined
}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true })

/** The readers' string decoding: a string that is not UTF-8 is an error, not replacement characters. */
function strictUtf8 (bytes: Uint8Array): string {
  return fatalUtf8.decode(bytes)
}

const PONG: ParsedLine = Object.freeze({ kind: 'pong' })

function lineOf (command: pb.Command): ParsedLine | string {
  const id = command.id ?? 0
  let method: Method | undefined
  let methods = 0
  for (const name of METHODS) {
    if (command[name] === undefined) continue
    method ??= name
    methods++
  }
  if (method === undefined) {
    return id === 0 ? PONG : { kind: 'invalid', id, code: 104, message: 'method not found', detail: 'no known method' }
  }
  if (methods > 1) {
    return id === 0 ? 'more than one method' : { kind: 'invalid', id, code: 107, message: 'bad request', detail: 'more than one method' }
  }
  if (method !== 'send' && id === 0) return `${method} without an id`
  const params = requestOf(method, command)
  if (typeof params === 'string') {
    if (method === 'send') return params
    return { kind: 'invalid', id, method, code: 107, message: 'bad request', detail: params }
  }
  // send is never answered (as in commands.ts): its id, if any, is dropped.
  return { kind: 'command', command: { id: method === 'send' ? 0 : id, method, params } as Command }
}

/**
 * A request's fields as the session reads them (the JSON form's names and
 * types), or what is wrong with it. Proto3 sends no empty strings, zeros or
 * false, so absent and empty are the same here, as the session treats them.
 */
function requestOf (method: Method, command: pb.Command): Requests[Method] | string {
  switch (method) {
    case 'connect': {
      const request = command.connect as pb.ConnectRequest
      const subs: Record<string, { recover?: boolean, offset?: number, epoch?: string }> = {}
      for (const [channel, sub] of request.subs ?? []) {
        if (channel === '') return 'connect.subs: a channel must not be empty'
        subs[channel] = { recover: sub.recover, offset: sub.offset, epoch: sub.epoch }
      }
      return {
        token: request.token,
        data: dataOf(request.data),
        name: request.name,
        version: request.version,
        subs,
        headers: Object.fromEntries(request.headers ?? [])
      } satisfies Requests['connect']
    }
    case 'subscribe': {
      const request = command.subscribe as pb.SubscribeRequest
      return withChannel(method, request.channel) ?? {
        channel: request.channel as string,
        token: request.token,
        recover: request.recover,
        epoch: request.epoch,
        offset: request.offset,
        data: dataOf(request.data),
        positioned: request.positioned,
        recoverable: request.recoverable,
        join_leave: request.join_leave,
        delta: request.delta,
        flag: request.flag,
        type: request.type
      } satisfies Requests['subscribe']
    }
    case 'unsubscribe':
    case 'presence':
    case 'presence_stats': {
      const channel = (command[method] as { channel?: string }).channel
      return withChannel(method, channel) ?? { channel: channel as string }
    }
    case 'publish': {
      const request = command.publish as pb.PublishRequest
      // Published as they came: re-serializing the value would change them (1e2, 64-bit integers).
      const publication = request.data === undefined || request.data.length === 0 ? undefined : dataFromBytes(request.data)
      return withChannel(method, request.channel) ?? {
        channel: request.channel as string,
        data: publication === undefined ? undefined : publication.binary ? publication.bytes : publication.value,
        publication,
        type: request.type
      }
    }
    case 'history': {
      const request = command.history as pb.HistoryRequest
      const since = request.since === undefined ? undefined : { offset: request.since.offset, epoch: request.since.epoch }
      return withChannel(method, request.channel) ?? { channel: request.channel as string, limit: request.limit, since, reverse: request.reverse }
    }
    case 'ping': return {}
    case 'send': return { data: dataOf(command.send?.data) }
    case 'rpc': return { method: command.rpc?.method, data: dataOf(command.rpc?.data) }
    case 'refresh': {
      const token = command.refresh?.token
      return token === undefined || token === '' ? 'refresh.token must not be empty' : { token }
    }
    case 'sub_refresh': {
      const request = command.sub_refresh as pb.SubRefreshRequest
      if (request.token === undefined || request.token === '') return 'sub_refresh.token must not be empty'
      return withChannel(method, request.channel) ?? { channel: request.channel as string, token: request.token, type: request.type }
    }
  }
}

/** Undefined when `channel` names one; else what is wrong. */
function withChannel (method: Method, channel: string | undefined): string | undefined {
  return channel === undefined || channel === '' ? `${method}.channel must not be empty` : undefined
}

/**
 * A payload from a client: the JSON value its bytes hold (so that the
 * application's hooks see the same values from either codec), raw bytes as
 * a Buffer when they are not JSON, nothing when empty.
 */
function dataOf (bytes: Buffer | undefined): unknown {
  if (bytes === undefined || bytes.length === 0) return undefined
  return (jsonIn(bytes) ?? { value: bytes }).value
}
