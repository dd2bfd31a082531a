import { hostname } from 'node:os'
import type { Channels } from '../../channels/channels.js'
import type { ResolvedNamespace } from '../../channels/namespaces.js'
import type { SurveyQuestion } from '../../backplane/types.js'
import { isApplicationCloseCode, isCloseReason, MAX_CLOSE_REASON_BYTES } from '../../core/close-codes.js'
import { dataFromBytes, depthOf, MAX_DATA_DEPTH, serializeData, type PublicationData } from '../../core/data.js'
import type { Fanout } from '../../core/fanout.js'
import type { Registry } from '../../core/registry.js'
import { historyResult, presenceResult } from '../../protocols/centrifuge/replies.js'
import type { ChannelDeliveryResult, DeliveryResult } from '../../types.js'
import { userIdProblem } from '../../user-id.js'
import { compileChannelPattern } from './channel-pattern.js'

// The methods of Centrifugo's HTTP server API, on fastify-fanout's channels
// and engine. Each takes a body the route has validated against its schema
// and resolves with its `result`, or throws an ApiError that the route
// answers as `{"error":{"code","message"}}`. Messages start with
// Centrifugo's words for the code ("bad request") and say what was wrong.

/** The methods served, as Centrifugo names them (`<prefix>/<method>`). */
export const SERVER_API_METHODS = [
  'publish', 'broadcast', 'subscribe', 'unsubscribe', 'disconnect',
  'history', 'history_remove', 'presence', 'presence_stats', 'channels', 'info'
] as const

export type ServerApiMethod = typeof SERVER_API_METHODS[number]

/** Centrifugo's methods this API does not have, and why (answered with 104). */
export const UNSUPPORTED_METHODS: Readonly<Record<string, string>> = Object.freeze({
  batch: 'send each command to its own method',
  refresh: 'connections here are refreshed by their own tokens (the SDK\'s refresh)',
  rpc: 'the server API has no RPC extensions here',
  map_publish: 'map subscriptions are not supported',
  map_remove: 'map subscriptions are not supported',
  map_read_state: 'map subscriptions are not supported',
  map_read_stream: 'map subscriptions are not supported',
  map_stats: 'map subscriptions are not supported',
  map_clear: 'map subscriptions are not supported',
  shared_poll_publish: 'shared poll subscriptions are not supported'
})

/** How long `channels` and `info` wait for every instance's answer. */
export const SURVEY_TIMEOUT = 3000

/** A refusal in Centrifugo's terms: the route answers `{"error":{"code","message"}}` with HTTP 200. */
export class ApiError extends Error {
  readonly code: number
  constructor (code: number, message: string, options?: { cause: unknown }) {
    super(message, options)
    this.code = code
  }
}

export const internal = (detail: string, cause?: unknown): ApiError => new ApiError(100, `internal server error: ${detail}`, { cause })
const unknownChannel = (detail: string): ApiError => new ApiError(102, `unknown channel: ${detail}`)
export const notFound = (detail: string): ApiError => new ApiError(104, `not found: ${detail}`)
export const badRequest = (detail: string): ApiError => new ApiError(107, `bad request: ${detail}`)
const notAvailable = (detail: string): ApiError => new ApiError(108, `not available: ${detail}`)
const unrecoverable = (detail: string): ApiError => new ApiError(112, `unrecoverable position: ${detail}`)

/** What the methods work on. */
export interface ServerApiContext {
  readonly channels: Channels
  readonly engine: Fanout
  readonly registry: Registry
  readonly instanceId: string
  /** Asks every instance (backplane.survey). */
  readonly survey: (question: SurveyQuestion, timeout: number) => Promise<unknown[]>
  /** `Date.now()` when the plugin registered. */
  readonly startedAt: number
}

interface StreamPosition { offset?: number, epoch?: string }

/** Request bodies as their schemas admit them. */
export interface Requests {
  publish: PublishFields & { channel: string }
  broadcast: PublishFields & { channels: string[] }
  subscribe: {
    user: string
    channel: string
    client?: string
    info?: unknown
    b64info?: string
    session?: string
    data?: unknown
    b64data?: string
    recover_since?: StreamPosition
    expire_at?: number
    override?: Record<string, unknown>
  }
  unsubscribe: { user: string, channel: string, client?: string, session?: string }
  disconnect: { user: string, client?: string, session?: string, whitelist?: string[], disconnect?: { code: number, reason: string } }
  history: { channel: string, limit?: number, since?: StreamPosition, reverse?: boolean }
  history_remove: { channel: string }
  presence: { channel: string }
  presence_stats: { channel: string }
  channels: { pattern?: string }
  info: Record<string, never>
}

interface PublishFields {
  data?: unknown
  b64data?: string
  skip_history?: boolean
  tags?: Record<string, string>
  idempotency_key?: string
  delta?: boolean
  version?: number
  version_epoch?: string
}

interface PublishResult { offset?: number, epoch?: string }
type BroadcastResponse = { result: PublishResult } | { error: { code: number, message: string } }

/** A method's result: an object for the route's serializer, or JSON text built here (history, presence). */
export type MethodResult = object | { json: string }

export type ServerApiMethods = { [M in ServerApiMethod]: (body: Requests[M]) => Promise<MethodResult> }

/** One instance's answer to the `node` question, as `info` lists it. */
export interface NodeInfo {
  uid: string
  name: string
  num_clients: number
  num_users: number
  num_channels: number
  num_subs: number
  uptime: number
}

export function createMethods (context: ServerApiContext): ServerApiMethods {
  const { channels, engine } = context

  function namespaceOf (channel: string): ResolvedNamespace {
    const lookup = channels.settings.lookup(channel)
    if (lookup.ok) return lookup.namespace
    const detail = `${JSON.stringify(channel.slice(0, 100))}: ${lookup.reason}`
    throw lookup.code === 102 ? unknownChannel(detail) : badRequest(detail)
  }

  function withHistory (channel: string): ResolvedNamespace {
    const namespace = namespaceOf(channel)
    if (namespace.history === undefined) throw notAvailable(`channel ${JSON.stringify(channel)} is in a namespace without history (historySize and historyTtl)`)
    return namespace
  }

  function withPresence (channel: string): void {
    if (!namespaceOf(channel).presence) throw notAvailable(`channel ${JSON.stringify(channel)} is in a namespace without presence (presence: true)`)
  }

  function user (value: string, name = 'user'): string {
    const problem = userIdProblem(value)
    if (problem !== undefined) throw badRequest(`\`${name}\` ${problem}`)
    return value
  }

  async function publishTo (channel: string, namespace: ResolvedNamespace, data: PublicationData, skipHistory: boolean): Promise<PublishResult> {
    let published: ChannelDeliveryResult
    try {
      published = await channels.publish(channel, namespace, data.bytes, { skipHistory, binary: data.binary })
    } catch (err) {
      if ((err as { code?: unknown }).code === 'FST_FANOUT_HISTORY_UNAVAILABLE') throw internal((err as Error).message, err)
      throw err
    }
    refuseUnlessEverywhere(published, 'delivered to this instance\'s subscribers only')
    return { offset: published.offset, epoch: published.epoch }
  }

  return {
    async publish (body) {
      const namespace = namespaceOf(body.channel)
      refuseUnsupportedPublishFields(body)
      return await publishTo(body.channel, namespace, publicationData(body), body.skip_history === true)
    },

    async broadcast (body) {
      refuseUnsupportedPublishFields(body)
      const data = publicationData(body)
      const skipHistory = body.skip_history === true
      // Each channel on its own, as Centrifugo answers: one refused or
      // unpublished channel does not keep the others from their publication.
      const responses = await Promise.all(body.channels.map(async (channel): Promise<BroadcastResponse> => {
        try {
          return { result: await publishTo(channel, namespaceOf(channel), data, skipHistory) }
        } catch (err) {
          if (err instanceof ApiError) return { error: { code: err.code, message: err.message } }
          throw err
        }
      }))
      return { responses }
    },

    async subscribe (body) {
      const userId = user(body.user)
      namespaceOf(body.channel)
      refuseSet('subscribe', {
        info: body.info !== undefined,
        b64info: nonEmpty(body.b64info),
        session: nonEmpty(body.session),
        data: body.data !== undefined,
        b64data: nonEmpty(body.b64data),
        recover_since: body.recover_since !== undefined,
        expire_at: (body.expire_at ?? 0) !== 0,
        override: body.override !== undefined && Object.keys(body.override).length > 0
      })
      const done = await engine.subscription(userId, body.channel, true, client(body.client))
      refuseUnlessEverywhere(done, 'subscribed on this instance only')
      return {}
    },

    async unsubscribe (body) {
      const userId = user(body.user)
      namespaceOf(body.channel)
      refuseSet('unsubscribe', { session: nonEmpty(body.session) })
      const done = await engine.subscription(userId, body.channel, false, client(body.client))
      refuseUnlessEverywhere(done, 'unsubscribed on this instance only')
      return {}
    },

    async disconnect (body) {
      const userId = user(body.user)
      refuseSet('disconnect', { session: nonEmpty(body.session), whitelist: (body.whitelist ?? []).length > 0 })
      const { code, reason } = body.disconnect ?? { code: 0, reason: '' }
      if (body.disconnect !== undefined) {
        if (!isApplicationCloseCode(code)) throw badRequest(`disconnect.code ${code} is not a close code an application may send: use 1000 or 3000-4999`)
        if (!isCloseReason(reason)) throw badRequest(`disconnect.reason is longer than ${MAX_CLOSE_REASON_BYTES} bytes (UTF-8)`)
      }
      const done = await engine.disconnect(userId, code, reason, client(body.client))
      refuseUnlessEverywhere(done, 'disconnected on this instance only')
      return {}
    },

    async history (body) {
      const namespace = withHistory(body.channel)
      const since = body.since === undefined ? undefined : { offset: body.since.offset ?? 0, epoch: body.since.epoch ?? '' }
      const page = await backplaneCall('history', async () => await channels.history(body.channel, namespace, { limit: body.limit ?? 0, since, reverse: body.reverse === true }))
      if (since !== undefined && since.epoch !== '' && since.epoch !== page.position.epoch) {
        throw unrecoverable(`the stream's epoch is ${JSON.stringify(page.position.epoch)}, not ${JSON.stringify(since.epoch)}: its publications since then are lost`)
      }
      return { json: historyResult({ publications: page.publications, epoch: page.position.epoch, offset: page.position.offset }, 'b64data') }
    },

    async history_remove (body) {
      withHistory(body.channel)
      await backplaneCall('history_remove', async () => { await channels.removeHistory(body.channel) })
      return {}
    },

    async presence (body) {
      withPresence(body.channel)
      return { json: presenceResult(await backplaneCall('presence', async () => await channels.presence(body.channel))) }
    },

    async presence_stats (body) {
      withPresence(body.channel)
      const stats = await backplaneCall('presence_stats', async () => await channels.presenceStats(body.channel))
      return { num_clients: stats.numClients, num_users: stats.numUsers }
    },

    async channels (body) {
      if (body.pattern !== undefined) {
        const matcher = compileChannelPattern(body.pattern)
        if (typeof matcher !== 'function') throw badRequest(`pattern ${JSON.stringify(body.pattern.slice(0, 100))} is not a pattern: ${matcher.problem}`)
      }
      const answers = await surveyed({ kind: 'channels', pattern: body.pattern })
      const counts: Record<string, { num_clients: number }> = {}
      for (const answer of answers) {
        if (answer === null || typeof answer !== 'object') continue
        for (const [channel, count] of Object.entries(answer)) {
          if (typeof count !== 'number') continue
          const entry = counts[channel] ?? (counts[channel] = { num_clients: 0 })
          entry.num_clients += count
        }
      }
      return { channels: counts }
    },

    async info () {
      return { nodes: await surveyed({ kind: 'node' }) }
    }
  }

  async function surveyed (question: SurveyQuestion): Promise<unknown[]> {
    try {
      return await context.survey(question, SURVEY_TIMEOUT)
    } catch (err) {
      if ((err as { code?: unknown }).code === 'FST_FANOUT_SURVEY_FAILED') throw internal((err as Error).message, err)
      throw err
    }
  }
}

/**
 * This instance's answer to a survey: its channels with their subscriber
 * counts (those matching the pattern), or its node entry for `info`.
 */
export function answerSurvey (context: Pick<ServerApiContext, 'registry' | 'instanceId' | 'startedAt'>, question: SurveyQuestion): unknown {
  const { registry } = context
  if (question.kind === 'node') {
    const node: NodeInfo = {
      uid: context.instanceId,
      name: `${hostname()}_${process.pid}`,
      num_clients: registry.size,
      num_users: registry.userCount,
      num_channels: registry.channelCount,
      num_subs: registry.subscriptionCount,
      uptime: Math.floor((Date.now() - context.startedAt) / 1000)
    }
    return node
  }
  const matcher = question.pattern === undefined ? undefined : compileChannelPattern(question.pattern)
  if (typeof matcher === 'object') return {} // the asker checked it: another version of the pattern rules
  const counts: Record<string, number> = {}
  for (const [channel, size] of registry.channelSizes()) {
    if (matcher === undefined || matcher(channel)) counts[channel] = size
  }
  return counts
}

/**
 * The data of a publish or broadcast: `data`, or `b64data` decoded: JSON
 * text when the bytes are JSON, otherwise bytes that only Protobuf clients
 * receive (dataFromBytes).
 */
const tooDeep = `data is nested deeper than ${MAX_DATA_DEPTH} levels of arrays and objects`

function publicationData (body: PublishFields): PublicationData {
  const hasData = 'data' in body
  const hasB64 = nonEmpty(body.b64data)
  if (hasData && hasB64) throw badRequest('send `data` or `b64data`, not both')
  const data: unknown = body.data
  if (hasB64) {
    const text = body.b64data as string
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) throw badRequest('b64data is not base64 (standard alphabet, padded)')
    const data = dataFromBytes(Buffer.from(text, 'base64'))
    if (!data.binary && depthOf(data.value, MAX_DATA_DEPTH) > MAX_DATA_DEPTH) throw badRequest(tooDeep)
    return data
  }
  if (!hasData) {
    throw badRequest('`data` is required (or `b64data`)')
  }
  if (depthOf(data, MAX_DATA_DEPTH) > MAX_DATA_DEPTH) throw badRequest(tooDeep)
  return { bytes: serializeData(data), binary: false }
}

function refuseUnsupportedPublishFields (body: PublishFields): void {
  refuseSet('publish', {
    tags: body.tags !== undefined && Object.keys(body.tags).length > 0,
    idempotency_key: nonEmpty(body.idempotency_key),
    version: (body.version ?? 0) !== 0,
    version_epoch: nonEmpty(body.version_epoch)
  })
}

// What each field asks for and why it cannot be given, for the 108 message.
const WHY: Readonly<Record<string, string>> = {
  tags: 'publications carry no tags here',
  idempotency_key: 'publications are not deduplicated here: a retry publishes again',
  version: 'publications are not ordered by version here',
  version_epoch: 'publications are not ordered by version here',
  info: 'server-side subscriptions carry no channel info here',
  b64info: 'server-side subscriptions carry no channel info here',
  session: 'connections have no session id apart from their client id here: use `client`',
  data: 'the subscribe push carries no data here',
  b64data: 'the subscribe push carries no data here',
  recover_since: 'a server-side subscription starts at the stream\'s top here',
  expire_at: 'server-side subscriptions do not expire here',
  override: 'a subscription takes its namespace\'s options here',
  whitelist: 'use `client` to disconnect one connection'
}

/** Refuses (108) the first field that asks for what is not supported; unset and zero values are fine. */
function refuseSet (method: string, fields: Record<string, boolean>): void {
  for (const [field, set] of Object.entries(fields)) {
    if (set) throw notAvailable(`\`${field}\` of ${method} is not supported (${WHY[field] ?? 'see the docs'}); leave it out`)
  }
}

/** Redis unreachable: the backplane delivered on this instance only. Centrifugo would have failed the call. */
function refuseUnlessEverywhere (result: DeliveryResult, what: string): void {
  if (result.partial === true) throw internal(`Redis is unreachable: ${what}, not on the other instances`)
}

/** A Redis read or write that failed is error 100, naming the method. */
async function backplaneCall<T> (method: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (err) {
    throw internal(`${method} failed: ${(err as Error).message}`, err)
  }
}

function nonEmpty (value: string | undefined): boolean {
  return value !== undefined && value !== ''
}

function client (value: string | undefined): string | undefined {
  return value === '' ? undefined : value
}
