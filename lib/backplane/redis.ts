import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import fastifyRedis from '@fastify/redis'
import { Redis, type Cluster, type RedisOptions } from 'ioredis'
import { dataOnRedis, decodeEnvelope, encodeEnvelope, encodeHeader } from './codec.js'
import { slotTag } from './slot.js'
import { RedisHistory } from './redis-history.js'
import { RedisPresence } from './redis-presence.js'
import { RedisSurveys } from './redis-survey.js'
import type { Backplane, ChannelPublishResult, Deliver, Envelope, GapListener, SurveyQuestion, SurveyResponder } from './types.js'
import type { HistoryLimits, HistoryPage, HistoryQuery } from '../channels/types.js'
import type { FanoutMetrics } from '../metrics.js'
import { RedisUnreachableError } from '../errors.js'
import type { DeliveryResult } from '../types.js'

/** A user list longer than this goes out once on the everyone-channel, filtered by each instance. */
const MAX_USER_CHANNELS_PER_MESSAGE = 64

export interface RedisBackplaneOptions {
  /** The publishing connection; the subscriber is duplicated from it. */
  readonly client: Redis | Cluster
  /** Prepended to every channel name, so that several apps can share a Redis. */
  readonly prefix: string
  readonly instanceId: string
  readonly metrics: FanoutMetrics
  readonly log: FastifyBaseLogger
}

type Listener = (...args: any[]) => void

/**
 * Joins instances through Redis Pub/Sub. Every instance subscribes to the
 * everyone-channel, to its own instance channel (for sends to one
 * connection) and to one channel per user it holds a connection of, so a
 * message only travels to instances that have someone to give it to. With a
 * Redis Cluster client every channel is a shard channel (SPUBLISH/SSUBSCRIBE):
 * user and instance channels spread over the shards, and the everyone-channel
 * stays on its shard instead of being copied to every node over the cluster
 * bus as plain PUBLISH is.
 *
 * When Redis is unreachable, publishing fails fast (ioredis reports the
 * connection state; nothing is queued) and messages are delivered to this
 * instance's connections only, marked `partial`. ioredis reconnects and
 * resubscribes by itself; `up` and the metrics follow every change.
 */
export class RedisBackplane implements Backplane {
  readonly #publisher: Redis | Cluster
  readonly #sharded: boolean
  readonly #prefix: string
  readonly #allChannel: string
  readonly #instanceChannel: string
  readonly #metrics: FanoutMetrics
  readonly #log: FastifyBaseLogger
  #subscriber: Redis | Cluster | undefined
  #deliver: Deliver | undefined
  #onGap: GapListener | undefined
  /** Set once start has subscribed; from then on losses and returns are gaps. */
  #started = false
  /** True while the subscriber holds its subscriptions. */
  #listening = false
  #up = false
  #closing = false
  readonly #history: RedisHistory
  readonly #surveys: RedisSurveys
  readonly presence: RedisPresence
  /** Channels watched, each with its SUBSCRIBE's reply (recovery reads history only after it). */
  readonly #channelWatches = new Map<string, Promise<void>>()
  // Listeners we put on the app's publisher, removed on close: we do not own it.
  readonly #publisherListeners: Array<[string, Listener]> = []

  constructor (options: RedisBackplaneOptions) {
    this.#publisher = options.client
    this.#sharded = 'isCluster' in options.client && options.client.isCluster
    this.#prefix = options.prefix
    this.#allChannel = options.prefix + 'all'
    this.#instanceChannel = options.prefix + 'instance:' + options.instanceId
    this.#metrics = options.metrics
    this.#log = options.log
    this.#history = new RedisHistory(options.client, options.prefix)
    this.presence = new RedisPresence(options.client, options.prefix)
    this.#surveys = new RedisSurveys({
      publisher: options.client,
      sharded: this.#sharded,
      allChannel: this.#allChannel,
      instanceChannel: (instanceId) => options.prefix + 'instance:' + instanceId,
      instanceId: options.instanceId,
      metrics: options.metrics,
      log: options.log,
      up: () => this.#up
    })
  }

  get up (): boolean {
    return this.#up
  }

  async start (deliver: Deliver, onGap: GapListener, respond: SurveyResponder): Promise<void> {
    this.#deliver = deliver
    this.#onGap = onGap
    this.#surveys.start(respond)
    const subscriber = this.#sharded
      ? (this.#publisher as Cluster).duplicate(undefined, { shardedSubscribers: true })
      : (this.#publisher as Redis).duplicate({ enableOfflineQueue: true, autoResubscribe: true, commandTimeout: undefined })
    this.#subscriber = subscriber
    const receive = (_channel: Buffer, message: Buffer): void => {
      if (!this.#surveys.receive(message)) this.#receive(message)
    }
    subscriber.on('messageBuffer', receive)
    subscriber.on('smessageBuffer', receive)
    subscriber.on('error', (err: Error) => { this.#error('subscriber', err) })
    const refresh = (): void => { this.#refreshState() }
    for (const event of ['ready', 'close', 'end', 'reconnecting']) {
      subscriber.on(event, refresh)
      this.#publisher.on(event, refresh)
      this.#publisherListeners.push([event, refresh])
    }
    const onPublisherError = (err: Error): void => { this.#error('publisher', err) }
    this.#publisher.on('error', onPublisherError)
    this.#publisherListeners.push(['error', onPublisherError])

    await this.#subscribe(this.#allChannel)
    await this.#subscribe(this.#instanceChannel)
    this.#started = true
    this.#listening = subscriber.status === 'ready'
    this.#refreshState()
  }

  async survey (question: SurveyQuestion, timeout: number): Promise<unknown[]> {
    return await this.#surveys.ask(question, timeout)
  }

  async publish (envelope: Envelope): Promise<DeliveryResult> {
    if (!this.#up || this.#publisher.status !== 'ready') return this.#localOnly(envelope)
    try {
      const replies = await Promise.all(this.#route(envelope).map(async ([channel, message, sharded]) =>
        await (sharded ? this.#publisher.spublish(channel, message) : this.#publisher.publish(channel, message))))
      this.#metrics.backplanePublished.inc()
      return { id: envelope.id, instances: replies.reduce((sum: number, count) => sum + Number(count), 0) }
    } catch (err) {
      this.#error('publish', err as Error)
      return this.#localOnly(envelope)
    }
  }

  watchUser (userId: string): void {
    this.#subscribe(this.#userChannel(userId)).catch((err: Error) => { this.#error('subscribe', err) })
  }

  unwatchUser (userId: string): void {
    this.#unsubscribe(this.#userChannel(userId))
  }

  #unsubscribe (channel: string): void {
    if (this.#closing) return
    const subscriber = this.#subscriber
    if (subscriber === undefined) return
    const done = this.#sharded ? subscriber.sunsubscribe(channel) : subscriber.unsubscribe(channel)
    done.catch((err: Error) => { this.#error('unsubscribe', err) })
  }

  watchChannel (channel: string): void {
    this.#channelWatches.set(channel, this.#watch(channel))
  }

  // The SUBSCRIBE's own promise is kept, so that a failure reaches whoever
  // waits for the channel (watching); the catch here only records it.
  #watch (channel: string): Promise<void> {
    const subscribed = this.#subscribe(this.channelOf(channel))
    subscribed.catch((err: Error) => { this.#error('subscribe', err) })
    return subscribed
  }

  unwatchChannel (channel: string): void {
    this.#channelWatches.delete(channel)
    this.#unsubscribe(this.channelOf(channel))
  }

  /**
   * Resolves once this instance receives the channel. A SUBSCRIBE that
   * failed (Redis down past ioredis's retries) is sent again here, for the
   * next subscriber to wait on; its failure rejects (the client's subscribe
   * gets a temporary error and the SDK retries), never a silent deafness.
   */
  async watching (channel: string): Promise<void> {
    const watch = this.#channelWatches.get(channel)
    if (watch === undefined) return
    try {
      await watch
    } catch {
      if (this.#channelWatches.get(channel) !== watch) return await this.watching(channel)
      const again = this.#watch(channel)
      this.#channelWatches.set(channel, again)
      await again
    }
  }

  async publishWithHistory (envelope: Envelope, limits: HistoryLimits): Promise<ChannelPublishResult> {
    const channel = envelope.channel as string
    try {
      const { position, receivers } = await this.#history.publish({
        channel,
        pubsubChannel: this.channelOf(channel),
        sharded: this.#sharded,
        header: encodeHeader(envelope, true),
        data: dataOnRedis(envelope).toString(),
        binary: envelope.binary === true,
        info: envelope.info,
        limits
      })
      this.#metrics.backplanePublished.inc()
      return { id: envelope.id, instances: receivers, position }
    } catch (err) {
      // Without the stream there is no offset to give: nothing is delivered.
      this.#error('publish', err as Error)
      throw err
    }
  }

  async history (channel: string, query: HistoryQuery, limits: HistoryLimits): Promise<HistoryPage> {
    return await this.#history.read(channel, query, limits)
  }

  async removeHistory (channel: string): Promise<void> {
    await this.#history.remove(channel)
  }

  /**
   * The Redis channel of a channel's publications. The hash tag puts it in
   * the Cluster slot of the channel's history keys, so that one script can
   * append and publish atomically.
   */
  channelOf (channel: string): string {
    return this.#prefix + 'channel:' + slotTag(channel)
  }

  async close (): Promise<void> {
    this.#closing = true
    this.#onGap = undefined
    this.#surveys.close()
    for (const [event, listener] of this.#publisherListeners) this.#publisher.off(event, listener)
    this.#publisherListeners.length = 0
    const subscriber = this.#subscriber
    this.#subscriber = undefined
    this.#deliver = undefined
    this.#up = false
    if (subscriber !== undefined) await closeRedisClient(subscriber)
  }

  /** Channel, message and whether it is sharded, for each publish an envelope needs. */
  #route (envelope: Envelope): Array<[string, Buffer, boolean]> {
    if (envelope.channel !== undefined) return [[this.channelOf(envelope.channel), encodeEnvelope(envelope), this.#sharded]]
    if (envelope.connectionId !== undefined) {
      // Connection ids start with the id of the instance that holds them.
      const owner = envelope.connectionId.slice(0, envelope.connectionId.lastIndexOf('.'))
      return [[this.#prefix + 'instance:' + owner, encodeEnvelope(envelope), this.#sharded]]
    }
    if (envelope.users === undefined) return [[this.#allChannel, encodeEnvelope(envelope), this.#sharded]]

    const except = new Set(envelope.except)
    const users = [...new Set(envelope.users)].filter((userId) => !except.has(userId))
    if (users.length > MAX_USER_CHANNELS_PER_MESSAGE) {
      return [[this.#allChannel, encodeEnvelope({ ...envelope, users, except: undefined }), this.#sharded]]
    }
    return users.map((userId) => [this.#userChannel(userId), encodeEnvelope({ ...envelope, users: [userId], except: undefined }), this.#sharded])
  }

  #receive (message: Buffer): void {
    const envelope = decodeEnvelope(message)
    if (envelope === null) {
      this.#metrics.backplaneInvalid.inc()
      return
    }
    this.#metrics.backplaneReceived.inc()
    try {
      this.#deliver?.(envelope)
    } catch (err) {
      // Thrown here, it would escape ioredis's listener as an uncaught exception.
      this.#metrics.backplaneInvalid.inc()
      this.#log.error({ err }, 'fanout: could not deliver a message from Redis')
    }
  }

  #localOnly (envelope: Envelope): DeliveryResult {
    this.#metrics.backplaneLocalOnly.inc()
    const local = this.#deliver?.(envelope) ?? { id: envelope.id, delivered: 0, dropped: 0 }
    return { ...local, instances: 1, partial: true }
  }

  async #subscribe (channel: string): Promise<void> {
    const subscriber = this.#subscriber
    if (subscriber === undefined) return
    if (this.#sharded) await subscriber.ssubscribe(channel)
    else await subscriber.subscribe(channel)
  }

  #userChannel (userId: string): string {
    return this.#prefix + 'user:' + userId
  }

  /** Tracks whether the subscriber holds its subscriptions; reports each change. */
  #gap (listening: boolean): void {
    // Until start has subscribed, a `ready` is the first connection, not a return.
    if (this.#closing || this.#onGap === undefined || !this.#started || listening === this.#listening) return
    this.#listening = listening
    this.#metrics.backplaneGaps.inc({ phase: listening ? 'restored' : 'lost' })
    if (listening) this.#log.warn('fanout: Redis subscription restored; messages published while it was lost did not reach this instance')
    else this.#log.warn('fanout: Redis subscription lost; messages published until it is restored do not reach this instance')
    this.#onGap(listening ? 'restored' : 'lost')
  }

  /** Follows the connections' state (every ready, close, end and reconnecting of either). */
  #refreshState (): void {
    if (this.#closing) return
    // A subscriber connection that drops (Redis restarting, or closing a
    // subscriber that fell behind its output buffer limit) misses whatever is
    // published until ioredis has reconnected and resubscribed.
    this.#gap(this.#subscriber?.status === 'ready')
    const up = this.#publisher.status === 'ready' && this.#subscriber?.status === 'ready'
    if (up === this.#up) return
    this.#up = up
    this.#metrics.backplaneStateChanges.inc({ state: up ? 'up' : 'down' })
    if (up) this.#log.info('fanout: Redis backplane up, messages reach every instance')
    else this.#log.warn('fanout: Redis backplane down, messages reach this instance only until it reconnects')
  }

  #error (operation: string, err: Error): void {
    this.#metrics.backplaneErrors.inc({ operation })
    // Connection errors repeat on every reconnect attempt: the state change is
    // logged once at warn level, each error only at debug.
    this.#log.debug({ err, operation }, 'fanout: Redis error')
  }
}

/**
 * Closes a client the plugin created: QUIT when connected, so that Redis
 * sees a clean goodbye, and a plain disconnect when it is not (QUIT would fail
 * or wait, and ioredis would go on reconnecting).
 */
async function closeRedisClient (client: Redis | Cluster): Promise<void> {
  if (client.status === 'ready') {
    try {
      await client.quit()
      return
    } catch {
      // the connection dropped while quitting: disconnect below ends retries
    }
  }
  client.disconnect()
}

/** The `redis` option, resolved: the app's client, or what to make one from. */
export type RedisSetting = { readonly client: Redis | Cluster } | { readonly url?: string, readonly options: RedisOptions }

/**
 * Registers @fastify/redis in `scope` with the publishing client and returns
 * the backplane. A client made from a URL or options is the plugin's: made
 * to fail fast while disconnected (no offline queue; a hung Redis fails a
 * command after 2 s) and closed on `close`. The app's client is left open.
 */
export async function registerRedisBackplane (
  scope: FastifyInstance,
  setting: RedisSetting,
  options: Omit<RedisBackplaneOptions, 'client'>
): Promise<RedisBackplane> {
  const own = 'client' in setting ? undefined : createClient(setting)
  const client = 'client' in setting ? setting.client : own as Redis
  try {
    // Half the plugin timeout, so that our error, naming Redis, comes first.
    const pluginTimeout = scope.initialConfig.pluginTimeout ?? 0
    await connected(client, pluginTimeout > 0 ? pluginTimeout / 2 : DEFAULT_CONNECT_WAIT, describe(setting))
    await scope.register(fastifyRedis, { client, namespace: `fanout_${options.instanceId}`, closeClient: false })
  } catch (err) {
    own?.disconnect() // never connected: stop its reconnect attempts
    throw err
  }
  const backplane = new RedisBackplane({ ...options, client })
  scope.addHook('onClose', async () => {
    await backplane.close()
    if (own !== undefined) await closeRedisClient(own)
  })
  return backplane
}

/** How long registration waits for Redis when the app has no plugin timeout. */
const DEFAULT_CONNECT_WAIT = 10_000

/**
 * Resolves once the client is ready. Rejects with RedisUnreachableError when
 * Redis answers the connection with an error (a wrong password or database
 * fails at once), or when it cannot be reached within `wait` ms.
 */
async function connected (client: Redis | Cluster, wait: number, where: string): Promise<void> {
  if (client.status === 'ready') return
  // A client made with lazyConnect waits for its first command: start it.
  if (client.status === 'wait') client.connect().catch(() => {}) // failures arrive as 'error' below
  let lastError: Error | undefined
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      clearTimeout(timer)
      client.off('ready', onReady)
      client.off('error', onError)
      if (err === undefined) resolve()
      else reject(err)
    }
    const onReady = (): void => { done() }
    const onError = (err: Error): void => {
      lastError = err
      // An answer from Redis itself (AUTH, SELECT): retrying cannot help.
      if (err.name === 'ReplyError') done(new RedisUnreachableError(where, `refused the connection: ${err.message}`))
    }
    const timer = setTimeout(() => {
      done(new RedisUnreachableError(where, `could not be reached within ${wait} ms${lastError === undefined ? '' : `: ${lastError.message}`}`))
    }, wait)
    client.on('ready', onReady)
    client.on('error', onError)
  })
}

/** Where Redis is, for messages ("Redis at %s"): the URL without credentials, or host:port. */
function describe (setting: RedisSetting): string {
  if ('url' in setting && setting.url !== undefined) return setting.url.replace(/\/\/[^@/]*@/, '//')
  if ('client' in setting && 'isCluster' in setting.client && setting.client.isCluster) return "the cluster's startup nodes"
  const options = 'client' in setting ? (setting.client as Redis).options ?? {} : setting.options
  return `${options.host ?? '127.0.0.1'}:${options.port ?? 6379}`
}

function createClient ({ url, options }: { url?: string, options: RedisOptions }): Redis {
  const settings: RedisOptions = { enableOfflineQueue: false, commandTimeout: 2000, ...options }
  return url === undefined ? new Redis(settings) : new Redis(url, settings)
}
