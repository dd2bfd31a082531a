import type { ClientInfo, Publication } from '../../channels/types.js'
import type { WireProtocol } from '../../core/protocol.js'
import type { Method, ParsedFrame } from './commands.js'
import type { Advice, ReplyError } from './codes.js'

/**
 * One encoding of Centrifugo's client protocol: JSON (text frames of
 * newline-separated objects) or Protobuf (binary frames of
 * varint-length-delimited messages). A session speaks through the codec its
 * connection chose at the upgrade; what it says is the same either way.
 */
export interface ClientCodec {
  readonly name: 'json' | 'protobuf'
  /** How the engine's envelopes become this codec's pushes: built once per envelope, shared by its connections. */
  readonly wire: WireProtocol
  /** The server's ping: the client answers with the same when the connect result said `pong: true`. */
  readonly ping: Buffer
  /** The commands of one frame, in order, or why the frame breaks the protocol. */
  parse: (data: Buffer, isBinary: boolean) => ParsedFrame
  /** A successful reply. */
  reply: <M extends ReplyMethod>(id: number, method: M, result?: NoInfer<Result<M>>) => Buffer
  /** An error reply; pass an entry of `ErrorCode`. */
  errorReply: (id: number, error: ReplyError) => Buffer
  connectResult: (fields: ConnectResultFields) => Result<'connect'>
  subscribeResult: (fields: SubscribeResultFields) => Result<'subscribe'>
  historyResult: (fields: HistoryResultFields) => Result<'history'>
  presenceResult: (clients: Readonly<Record<string, ClientInfo>>) => Result<'presence'>
  presenceStatsResult: (fields: PresenceStatsResultFields) => Result<'presence_stats'>
  refreshResult: (fields: Expiry) => Result<'refresh'>
  subRefreshResult: (fields: Expiry) => Result<'sub_refresh'>
  /** The RPC's answer: any JSON value, raw bytes (a Uint8Array), or none. */
  rpcResult: (data?: unknown) => Result<'rpc'>
  /** Ends a subscription (an `UnsubscribeCode` entry): from 2500 on the client subscribes again. */
  unsubscribePush: (channel: string, advice: Advice) => Buffer
  /** A server-side subscription made while connected: the client-level `subscribed` event. */
  subscribePush: (channel: string, fields?: SubscribePushFields) => Buffer
}

/** Methods that are answered (all but `send`). */
export type ReplyMethod = Exclude<Method, 'send'>

declare const kind: unique symbol

/**
 * One method's result in a codec's own form. Only that codec's builders make
 * one, so a result always answers the method it was built for and goes
 * back to the codec that made it.
 */
export interface Result<M extends ReplyMethod> { readonly [kind]: { readonly [K in M]: true } }

/** When a token expires: `ttl` seconds from now the client refreshes it (a refresh is due at once with 0). */
export type Expiry = { readonly expires: true, readonly ttl: number } | { readonly expires?: false, readonly ttl?: undefined }

export type ConnectResultFields = Expiry & {
  /** This connection's id (client-visible, unique). */
  readonly client: string
  readonly version?: string
  /** Any JSON value for the client's `connected` event. */
  readonly data?: unknown
  /** Every server-side subscription, each a `subscribeResult`: a channel missing here is unsubscribed on the client. */
  readonly subs?: Readonly<Record<string, Result<'subscribe'>>>
  /** Seconds between the server's pings; 0 or absent: the client checks nothing. */
  readonly ping?: number
  /** Whether the client answers each ping. */
  readonly pong?: boolean
}

export type SubscribeResultFields = Expiry & {
  /** The client stores `epoch` and `offset` and recovers from them next time; false or absent: it stops asking. */
  readonly recoverable?: boolean
  readonly positioned?: boolean
  /** Never empty on a recoverable channel: an empty epoch matches any. */
  readonly epoch?: string
  /** The stream's top, or the client's own offset when `recovered` (the publications move it forward). */
  readonly offset?: number
  /** The request had `recover`. */
  readonly was_recovering?: boolean
  readonly recovered?: boolean
  /** Delivered in order after the `subscribed` event (in a connect result's `subs`: only if `recovered`). */
  readonly publications?: readonly Publication[]
  /** Any JSON value for the `subscribed` event. */
  readonly data?: unknown
}

export interface HistoryResultFields {
  readonly publications: readonly Publication[]
  readonly epoch: string
  /** The stream's top. */
  readonly offset: number
}

export interface PresenceStatsResultFields {
  readonly num_clients: number
  readonly num_users: number
}

export interface SubscribePushFields {
  readonly recoverable?: boolean
  readonly positioned?: boolean
  readonly epoch?: string
  readonly offset?: number
  readonly data?: unknown
}
