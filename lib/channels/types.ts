/**
 * Channel data shared by the history and presence stores (memory and Redis)
 * and by the protocols that speak them. Protocol-free: field names follow
 * the Centrifugo client protocol only where they travel as JSON unchanged
 * (`ClientInfo`).
 */

/** Where a channel's stream stands: the offset of its last publication, and its epoch. */
export interface StreamPosition {
  /** Offset of the newest publication (0: none yet). Offsets increase by one per publication. */
  readonly offset: number
  /** Names one life of the stream; a new epoch means the stream was lost and offsets restarted. */
  readonly epoch: string
}

/** Who published, joined or left, as subscribers see it (JSON, as it goes on the wire). */
export interface ClientInfo {
  /** User id. */
  readonly user: string
  /** Connection (client) id. */
  readonly client: string
  /** The connection's `info` claim, when its token had one. */
  readonly conn_info?: unknown
  /** The subscription token's `info` claim, when it had one. */
  readonly chan_info?: unknown
}

/** One publication kept in a channel's history. */
export interface Publication {
  readonly offset: number
  /**
   * The publication's data as JSON text, exactly as it was published
   * (serialized once); a Buffer when it was published as bytes that are not
   * JSON (only Protobuf clients receive those).
   */
  readonly data: string | Buffer
  readonly info?: ClientInfo
}

/** A namespace's history settings. */
export interface HistoryLimits {
  /** Most publications kept per channel (> 0). */
  readonly size: number
  /** Milliseconds a channel's publications are kept after its last publication (> 0). */
  readonly ttl: number
  /**
   * Milliseconds the stream's position (epoch and top offset) is kept after
   * its last publication; longer than `ttl`, so that a client coming back
   * after the publications expired learns it cannot recover, instead of
   * seeing offsets start again in a new epoch it cannot tell from the old one.
   */
  readonly metaTtl: number
}

/** What a history read asks for. */
export interface HistoryQuery {
  /** Most publications to return: 0 returns only the position, -1 every one kept. */
  readonly limit: number
  /** Only publications after this position (its epoch must be the stream's, when given). */
  readonly since?: StreamPosition
  /** Newest first. */
  readonly reverse?: boolean
}

/** What a history read returns. */
export interface HistoryPage {
  /** The stream's position now (a stream read before any publication gets an epoch and offset 0). */
  readonly position: StreamPosition
  readonly publications: Publication[]
}

/** Counts of a channel's presence. */
export interface PresenceStats {
  readonly numClients: number
  readonly numUsers: number
}

/**
 * Who is subscribed to which channel, with entries that expire unless their
 * instance refreshes them (an instance that dies without closing leaves
 * nothing behind for longer than `ttl`). The same semantics in memory and
 * in Redis.
 */
export interface PresenceStore {
  /** Adds or refreshes `clientId`'s entry in `channel`, to expire `ttl` ms from now. */
  add: (channel: string, clientId: string, info: ClientInfo, ttl: number) => Promise<void>
  /** Removes `clientId`'s entry (nothing when absent). */
  remove: (channel: string, clientId: string) => Promise<void>
  /** The live entries, by client id. */
  get: (channel: string) => Promise<Record<string, ClientInfo>>
  /** Live clients and distinct users. */
  stats: (channel: string) => Promise<PresenceStats>
}
