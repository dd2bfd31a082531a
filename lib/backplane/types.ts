import type { ClientInfo, HistoryLimits, HistoryPage, HistoryQuery, PresenceStore, StreamPosition } from '../channels/types.js'
import type { DeliveryResult } from '../types.js'

/**
 * One message on its way to connections: its data as JSON text (serialized
 * once, by the instance that accepted it) and who it is for. Each protocol
 * builds its frame around the data once per instance (core/protocol.ts).
 */
export interface Envelope {
  readonly id: string
  /** The data as JSON text (raw bytes when `binary`); empty for control envelopes and join/leave notices. */
  readonly data: Buffer
  /**
   * The data is bytes that are not JSON (a channel publication only): the
   * Protobuf codec delivers them untouched, the JSON protocols cannot.
   */
  readonly binary?: boolean
  /** Only these users' connections; everyone when absent. */
  readonly users?: readonly string[]
  /** Skip these users' connections. */
  readonly except?: readonly string[]
  /** Only this connection. */
  readonly connectionId?: string
  /**
   * A control message instead of a message: close the targeted connections
   * with this code and reason (no data). Code 0: each endpoint's own code
   * for a server disconnect (4000 on /ws, 3503 for Centrifugo's SDKs).
   */
  readonly disconnect?: { readonly code: number, readonly reason: string }
  /** A publication to (or a join/leave notice of) this channel's subscribers, instead of a message to users. */
  readonly channel?: string
  /** The publication's place in the channel's stream, when the channel keeps history. */
  readonly offset?: number
  readonly epoch?: string
  /** Who published, joined or left. */
  readonly info?: ClientInfo
  /** A join/leave notice instead of a publication (no data, no offset). */
  readonly presence?: 'join' | 'leave'
  /**
   * A control message instead of a message: subscribe the targeted users'
   * connections to `channel` on the server side (or end that subscription).
   */
  readonly subscription?: { readonly channel: string, readonly subscribe: boolean }
}

/** What one instance did with an envelope. */
export interface LocalDelivery {
  id: string
  delivered: number
  dropped: number
}

/** Writes an envelope to the matching local connections. */
export type Deliver = (envelope: Envelope) => LocalDelivery

/**
 * Told when this instance stops receiving what other instances publish
 * (`'lost'`) and when it receives again (`'restored'`): connections open in
 * between may have missed messages.
 */
export type GapListener = (phase: 'lost' | 'restored') => void

/** A question every instance answers about itself (the server API's `channels` and `info`). */
export type SurveyQuestion =
  | { readonly kind: 'channels', readonly pattern?: string }
  | { readonly kind: 'node' }

/** This instance's answer to a survey's question: any JSON value. */
export type SurveyResponder = (question: SurveyQuestion) => unknown

/**
 * What joins instances. Every instance, the publishing one included, delivers
 * what is published from its subscription, so each connection receives each
 * message once, in publish order. The embedded backplane joins nothing but
 * this process; the Redis one joins every instance on a Redis.
 */
export interface Backplane {
  /**
   * Starts delivering published envelopes to `deliver`, reporting gaps to
   * `onGap`, and answering other instances' surveys with `respond`.
   */
  start: (deliver: Deliver, onGap: GapListener, respond: SurveyResponder) => Promise<void>
  /**
   * Asks every instance, this one included, and resolves with each one's
   * answer. Rejects with FST_FANOUT_SURVEY_FAILED when Redis is unreachable
   * or some instance did not answer within `timeout` ms: an answer from
   * some instances only would pass for the whole picture.
   */
  survey: (question: SurveyQuestion, timeout: number) => Promise<unknown[]>
  /** Publishes an envelope to every instance that holds one of its targets. */
  publish: (envelope: Envelope) => Promise<DeliveryResult>
  /** This instance now holds a connection of `userId`: receive that user's messages. */
  watchUser: (userId: string) => void
  /** This instance no longer holds a connection of `userId`. */
  unwatchUser: (userId: string) => void
  /** This instance now holds a subscriber of `channel`: receive its publications. */
  watchChannel: (channel: string) => void
  /** This instance no longer holds a subscriber of `channel`. */
  unwatchChannel: (channel: string) => void
  /** Resolves once this instance receives what is published to `channel` (after watchChannel). */
  watching: (channel: string) => Promise<void>
  /**
   * Appends a channel publication to the channel's history and publishes it
   * with its offset and epoch, atomically: every instance delivers it with
   * the same position, and history holds exactly what was delivered.
   * Rejects when the history cannot be reached (nothing is delivered).
   */
  publishWithHistory: (envelope: Envelope, limits: HistoryLimits) => Promise<ChannelPublishResult>
  /** Reads a channel's history (any instance's publications). */
  history: (channel: string, query: HistoryQuery, limits: HistoryLimits) => Promise<HistoryPage>
  /** Drops a channel's publications, keeping its position. */
  removeHistory: (channel: string) => Promise<void>
  /** Who is subscribed to which channel, across instances. */
  readonly presence: PresenceStore
  /** Whether messages currently reach the other instances. */
  readonly up: boolean
  /** Stops delivering and releases what the backplane created. */
  close: () => Promise<void>
}

/** What publishing to a channel with history did: the delivery, and the publication's position. */
export interface ChannelPublishResult extends DeliveryResult {
  readonly position: StreamPosition
}
