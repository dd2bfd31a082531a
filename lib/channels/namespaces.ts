/**
 * Channel namespaces: the options that govern a group of channels, and the
 * rules that say which namespace a channel name belongs to. The meanings are
 * Centrifugo's, so that its client SDKs see the behaviour they expect:
 *
 * - `chat:room1` belongs to the namespace `chat` (split at the first `:`);
 *   a channel without `:`, or with nothing before it (`:news`), belongs to
 *   the default namespace; a namespace that is not configured is
 *   `102 unknown channel`.
 * - A leading `$` (Centrifugo's private prefix) is not part of the namespace
 *   name (`$chat:room1` is in `chat`), and only a subscription token admits
 *   to such a channel.
 * - In a user-limited namespace, the part after the last `#` lists the users
 *   who may subscribe without a subscription token (`dialog#42,43`, `#42`);
 *   elsewhere `#` is just a character of the name.
 *
 * Protocol-free: the protocols turn a lookup's code into their own answer.
 */
import { InvalidOptionError } from '../errors.js'
import { boolean, integer, optionObject } from '../option-checks.js'
import type { FanoutConnection } from '../types.js'
import type { HistoryLimits } from './types.js'

/**
 * Whether a connection may subscribe to a channel without a subscription
 * token (a valid subscription token always admits): `'user'` any connection
 * (every connection is authenticated), `'token'` none, or a function deciding
 * per connection and channel.
 */
export type SubscribeRule = 'user' | 'token' | AuthorizeSubscribe

/** Decides whether `connection` may subscribe to `channel` without a subscription token. */
export type AuthorizeSubscribe = (connection: FanoutConnection, channel: string) => boolean | Promise<boolean>

/** Decides whether `connection`, a subscriber of `channel`, may publish `data` to it from the client. */
export type AuthorizePublish = (connection: FanoutConnection, channel: string, data: unknown) => boolean | Promise<boolean>

/** How the channels of one namespace behave (Centrifugo's channel options). */
export interface NamespaceOptions {
  /**
   * Publications kept per channel, for history calls and recovery; 0 keeps
   * none. Needs `historyTtl` when above 0 (Centrifugo's `history_size`).
   * @defaultValue 0
   */
  historySize?: number
  /**
   * Milliseconds a channel's publications are kept after its last
   * publication (Centrifugo's `history_ttl`). Required when `historySize` is
   * above 0, and only then.
   * @defaultValue none: required with history
   */
  historyTtl?: number
  /**
   * Milliseconds a channel's stream position (epoch and top offset) is kept
   * after its last publication, so that a client returning after the
   * publications expired learns it cannot recover (Centrifugo's
   * `history_meta_ttl`). At least `historyTtl`; only with history.
   * @defaultValue 2592000000 (30 days)
   */
  historyMetaTtl?: number
  /**
   * Every subscription is recoverable: a client coming back gets what it
   * missed from history, or is told it cannot (Centrifugo's
   * `force_recovery`). Needs history; implies `positioning`.
   * @defaultValue false
   */
  recovery?: boolean
  /**
   * Every subscription is positioned: a subscriber that may have missed a
   * publication is told so (Centrifugo's `force_positioning`). Needs history.
   * @defaultValue false (true when `recovery` is)
   */
  positioning?: boolean
  /**
   * Keep who is subscribed to each channel, for presence calls (Centrifugo's
   * `presence`).
   * @defaultValue false
   */
  presence?: boolean
  /**
   * Send join and leave messages to the subscribers that ask for them
   * (Centrifugo's `join_leave`).
   * @defaultValue false
   */
  joinLeave?: boolean
  /**
   * Send join and leave messages to every subscriber, asked or not
   * (Centrifugo's `force_push_join_leave`). Needs `joinLeave`.
   * @defaultValue false
   */
  forcePushJoinLeave?: boolean
  /**
   * Who may subscribe without a subscription token: `'user'` any connection,
   * `'token'` nobody (a subscription token is required), or a function
   * deciding. A valid subscription token always admits. (In Centrifugo's
   * terms: `'user'` is `allow_subscribe_for_client`, `'token'` is a namespace
   * with neither it nor a subscribe proxy, a function is a subscribe proxy.)
   * @defaultValue 'user'
   */
  subscribe?: SubscribeRule
  /**
   * Whether subscribers may publish from the client: true, false, or a
   * function deciding per publication (Centrifugo's
   * `allow_publish_for_subscriber`, or a publish proxy).
   * @defaultValue false
   */
  publish?: boolean | AuthorizePublish
  /**
   * Channels with a `#` admit, without a subscription token, exactly the
   * users listed after the last `#`, comma-separated (`dialog#42,43`, `#42`),
   * whatever `subscribe` says (Centrifugo's `allow_user_limited_channels`).
   * @defaultValue false
   */
  userLimited?: boolean
}

/** The channels a client may use, by namespace, and the limits shared by all. */
export interface ChannelsOptions {
  /**
   * Options of channels without a namespace (`news`: no `:`, or nothing
   * before it); false refuses such channels (`102 unknown channel`).
   * @defaultValue {} (every option at its default)
   */
  default?: NamespaceOptions | false
  /**
   * Namespaces by name: `chat` governs `chat:room1`. A name is 2 or more of
   * letters, digits, `-`, `_` and `.` (Centrifugo's rule). A channel in a
   * namespace not listed here is `102 unknown channel`.
   * @defaultValue {}
   */
  namespaces?: Record<string, NamespaceOptions>
  /**
   * Longest channel name, in bytes (UTF-8) (Centrifugo's
   * `channel.max_length`).
   * @defaultValue 255
   */
  maxChannelLength?: number
  /**
   * Most subscriptions one connection may hold (Centrifugo's
   * `client.channel_limit`).
   * @defaultValue 128
   */
  maxPerConnection?: number
  /**
   * Most publications one history call returns, and what a limit of -1
   * means (Centrifugo's `client.history_max_publication_limit`).
   * @defaultValue 300
   */
  historyMaxLimit?: number
  /**
   * Most publications a recovery returns: a client that missed more is told
   * it cannot recover (Centrifugo's `client.recovery_max_publication_limit`).
   * @defaultValue 300
   */
  recoveryMaxPublications?: number
  /**
   * Milliseconds a presence entry lives unless its instance refreshes it (an
   * instance that dies leaves nothing behind for longer).
   * @defaultValue 60000
   */
  presenceTtl?: number
}

/** A namespace's options after defaults and validation (frozen). */
export interface ResolvedNamespace {
  /** The namespace's name; '' for the default namespace (channels without `:`, or with nothing before it). */
  readonly name: string
  /** History settings; absent: no history. */
  readonly history: HistoryLimits | undefined
  /** Every subscription is recoverable (only with history). */
  readonly recovery: boolean
  /** Every subscription is positioned (only with history; true whenever `recovery` is). */
  readonly positioning: boolean
  readonly presence: boolean
  readonly joinLeave: boolean
  /** Join and leave go to every subscriber (only with `joinLeave`). */
  readonly forcePushJoinLeave: boolean
  /** The `subscribe` option as given (a function is kept as is). */
  readonly subscribe: 'user' | 'token' | AuthorizeSubscribe
  /** The `publish` option as given (a function is kept as is). */
  readonly publish: false | true | AuthorizePublish
  readonly userLimited: boolean
}

/**
 * What a channel name resolves to. Failure codes are Centrifugo's: 102
 * unknown channel (its namespace is not configured, or channels without a
 * namespace are refused), 107 bad request (the name itself is not allowed:
 * empty, too long, or holding a control character or an unpaired surrogate).
 */
export type ChannelLookup =
  | {
    readonly ok: true
    readonly namespace: ResolvedNamespace
    /**
     * In a user-limited namespace, for a channel with a `#`: the user ids
     * after the last `#` (empty entries dropped: no user id is empty). Only
     * these users may subscribe without a subscription token, whatever the
     * namespace's `subscribe` says. Absent otherwise.
     */
    readonly users: readonly string[] | undefined
    /**
     * The channel starts with `$`, Centrifugo's private prefix: only a
     * subscription token admits, whatever `subscribe` and `users` say.
     */
    readonly private: boolean
  }
  | { readonly ok: false, readonly code: 102 | 107, readonly reason: string }

/** The `channels` option after defaults and validation (frozen). */
export interface ResolvedChannels {
  readonly maxChannelLength: number
  readonly maxPerConnection: number
  readonly historyMaxLimit: number
  readonly recoveryMaxPublications: number
  readonly presenceTtl: number
  /** The namespace `channel` belongs to, or why it has none; never throws. */
  lookup: (channel: string) => ChannelLookup
  /** Every namespace a channel can resolve to: the default one (name '') first, unless refused. */
  readonly namespaces: readonly ResolvedNamespace[]
}

export const channelDefaults = {
  historySize: 0,
  historyMetaTtl: 30 * 24 * 60 * 60 * 1000,
  subscribe: 'user',
  maxChannelLength: 255,
  maxPerConnection: 128,
  historyMaxLimit: 300,
  recoveryMaxPublications: 300,
  presenceTtl: 60_000
} as const

/** Most publications a namespace may keep per channel. */
export const MAX_HISTORY_SIZE = 100_000
/** Longest history TTL: ten years, in milliseconds. */
const MAX_TTL = 10 * 365 * 24 * 60 * 60 * 1000
/** Longest channel name a `maxChannelLength` may allow, in bytes. */
const MAX_CHANNEL_LENGTH = 65_535
/** Centrifugo's namespace name rule (the one its configuration check applies). */
const NAMESPACE_NAME = /^[-a-zA-Z0-9_.]{2,}$/
/** Control characters (C0, DEL, C1) and unpaired UTF-16 surrogates. */
const FORBIDDEN_CHARACTER = /[\p{Cc}\p{Cs}]/u
const PRIVATE_PREFIX = 0x24 // '$'

const channelsNames: Record<keyof ChannelsOptions, true> = {
  default: true,
  namespaces: true,
  maxChannelLength: true,
  maxPerConnection: true,
  historyMaxLimit: true,
  recoveryMaxPublications: true,
  presenceTtl: true
}
const namespaceNames: Record<keyof NamespaceOptions, true> = {
  historySize: true,
  historyTtl: true,
  historyMetaTtl: true,
  recovery: true,
  positioning: true,
  presence: true,
  joinLeave: true,
  forcePushJoinLeave: true,
  subscribe: true,
  publish: true,
  userLimited: true
}

/** Validates the `channels` option (at register time) and builds its lookup. */
export function resolveChannels (value: ChannelsOptions | undefined): ResolvedChannels {
  if (value === undefined) value = {}
  optionObject('channels', value, channelsNames, 'must be an object: { default, namespaces, maxChannelLength, maxPerConnection, historyMaxLimit, recoveryMaxPublications, presenceTtl }')
  const maxChannelLength = integer('channels.maxChannelLength', value.maxChannelLength ?? channelDefaults.maxChannelLength, 1, MAX_CHANNEL_LENGTH, 'bytes')
  const maxPerConnection = integer('channels.maxPerConnection', value.maxPerConnection ?? channelDefaults.maxPerConnection, 1, 2 ** 31 - 1, 'subscriptions')
  const historyMaxLimit = integer('channels.historyMaxLimit', value.historyMaxLimit ?? channelDefaults.historyMaxLimit, 1, MAX_HISTORY_SIZE, 'publications')
  const recoveryMaxPublications = integer('channels.recoveryMaxPublications', value.recoveryMaxPublications ?? channelDefaults.recoveryMaxPublications, 1, MAX_HISTORY_SIZE, 'publications')
  const presenceTtl = integer('channels.presenceTtl', value.presenceTtl ?? channelDefaults.presenceTtl, 1000, 2 ** 31 - 1, 'milliseconds')

  const defaultOption = value.default ?? {}
  const defaultNamespace = defaultOption === false ? undefined : namespace('channels.default', '', defaultOption)

  const byName = new Map<string, ResolvedNamespace>()
  const namespaces = value.namespaces ?? {}
  if (typeof namespaces !== 'object' || Array.isArray(namespaces)) {
    throw new InvalidOptionError('channels.namespaces', `must be an object of namespace options by name, e.g. { chat: { historySize: 100, historyTtl: 300000 } }, got ${shown(namespaces)}`)
  }
  for (const [name, options] of Object.entries(namespaces)) {
    const path = `channels.namespaces.${name}`
    if (!NAMESPACE_NAME.test(name)) {
      throw new InvalidOptionError(path, `has an invalid namespace name: use 2 or more letters, digits, '-', '_' or '.' (Centrifugo's rule, /${NAMESPACE_NAME.source}/), got ${JSON.stringify(name)}`)
    }
    if (name.length + 1 > maxChannelLength) {
      throw new InvalidOptionError(path, `has a name too long for any of its channels (\`${name}:...\`) to fit in channels.maxChannelLength (${maxChannelLength} bytes): shorten it or raise maxChannelLength`)
    }
    byName.set(name, namespace(path, name, options))
  }

  const all = defaultNamespace === undefined ? [...byName.values()] : [defaultNamespace, ...byName.values()]
  const tooLong: ChannelLookup = Object.freeze({ ok: false, code: 107, reason: `channel is longer than ${maxChannelLength} bytes` })

  function lookup (channel: string): ChannelLookup {
    if (typeof channel !== 'string') return NOT_A_STRING
    if (channel === '') return EMPTY
    // UTF-8 takes at least one byte per UTF-16 unit and at most three, so
    // the byte count is needed only between those bounds.
    if (channel.length > maxChannelLength) return tooLong
    if (channel.length * 3 > maxChannelLength && Buffer.byteLength(channel, 'utf8') > maxChannelLength) return tooLong
    if (FORBIDDEN_CHARACTER.test(channel)) return FORBIDDEN
    const isPrivate = channel.charCodeAt(0) === PRIVATE_PREFIX
    const start = isPrivate ? 1 : 0
    const boundary = channel.indexOf(':', start)
    let resolved: ResolvedNamespace | undefined
    // No `:`, or nothing before it (`:news`, which Centrifugo reads as no
    // namespace too): the default namespace.
    if (boundary === -1 || boundary === start) {
      resolved = defaultNamespace
      if (resolved === undefined) return NO_DEFAULT
    } else {
      const name = channel.slice(start, boundary)
      resolved = byName.get(name)
      if (resolved === undefined) {
        return Object.freeze({ ok: false, code: 102, reason: `namespace ${JSON.stringify(name)} is not configured (channels.namespaces)` })
      }
    }
    let users: readonly string[] | undefined
    if (resolved.userLimited) {
      const hash = channel.lastIndexOf('#')
      if (hash !== -1) users = Object.freeze(channel.slice(hash + 1).split(',').filter((user) => user !== ''))
    }
    return Object.freeze({ ok: true, namespace: resolved, users, private: isPrivate })
  }

  return Object.freeze({
    maxChannelLength,
    maxPerConnection,
    historyMaxLimit,
    recoveryMaxPublications,
    presenceTtl,
    lookup,
    namespaces: Object.freeze(all)
  })
}

const NOT_A_STRING: ChannelLookup = Object.freeze({ ok: false, code: 107, reason: 'channel is not a string' })
const EMPTY: ChannelLookup = Object.freeze({ ok: false, code: 107, reason: 'channel is empty' })
const FORBIDDEN: ChannelLookup = Object.freeze({ ok: false, code: 107, reason: 'channel has a control character or an unpaired surrogate' })
const NO_DEFAULT: ChannelLookup = Object.freeze({ ok: false, code: 102, reason: 'channels without a namespace are refused (channels.default is false)' })

function namespace (path: string, name: string, value: unknown): ResolvedNamespace {
  optionObject(path, value, namespaceNames, 'must be an object of namespace options, e.g. { historySize: 100, historyTtl: 300000, recovery: true }' +
    (name === '' ? ', or false to refuse channels without a namespace' : ''))

  const size = integer(`${path}.historySize`, value.historySize ?? channelDefaults.historySize, 0, MAX_HISTORY_SIZE, 'publications')
  let history: HistoryLimits | undefined
  if (size > 0) {
    if (value.historyTtl === undefined || value.historyTtl === null) {
      throw new InvalidOptionError(`${path}.historyTtl`, 'is required with historySize: set how many milliseconds a channel\'s publications are kept after its last one (e.g. 300000 for 5 minutes)')
    }
    const ttl = integer(`${path}.historyTtl`, value.historyTtl, 1, MAX_TTL, 'milliseconds')
    const metaTtl = integer(`${path}.historyMetaTtl`, value.historyMetaTtl ?? channelDefaults.historyMetaTtl, 1, MAX_TTL, 'milliseconds')
    if (metaTtl < ttl) {
      throw new InvalidOptionError(`${path}.historyMetaTtl`, `must be at least historyTtl (${ttl}), got ${metaTtl}${value.historyMetaTtl === undefined ? ' (its default, 30 days)' : ''}: the stream position must outlive the publications`)
    }
    history = Object.freeze({ size, ttl, metaTtl })
  } else {
    for (const option of ['historyTtl', 'historyMetaTtl'] as const) {
      if (value[option] !== undefined && value[option] !== null) {
        throw new InvalidOptionError(`${path}.${option}`, 'has no effect without history: set historySize too (publications kept per channel), or remove it')
      }
    }
  }

  const recovery = boolean(`${path}.recovery`, value.recovery ?? false)
  if (recovery && history === undefined) {
    throw new InvalidOptionError(`${path}.recovery`, 'needs history: set historySize and historyTtl too (recovery replays publications from history)')
  }
  const positioning = value.positioning === undefined || value.positioning === null ? recovery : boolean(`${path}.positioning`, value.positioning)
  if (recovery && !positioning) {
    throw new InvalidOptionError(`${path}.positioning`, 'cannot be false when recovery is true (a recoverable subscription is positioned): remove it')
  }
  if (positioning && history === undefined) {
    throw new InvalidOptionError(`${path}.positioning`, 'needs history: set historySize and historyTtl too (positions are checked against history)')
  }

  const joinLeave = boolean(`${path}.joinLeave`, value.joinLeave ?? false)
  const forcePushJoinLeave = boolean(`${path}.forcePushJoinLeave`, value.forcePushJoinLeave ?? false)
  if (forcePushJoinLeave && !joinLeave) {
    throw new InvalidOptionError(`${path}.forcePushJoinLeave`, 'needs joinLeave: true (there are no join and leave messages to push without it)')
  }

  return Object.freeze({
    name,
    history,
    recovery,
    positioning,
    presence: boolean(`${path}.presence`, value.presence ?? false),
    joinLeave,
    forcePushJoinLeave,
    subscribe: subscribeRule(`${path}.subscribe`, value.subscribe ?? channelDefaults.subscribe),
    publish: publishRule(`${path}.publish`, value.publish ?? false),
    userLimited: boolean(`${path}.userLimited`, value.userLimited ?? false)
  })
}

function subscribeRule (name: string, value: unknown): SubscribeRule {
  if (value === 'user' || value === 'token') return value
  if (typeof value === 'function') return value as AuthorizeSubscribe
  throw new InvalidOptionError(name, `must be 'user', 'token' or a function (connection, channel) => boolean, got ${shown(value)}`)
}

function publishRule (name: string, value: unknown): boolean | AuthorizePublish {
  if (typeof value === 'boolean') return value
  if (typeof value === 'function') return value as AuthorizePublish
  throw new InvalidOptionError(name, `must be true, false or a function (connection, channel, data) => boolean, got ${shown(value)}`)
}

// A value as an error message shows it (JSON.stringify throws on a bigint
// and writes nothing for a symbol).
function shown (value: unknown): string {
  if (typeof value === 'bigint' || typeof value === 'symbol') return String(value)
  return JSON.stringify(value)
}
