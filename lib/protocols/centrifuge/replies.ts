import type { ClientInfo, Publication } from '../../channels/types.js'
import type {
  ConnectResultFields, Expiry, HistoryResultFields, PresenceStatsResultFields, ReplyMethod,
  Result as CodecResult, SubscribePushFields, SubscribeResultFields
} from './codec.js'
import type { Advice, ReplyError } from './codes.js'

// Server -> client half of the Centrifugo client protocol v2 (JSON). Every
// function returns one message as JSON text without a trailing newline; an
// endpoint batches several in a frame by joining them with '\n'.
//   {"id":2,"subscribe":{"recoverable":true,"epoch":"e1","offset":5}}   reply
//   {"id":3,"error":{"code":103,"message":"permission denied"}}          error
//   {"push":{"channel":"chat","pub":{"data":{…},"offset":6}}}           push
// Values from applications and clients go through JSON.stringify; the data of
// a publication or message is spliced in as the JSON text it was stored and
// fanned out as, so a push is built once and shared by every subscriber.
// Field names are client.proto's. Fields with their zero value are left out,
// as Centrifugo does; a push never has an `id` (centrifuge-js would route it
// by channel id only, and drop it).

/**
 * JSON text of one result object, for `reply(id, M, …)`. Only this module's
 * builders make one, so a result is always valid JSON and always answers the
 * method it was built for (`EMPTY_RESULT` answers any).
 */
export type Result<M extends ReplyMethod> = string & CodecResult<M>

/** The frame a server pings with; a client whose connect result said `pong: true` answers with the same. */
export const PING = '{}'

/** The empty result: `publish`, `unsubscribe`, `ping`, and any other method with nothing to say. */
export const EMPTY_RESULT = '{}' as Result<ReplyMethod>

/**
 * A successful reply. centrifuge-js reads the result object without checking
 * that it is there, so there always is one (`{}` at least).
 */
export function reply<M extends ReplyMethod> (id: number, method: M, result: NoInfer<Result<M>> = EMPTY_RESULT): string {
  return `{"id":${uint(id, 'id', 0xFFFFFFFF)},${JSON.stringify(method)}:${result}}`
}

/** An error reply; pass an entry of `ErrorCode` (it carries `temporary`, which the client retries on). */
export function errorReply (id: number, error: ReplyError): string {
  let body = `"code":${uint(error.code, 'error code', 0xFFFFFFFF)}`
  if (error.message !== '') body += `,"message":${JSON.stringify(error.message)}`
  if (error.temporary) body += ',"temporary":true'
  return `{"id":${uint(id, 'id', 0xFFFFFFFF)},"error":{${body}}}`
}

// ------------------------------------------------------------ results

export function connectResult (fields: ConnectResultFields): Result<'connect'> {
  let body = `"client":${JSON.stringify(fields.client)}`
  if (fields.version !== undefined && fields.version !== '') body += `,"version":${JSON.stringify(fields.version)}`
  body += json('data', fields.data)
  if (fields.subs !== undefined) {
    const subs = Object.entries(fields.subs)
    if (subs.length > 0) body += `,"subs":{${subs.map(([channel, result]) => `${JSON.stringify(channel)}:${result}`).join(',')}}`
  }
  body += expiry(fields)
  if (fields.ping !== undefined && fields.ping !== 0) body += `,"ping":${uint(fields.ping, 'ping', 0xFFFFFFFF)}`
  if (fields.pong === true) body += ',"pong":true'
  return `{${body}}` as Result<'connect'>
}

export function subscribeResult (fields: SubscribeResultFields): Result<'subscribe'> {
  let body = expiry(fields)
  if (fields.recoverable === true) body += ',"recoverable":true'
  if (fields.positioned === true) body += ',"positioned":true'
  body += position(fields.epoch, fields.offset)
  if (fields.was_recovering === true) body += ',"was_recovering":true'
  if (fields.recovered === true) body += ',"recovered":true'
  if (fields.publications !== undefined) body += publications(fields.publications, 'omit')
  body += json('data', fields.data)
  return object(body) as Result<'subscribe'>
}

/**
 * A history page. Publications of bytes that are not JSON are left out for
 * JSON clients (they never receive those), or, for the server API, carry
 * `b64data` instead of `data`.
 */
export function historyResult (fields: HistoryResultFields, binary: BinaryPublications = 'omit'): Result<'history'> {
  const body = publications(fields.publications, binary) + position(fields.epoch, fields.offset)
  return object(body) as Result<'history'>
}

/** Who is in a channel, by client id; the reply nests it: `{"presence":{"presence":{…}}}`. */
export function presenceResult (clients: Readonly<Record<string, ClientInfo>>): Result<'presence'> {
  const entries = Object.entries(clients)
  if (entries.length === 0) return '{"presence":{}}' as Result<'presence'>
  return `{"presence":{${entries.map(([client, info]) => `${JSON.stringify(client)}:${clientInfo(info)}`).join(',')}}}` as Result<'presence'>
}

export function presenceStatsResult (fields: PresenceStatsResultFields): Result<'presence_stats'> {
  return `{"num_clients":${uint(fields.num_clients, 'num_clients', 0xFFFFFFFF)},"num_users":${uint(fields.num_users, 'num_users', 0xFFFFFFFF)}}` as Result<'presence_stats'>
}

/** `expires: false` stops the client's refresh timer. */
export function refreshResult (fields: Expiry): Result<'refresh'> {
  return object(expiry(fields)) as Result<'refresh'>
}

/** `expires: false` stops the subscription's refresh timer. */
export function subRefreshResult (fields: Expiry): Result<'sub_refresh'> {
  return object(expiry(fields)) as Result<'sub_refresh'>
}

/** The RPC's answer: any JSON value, or none. */
export function rpcResult (data?: unknown): Result<'rpc'> {
  return object(json('data', data)) as Result<'rpc'>
}

// ------------------------------------------------------------ pushes

/** A publication as it goes to subscribers: `data` is its JSON text. */
export interface PushPublication {
  readonly data: string
  /** Absent or 0 on a channel without history. */
  readonly offset?: number
  /** Tells a client that subscribed before the stream existed which epoch it is in. */
  readonly epoch?: string
  /** The publisher, for publications from clients. */
  readonly info?: ClientInfo
  readonly tags?: Readonly<Record<string, string>>
}

/** `{"push":{"channel","pub":{…}}}`: a publication, built once for all of the channel's subscribers. */
export function pubPush (channel: string, pub: PushPublication): string {
  return `{"push":{"channel":${JSON.stringify(channel)},"pub":${publication(pub)}}}`
}

/** `{"push":{"message":{"data":…}}}`: the client's `message` event (no channel); `dataJson` is spliced. */
export function messagePush (dataJson: string): string {
  return `{"push":{"message":{"data":${spliced(dataJson)}}}}`
}

export function joinPush (channel: string, info: ClientInfo): string {
  return `{"push":{"channel":${JSON.stringify(channel)},"join":{"info":${clientInfo(info)}}}}`
}

export function leavePush (channel: string, info: ClientInfo): string {
  return `{"push":{"channel":${JSON.stringify(channel)},"leave":{"info":${clientInfo(info)}}}}`
}

/** Ends a subscription (an `UnsubscribeCode` entry): from 2500 on the client subscribes again. */
export function unsubscribePush (channel: string, advice: Advice): string {
  return `{"push":{"channel":${JSON.stringify(channel)},"unsubscribe":${advised(advice)}}}`
}

/** A server-side subscription made while connected: the client's client-level `subscribed` event. */
export function subscribePush (channel: string, fields: SubscribePushFields = {}): string {
  let body = ''
  if (fields.recoverable === true) body += ',"recoverable":true'
  body += position(fields.epoch, fields.offset)
  if (fields.positioned === true) body += ',"positioned":true'
  body += json('data', fields.data)
  return `{"push":{"channel":${JSON.stringify(channel)},"subscribe":${object(body)}}}`
}

/**
 * A disconnect as a push (a `DisconnectCode` entry). Over a WebSocket the
 * endpoint closes with the code and reason instead, as Centrifugo does.
 */
export function disconnectPush (advice: Advice): string {
  return `{"push":{"disconnect":${advised(advice)}}}`
}

// ------------------------------------------------------------ pieces

/** `value` as a non-negative integer of JSON, or a TypeError: NaN would go out as `null`, and a fraction would not decode as a uint. */
function uint (value: number, name: string, max: number): number {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new TypeError(`${name} must be an integer from 0 to ${max}, got ${String(value)}`)
  return value
}

/** Object text from members that each start with a comma. */
function object (body: string): string {
  return body === '' ? '{}' : `{${body.slice(1)}}`
}

/**
 * `,"name":<JSON>` for a JSON value from an application, nothing when it is
 * undefined. Bytes (a Uint8Array, which Protobuf clients get as they are)
 * must hold JSON text here, spliced as it is.
 */
function json (name: string, value: unknown): string {
  if (value === undefined) return ''
  if (value instanceof Uint8Array) {
    const text = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString()
    try {
      JSON.parse(text)
    } catch {
      throw new TypeError(`${name} must be JSON text to reach a JSON client, got bytes that are not`)
    }
    return `,"${name}":${spliced(text)}`
  }
  return `,"${name}":${stringify(value, name)}`
}

/** JSON.stringify, or a TypeError for a value it cannot write (a function, a symbol; it throws itself for a BigInt or a cycle). */
function stringify (value: unknown, name: string): string {
  const text = JSON.stringify(value) as string | undefined
  if (text === undefined) throw new TypeError(`${name} must be a JSON value`)
  return text
}

/**
 * Publication data (JSON text) as it can go inside one line. Valid JSON has
 * a raw line feed only as whitespace between tokens (never in a string), and
 * a line feed would end the line for the client: it becomes a space, which
 * leaves the value and the length as they were. Anything else is spliced
 * byte for byte.
 */
function spliced (dataJson: string): string {
  if (dataJson.length === 0) throw new TypeError('data must be JSON text, got an empty string')
  return dataJson.includes('\n') ? dataJson.replaceAll('\n', ' ') : dataJson
}

function expiry (fields: Expiry): string {
  if (fields.expires !== true) return ''
  return `,"expires":true,"ttl":${uint(fields.ttl, 'ttl', 0xFFFFFFFF)}`
}

function position (epoch: string | undefined, offset: number | undefined): string {
  let text = ''
  if (epoch !== undefined && epoch !== '') text += `,"epoch":${JSON.stringify(epoch)}`
  if (offset !== undefined && offset !== 0) text += `,"offset":${uint(offset, 'offset', Number.MAX_SAFE_INTEGER)}`
  return text
}

function advised (advice: Advice): string {
  return `{"code":${uint(advice.code, 'code', 0xFFFFFFFF)},"reason":${JSON.stringify(advice.reason)}}`
}

function clientInfo (info: ClientInfo): string {
  let text = `{"user":${JSON.stringify(info.user)},"client":${JSON.stringify(info.client)}`
  if (info.conn_info !== undefined) text += `,"conn_info":${stringify(info.conn_info, 'conn_info')}`
  if (info.chan_info !== undefined) text += `,"chan_info":${stringify(info.chan_info, 'chan_info')}`
  return text + '}'
}

function publication (pub: PushPublication): string {
  return publicationWith(`{"data":${spliced(pub.data)}`, pub)
}

/** A publication's members after its data (`head`, which opens the object). */
function publicationWith (head: string, pub: Omit<PushPublication, 'data'>): string {
  let text = head
  if (pub.offset !== undefined && pub.offset !== 0) text += `,"offset":${uint(pub.offset, 'offset', Number.MAX_SAFE_INTEGER)}`
  if (pub.epoch !== undefined && pub.epoch !== '') text += `,"epoch":${JSON.stringify(pub.epoch)}`
  if (pub.info !== undefined) text += `,"info":${clientInfo(pub.info)}`
  if (pub.tags !== undefined && Object.keys(pub.tags).length > 0) text += `,"tags":${JSON.stringify(pub.tags)}`
  return text + '}'
}

/** What becomes of publications whose data is bytes that are not JSON, in a JSON reply. */
export type BinaryPublications = 'omit' | 'b64data'

/**
 * `,"publications":[…]` for history and recovery, the same objects as a
 * `pub` push's; nothing when none is left.
 */
function publications (pubs: readonly Publication[], binary: BinaryPublications): string {
  const items: string[] = []
  for (const pub of pubs) {
    if (typeof pub.data === 'string') items.push(publication(pub as PushPublication))
    else if (binary === 'b64data') items.push(publicationWith(`{"b64data":"${pub.data.toString('base64')}"`, pub))
  }
  return items.length === 0 ? '' : `,"publications":[${items.join(',')}]`
}
