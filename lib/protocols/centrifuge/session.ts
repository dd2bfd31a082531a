import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { userIdOf, verifyToken, type RequestVerifier } from '../../auth.js'
import type { Channels } from '../../channels/channels.js'
import type { ResolvedNamespace } from '../../channels/namespaces.js'
import { Subscription } from '../../channels/subscription.js'
import type { ClientInfo, StreamPosition } from '../../channels/types.js'
import type { Connection } from '../../core/connection.js'
import type { ExpiryWheel } from '../../core/expiry.js'
import type { Registry } from '../../core/registry.js'
import { depthOf, MAX_DATA_DEPTH } from '../../core/data.js'
import type { FanoutMetrics } from '../../metrics.js'
import type { TokenClaims } from '../../types.js'
import { DisconnectCode, ErrorCode, UnsubscribeCode, type Advice, type ReplyError } from './codes.js'
import type { ClientCodec, Expiry, Result } from './codec.js'
import type { Command, Requests } from './commands.js'

/** What every session of the endpoint shares (one object). */
export interface SessionContext {
  readonly registry: Registry
  readonly channels: Channels
  readonly metrics: FanoutMetrics
  readonly log: FastifyBaseLogger
  /** @fastify/jwt's verifier, for tokens sent in commands. */
  readonly verify: RequestVerifier
  readonly userClaim: string
  readonly clockTolerance: number
  /** Milliseconds after `exp` a connection may still refresh its token before it is closed with 3005. */
  readonly refreshGrace: number
  readonly maxConnectionsPerUser: number
  /** Seconds between the server's pings, for the connect reply. */
  readonly pingSeconds: number
  /** Subscription tokens' deadlines (sub_refresh moves them). */
  readonly subscriptionExpiry: ExpiryWheel<Subscription>
  readonly onRpc: ((connection: Connection, method: string, data: unknown) => unknown) | undefined
  readonly onSend: ((connection: Connection, data: unknown) => void | Promise<void>) | undefined
  /**
   * Milliseconds an application hook (subscribe or publish rule, onRpc,
   * onSend) may take. Commands of a connection run in order, so a hook that
   * never settles would hold every later one (a refresh, then 3005).
   */
  readonly hookTimeout: number
}

/**
 * Commands of one connection waiting for earlier ones to finish (an async
 * authorization hook, a Redis round trip). The inbound budget bounds how
 * fast they come; this bounds how many may pile up behind a slow one.
 */
const MAX_QUEUED_COMMANDS = 1024

/** A command's failure, answered with its code. */
class CommandError extends Error {
  readonly error: ReplyError
  constructor (error: ReplyError) {
    super(error.message)
    this.error = error
  }
}

/** A failure that ends the connection with a disconnect code. */
class Disconnect extends Error {
  readonly advice: Advice
  constructor (advice: Advice) {
    super(advice.reason)
    this.advice = advice
  }
}

/**
 * One connection's side of the Centrifugo client protocol: commands run
 * strictly in the order they came (a `subscribe` the SDK sends while its
 * `connect` is being verified waits for it), each answered with its result
 * or its error code; a frame that is not the protocol closes with 3501.
 */
export class Session {
  readonly connection: Connection
  readonly #context: SessionContext
  /** JSON or Protobuf, as the connection chose at the upgrade. */
  readonly #codec: ClientCodec
  readonly #headers: FastifyRequest['headers']
  readonly #subscriptions = new Map<string, Subscription>()
  #connected = false
  #closed = false
  /** Commands in progress: each frame runs after the previous one finished. */
  #queue: Promise<void> = Promise.resolve()
  /**
   * Subscriptions answered by the reply being built: they go live in the
   * same turn as the reply is written, so that no publication overtakes it.
   */
  #answered: Array<{ subscription: Subscription, position: StreamPosition | undefined }> = []
  /** Lines received and not yet run. */
  #queued = 0

  readonly #identified: () => void

  /** `identified` is told once the connection is registered (it no longer needs the stale bound). */
  constructor (connection: Connection, context: SessionContext, codec: ClientCodec, headers: FastifyRequest['headers'], identified: () => void) {
    this.connection = connection
    this.#context = context
    this.#codec = codec
    // Kept for tokens verified later (refresh, subscription tokens): a key
    // provider or `trusted` callback sees the upgrade's headers.
    this.#headers = headers
    this.#identified = identified
  }

  get connected (): boolean {
    return this.#connected
  }

  receive (data: Buffer, isBinary: boolean): void {
    const frame = this.#codec.parse(data, isBinary)
    if (!frame.ok) {
      this.#disconnect(DisconnectCode.BAD_REQUEST, frame.reason)
      return
    }
    const lines = frame.lines
    this.#queued += lines.length
    if (this.#queued > MAX_QUEUED_COMMANDS) {
      this.#disconnect(DisconnectCode.TOO_MANY_REQUESTS, `more than ${MAX_QUEUED_COMMANDS} commands waiting`)
      return
    }
    this.#queue = this.#queue.then(async () => {
      for (const line of lines) {
        this.#queued--
        if (this.#closed || !this.connection.open) continue
        if (line.kind === 'pong') continue // the heartbeat saw the frame already
        if (line.kind === 'invalid') {
          this.#context.metrics.commandErrors.inc({ code: line.code })
          this.#reply(this.#codec.errorReply(line.id, { code: line.code, message: line.message, temporary: false }))
          continue
        }
        await this.#run(line.command)
      }
    }).catch((err: unknown) => {
      // #run answers every command's failure: this is a defect of ours, never the client's.
      this.#context.log.error({ err, connectionId: this.connection.id }, 'fanout: session failed')
      this.#disconnect(DisconnectCode.INTERNAL, 'session failed')
    })
  }

  /** The connection is gone: its subscriptions end (presence, leave notices). */
  closed (): void {
    this.#closed = true
    for (const subscription of this.#subscriptions.values()) this.#end(subscription)
    this.#subscriptions.clear()
  }

  /**
   * The application subscribes this connection to a channel (or ends a
   * subscription), in turn with the client's own commands.
   */
  serverSubscription (channel: string, subscribe: boolean): void {
    this.#queue = this.#queue.then(async () => {
      if (this.#closed || !this.#connected) return
      if (!subscribe) {
        if (!this.#subscriptions.has(channel)) return
        this.#unsubscribe(channel)
        this.#reply(this.#codec.unsubscribePush(channel, UnsubscribeCode.SERVER))
        return
      }
      const lookup = this.#context.channels.settings.lookup(channel)
      if (!lookup.ok || this.#subscriptions.has(channel)) return
      this.#answered = []
      try {
        const { subscription, position } = await this.#start(channel, lookup.namespace, {
          joinLeave: lookup.namespace.forcePushJoinLeave, chanInfo: undefined, expiresAt: Infinity, recover: undefined
        })
        this.#reply(this.#codec.subscribePush(channel, { recoverable: subscription.recoverable, positioned: subscription.positioned, epoch: position?.epoch, offset: position?.offset }))
        this.#goLive()
      } catch (err) {
        this.#dropAnswered()
        if (err instanceof Disconnect) this.#disconnect(err.advice, err.message)
        else this.#context.log.warn({ err, channel, connectionId: this.connection.id }, 'fanout: server-side subscribe failed')
      }
    })
  }

  /** The subscription token expired without sub_refresh: the client subscribes again with a new one. */
  subscriptionExpired (subscription: Subscription): void {
    if (this.#subscriptions.get(subscription.channel) !== subscription) return
    this.#subscriptions.delete(subscription.channel)
    this.#end(subscription)
    this.#reply(this.#codec.unsubscribePush(subscription.channel, UnsubscribeCode.EXPIRED))
  }

  async #run (command: Command): Promise<void> {
    try {
      if (command.method !== 'connect' && !this.#connected) {
        throw new Disconnect(DisconnectCode.BAD_REQUEST)
      }
      this.#answered = []
      const result = await this.#dispatch(command)
      if (result !== undefined) this.#reply(result)
      this.#goLive()
    } catch (err) {
      this.#dropAnswered()
      if (err instanceof CommandError) {
        this.#context.metrics.commandErrors.inc({ code: err.error.code })
        // send is never answered, not even its failure (an onSend past hookTimeout).
        if (command.method !== 'send') this.#reply(this.#codec.errorReply(command.id, err.error))
      } else if (err instanceof Disconnect) {
        this.#disconnect(err.advice, err.message)
      } else {
        this.#context.log.error({ err, connectionId: this.connection.id, method: command.method }, 'fanout: command failed')
        if (command.method === 'connect') this.#disconnect(DisconnectCode.INTERNAL, 'connect failed')
        else if (command.method !== 'send') this.#reply(this.#codec.errorReply(command.id, ErrorCode.INTERNAL))
      }
    }
  }

  /** The command that answered these subscriptions failed: they end unanswered. */
  #dropAnswered (): void {
    for (const { subscription } of this.#answered) this.#unsubscribe(subscription.channel)
    this.#answered = []
  }

  /** Subscriptions just answered start receiving; what arrived meanwhile follows the reply. */
  #goLive (): void {
    const answered = this.#answered
    this.#answered = []
    for (const { subscription, position } of answered) {
      const pending = subscription.goLive(position)
      if (pending === null) {
        this.#disconnect(DisconnectCode.INSUFFICIENT_STATE, 'a gap while subscribing')
        return
      }
      for (const envelope of pending) {
        const push = this.#codec.wire.encode(envelope)
        if (push !== undefined) this.#reply(push)
      }
    }
  }

  async #dispatch (command: Command): Promise<Buffer | undefined> {
    const { id } = command
    const codec = this.#codec
    const reply = codec.reply
    switch (command.method) {
      case 'connect': return reply(id, 'connect', await this.#connect(command.params))
      case 'refresh': return reply(id, 'refresh', await this.#refresh(command.params))
      case 'subscribe': return await this.#subscribe(id, command.params)
      case 'unsubscribe': this.#unsubscribe(command.params.channel); return reply(id, 'unsubscribe')
      case 'sub_refresh': return reply(id, 'sub_refresh', await this.#subRefresh(command.params))
      case 'publish': await this.#publish(command.params); return reply(id, 'publish')
      case 'history': return reply(id, 'history', await this.#history(command.params))
      case 'presence': {
        const { channel } = this.#subscribedWith(command.params.channel, 'presence')
        return reply(id, 'presence', codec.presenceResult(await this.#context.channels.presence(channel)))
      }
      case 'presence_stats': {
        const { channel } = this.#subscribedWith(command.params.channel, 'presence')
        const stats = await this.#context.channels.presenceStats(channel)
        return reply(id, 'presence_stats', codec.presenceStatsResult({ num_clients: stats.numClients, num_users: stats.numUsers }))
      }
      case 'ping': return reply(id, 'ping')
      case 'rpc': {
        const onRpc = this.#context.onRpc
        if (onRpc === undefined) throw new CommandError(ErrorCode.METHOD_NOT_FOUND)
        return reply(id, 'rpc', codec.rpcResult(await this.#rpc(onRpc, command.params)))
      }
      case 'send':
        // Awaited in turn; a failure is logged (#run), never answered.
        await this.#hook('onSend', this.#context.onSend?.(this.connection, command.params.data))
        return undefined
    }
  }

  /** An application hook's result, or error 100 (temporary) when it takes longer than `hookTimeout`. */
  async #hook<T> (name: string, result: T | Promise<T>): Promise<T> {
    if (!(result instanceof Promise)) return result
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((resolve, reject) => {
      timer = setTimeout(() => {
        this.#context.log.warn({ hook: name, connectionId: this.connection.id, timeout: this.#context.hookTimeout }, 'fanout: application hook did not settle in time')
        reject(new CommandError(ErrorCode.INTERNAL))
      }, this.#context.hookTimeout)
    })
    try {
      return await Promise.race([result, late])
    } finally {
      clearTimeout(timer)
    }
  }

  /** The app's answer; an error it throws with a `code` of 400-1999 goes to the client as that error. */
  async #rpc (onRpc: NonNullable<SessionContext['onRpc']>, params: Requests['rpc']): Promise<unknown> {
    try {
      return await this.#hook('onRpc', onRpc(this.connection, params.method ?? '', params.data))
    } catch (err) {
      const { code, message, temporary } = (err ?? {}) as { code?: unknown, message?: unknown, temporary?: unknown }
      if (typeof code === 'number' && Number.isInteger(code) && code >= 400 && code <= 1999) {
        throw new CommandError({ code, message: typeof message === 'string' ? message.slice(0, 200) : '', temporary: temporary === true })
      }
      throw err
    }
  }

  async #connect (params: Requests['connect']): Promise<Result<'connect'>> {
    const context = this.#context
    if (this.#connected) throw new Disconnect(DisconnectCode.BAD_REQUEST)
    if (params.token === undefined || params.token === '') {
      context.metrics.rejected('token_missing')
      throw new CommandError(ErrorCode.UNAUTHORIZED)
    }
    const claims = await this.#verify(params.token)
    const identified = userIdOf(claims, context.userClaim)
    if ('problem' in identified) {
      context.metrics.rejected('token_invalid')
      throw new Disconnect(DisconnectCode.INVALID_TOKEN)
    }
    const { userId } = identified
    this.#assertRoomFor(userId)
    this.connection.identify({ userId, claims, expiresAt: this.#expiresAt(claims) })
    // Server-side subscriptions first (held until the reply is written), and
    // only then into the registry: no message or ping may reach the client
    // before its connect reply.
    const subs = await this.#serverSideSubscriptions(claims, params.subs ?? {})
    this.#assertRoomFor(userId) // others of this user may have connected meanwhile
    context.registry.add(this.connection)
    context.metrics.connectionsAccepted.inc()
    this.#connected = true
    this.#identified()
    return this.#codec.connectResult({ client: this.connection.id, ...expiry(claims), ping: context.pingSeconds, pong: context.pingSeconds > 0, subs })
  }

  /** The connection is still open and its user holds fewer than `maxConnectionsPerUser` connections. */
  #assertRoomFor (userId: string): void {
    if (this.#context.registry.countOf(userId) >= this.#context.maxConnectionsPerUser) {
      this.#context.metrics.rejected('user_limit')
      throw new Disconnect(DisconnectCode.CONNECTION_LIMIT)
    }
    if (!this.connection.open || this.#closed) throw new Disconnect(DisconnectCode.CONNECTION_CLOSED)
  }

  async #refresh (params: Requests['refresh']): Promise<Result<'refresh'>> {
    const claims = await this.#verify(params.token, true)
    const identified = userIdOf(claims, this.#context.userClaim)
    // A refresh may extend a connection, never hand it to another user.
    if ('problem' in identified || identified.userId !== this.connection.userId) throw new Disconnect(DisconnectCode.INVALID_TOKEN)
    this.#context.registry.reschedule(this.connection, this.#expiresAt(claims))
    return this.#codec.refreshResult(expiry(claims))
  }

  /** Verifies a connection token: an expired one is error 109 (the SDK gets a new one), any other problem closes with 3500. */
  async #verify (token: string, refreshing = false): Promise<TokenClaims> {
    try {
      return await verifyToken(this.#context.verify, token, this.#headers)
    } catch (err) {
      const code = (err as { code?: string }).code
      if (code === 'FST_FANOUT_TOKEN_EXPIRED') {
        this.#context.metrics.rejected('token_expired')
        if (refreshing) throw new Disconnect(DisconnectCode.EXPIRED)
        throw new CommandError(ErrorCode.TOKEN_EXPIRED)
      }
      if (code === 'FST_FANOUT_TOKEN_INVALID') {
        this.#context.metrics.rejected('token_invalid')
        throw new Disconnect(DisconnectCode.INVALID_TOKEN)
      }
      throw err
    }
  }

  /** When a token's authority ends here: `exp`, the clock tolerance, and the grace a refresh gets. */
  #expiresAt (claims: TokenClaims): number {
    return typeof claims.exp === 'number' ? claims.exp * 1000 + this.#context.clockTolerance + this.#context.refreshGrace : Infinity
  }

  async #serverSideSubscriptions (claims: TokenClaims, recovering: NonNullable<Requests['connect']['subs']>): Promise<Record<string, Result<'subscribe'>>> {
    const channels = claims.channels
    const results: Record<string, Result<'subscribe'>> = {}
    if (!Array.isArray(channels)) return results
    for (const channel of channels) {
      if (typeof channel !== 'string') continue
      const lookup = this.#context.channels.settings.lookup(channel)
      if (!lookup.ok || this.#subscriptions.has(channel)) continue // the token was minted for another configuration
      const position = lookup.namespace.recovery ? recovering[channel] : undefined
      const { result } = await this.#start(channel, lookup.namespace, {
        joinLeave: lookup.namespace.forcePushJoinLeave,
        chanInfo: undefined,
        expiresAt: Infinity,
        recover: position?.recover === true ? { offset: position.offset ?? 0, epoch: position.epoch ?? '' } : undefined
      })
      results[channel] = result
    }
    return results
  }

  async #subscribe (id: number, params: Requests['subscribe']): Promise<Buffer> {
    const context = this.#context
    const { channel } = params
    // Centrifugo's map and shared-poll subscriptions are not served.
    if ((params.type ?? 0) !== 0) throw new CommandError(ErrorCode.NOT_AVAILABLE)
    const lookup = context.channels.settings.lookup(channel)
    if (!lookup.ok) throw new CommandError(lookup.code === 102 ? ErrorCode.UNKNOWN_CHANNEL : ErrorCode.BAD_REQUEST)
    if (this.#subscriptions.has(channel)) throw new CommandError(ErrorCode.ALREADY_SUBSCRIBED)
    if (this.#subscriptions.size >= context.channels.settings.maxPerConnection) throw new CommandError(ErrorCode.LIMIT_EXCEEDED)
    const { namespace, users } = lookup
    const token = params.token !== undefined && params.token !== '' ? await this.#verifySubscription(params.token, channel) : undefined
    if (token === undefined) {
      // Without a subscription token: never a $ channel (Centrifugo's private
      // prefix); in a user-limited channel exactly the users listed, whatever
      // the namespace's rule; elsewhere the namespace's rule.
      if (lookup.private) throw new CommandError(ErrorCode.PERMISSION_DENIED)
      if (users === undefined) await this.#authorize(namespace, channel)
      else if (!users.includes(this.connection.userId)) throw new CommandError(ErrorCode.PERMISSION_DENIED)
    }
    const recover = params.recover === true && namespace.recovery ? { offset: params.offset ?? 0, epoch: params.epoch ?? '' } : undefined
    const { result, recovered } = await this.#start(channel, namespace, {
      joinLeave: namespace.joinLeave && (namespace.forcePushJoinLeave || params.join_leave === true),
      chanInfo: token?.info,
      expiresAt: token === undefined ? Infinity : this.#expiresAt(token),
      recover,
      tokenClaims: token
    })
    // flag bit 2: the client would rather fail than go on without what it missed.
    if (recover !== undefined && !recovered && ((params.flag ?? 0) & 2) !== 0) {
      throw new CommandError(ErrorCode.UNRECOVERABLE_POSITION) // #run ends the subscription
    }
    return this.#codec.reply(id, 'subscribe', result)
  }

  /** Starts a subscription; it goes live when its reply is written (#goLive). */
  async #start (channel: string, namespace: ResolvedNamespace, settings: {
    joinLeave: boolean, chanInfo: unknown, expiresAt: number, recover: StreamPosition | undefined, tokenClaims?: TokenClaims
  }): Promise<{ subscription: Subscription, result: Result<'subscribe'>, recovered: boolean, position: StreamPosition | undefined }> {
    const info: ClientInfo = {
      user: this.connection.userId,
      client: this.connection.id,
      ...(this.connection.claims.info === undefined ? {} : { conn_info: this.connection.claims.info }),
      ...(settings.chanInfo === undefined ? {} : { chan_info: settings.chanInfo })
    }
    const subscription = new Subscription(this.connection, channel, namespace, {
      joinLeave: settings.joinLeave,
      info,
      expiresAt: settings.expiresAt
    })
    this.#subscriptions.set(channel, subscription)
    let outcome
    try {
      outcome = await this.#context.channels.subscribe(subscription, settings.recover)
    } catch (err) {
      this.#subscriptions.delete(channel)
      throw err
    }
    if (this.#closed) {
      this.#end(subscription)
      throw new Disconnect(DisconnectCode.CONNECTION_CLOSED)
    }
    this.#context.subscriptionExpiry.add(subscription)
    const { position } = outcome
    this.#answered.push({ subscription, position })
    const result = this.#codec.subscribeResult({
      ...(settings.tokenClaims === undefined ? {} : expiry(settings.tokenClaims)),
      recoverable: subscription.recoverable,
      positioned: subscription.positioned,
      epoch: position?.epoch,
      offset: position === undefined ? undefined : outcome.recovered && settings.recover !== undefined ? settings.recover.offset : position.offset,
      was_recovering: settings.recover !== undefined,
      recovered: outcome.recovered,
      publications: outcome.publications
    })
    return { subscription, result, recovered: outcome.recovered, position }
  }

  async #verifySubscription (token: string, channel: string): Promise<TokenClaims> {
    let claims: TokenClaims
    try {
      claims = await verifyToken(this.#context.verify, token, this.#headers)
    } catch (err) {
      const code = (err as { code?: string }).code
      if (code === 'FST_FANOUT_TOKEN_EXPIRED') throw new CommandError(ErrorCode.TOKEN_EXPIRED)
      if (code === 'FST_FANOUT_TOKEN_INVALID') throw new CommandError(ErrorCode.PERMISSION_DENIED)
      throw err
    }
    const user = userIdOf(claims, this.#context.userClaim)
    // A subscription token is for one user and one channel.
    if ('problem' in user || user.userId !== this.connection.userId || claims.channel !== channel) {
      throw new CommandError(ErrorCode.PERMISSION_DENIED)
    }
    return claims
  }

  async #subRefresh (params: Requests['sub_refresh']): Promise<Result<'sub_refresh'>> {
    const subscription = this.#subscriptions.get(params.channel)
    if (subscription === undefined) throw new CommandError(ErrorCode.PERMISSION_DENIED)
    const claims = await this.#verifySubscription(params.token, params.channel)
    // Ended (closed, expired, unsubscribed) while the token was verified.
    if (this.#closed || this.#subscriptions.get(params.channel) !== subscription) throw new CommandError(ErrorCode.PERMISSION_DENIED)
    const wheel = this.#context.subscriptionExpiry
    wheel.remove(subscription)
    subscription.expiresAt = this.#expiresAt(claims)
    wheel.add(subscription)
    return this.#codec.subRefreshResult(expiry(claims))
  }

  async #authorize (namespace: ResolvedNamespace, channel: string): Promise<void> {
    const rule = namespace.subscribe
    if (rule === 'user') return
    if (rule === 'token' || !(await this.#hook('subscribe', rule(this.connection, channel)))) throw new CommandError(ErrorCode.PERMISSION_DENIED)
  }

  #unsubscribe (channel: string): void {
    const subscription = this.#subscriptions.get(channel)
    if (subscription === undefined) return
    this.#subscriptions.delete(channel)
    this.#end(subscription)
  }

  #end (subscription: Subscription): void {
    this.#context.subscriptionExpiry.remove(subscription)
    this.#context.channels.unsubscribe(subscription)
  }

  async #publish (params: Requests['publish']): Promise<void> {
    if ((params.type ?? 0) !== 0) throw new CommandError(ErrorCode.NOT_AVAILABLE) // map publications
    const subscription = this.#subscriptions.get(params.channel)
    const rule = subscription?.namespace.publish ?? false
    if (subscription === undefined || rule === false) throw new CommandError(ErrorCode.PERMISSION_DENIED)
    const data = params.data ?? null
    // A Uint8Array: bytes that are not JSON, from a Protobuf client.
    if (!(data instanceof Uint8Array) && depthOf(data, MAX_DATA_DEPTH) > MAX_DATA_DEPTH) throw new CommandError(ErrorCode.BAD_REQUEST)
    if (rule !== true && !(await this.#hook('publish', rule(this.connection, params.channel, data)))) throw new CommandError(ErrorCode.PERMISSION_DENIED)
    try {
      // A Protobuf client's bytes as they came; a JSON client's value as JSON text.
      const { bytes, binary } = params.publication ?? { bytes: Buffer.from(JSON.stringify(data)), binary: false }
      await this.#context.channels.publish(params.channel, subscription.namespace, bytes, { info: subscription.info, binary })
    } catch (err) {
      this.#context.log.warn({ err, channel: params.channel }, 'fanout: client publication failed')
      throw new CommandError(ErrorCode.INTERNAL)
    }
  }

  async #history (params: Requests['history']): Promise<Result<'history'>> {
    const { channel, namespace } = this.#subscribedWith(params.channel, 'history')
    const since = params.since === undefined ? undefined : { offset: params.since.offset ?? 0, epoch: params.since.epoch ?? '' }
    const page = await this.#context.channels.history(channel, namespace, { limit: params.limit ?? 0, since, reverse: params.reverse })
    if (since !== undefined && since.epoch !== '' && since.epoch !== page.position.epoch) throw new CommandError(ErrorCode.UNRECOVERABLE_POSITION)
    return this.#codec.historyResult({ publications: page.publications, epoch: page.position.epoch, offset: page.position.offset })
  }

  /** The subscription a history or presence call is about: subscribers only, and only where the namespace keeps it. */
  #subscribedWith (channel: string, feature: 'history' | 'presence'): Subscription {
    const subscription = this.#subscriptions.get(channel)
    if (subscription === undefined) {
      const lookup = this.#context.channels.settings.lookup(channel)
      throw new CommandError(lookup.ok ? ErrorCode.PERMISSION_DENIED : ErrorCode.UNKNOWN_CHANNEL)
    }
    const available = feature === 'history' ? subscription.namespace.history !== undefined : subscription.namespace.presence
    if (!available) throw new CommandError(ErrorCode.NOT_AVAILABLE)
    return subscription
  }

  #reply (payload: Buffer): void {
    this.connection.reply(payload)
  }

  #disconnect (advice: Advice, detail: string): void {
    this.#context.log.debug({ connectionId: this.connection.id, code: advice.code, detail }, 'fanout: closing client')
    this.connection.closeWith(advice.code, advice.reason)
  }
}

/** The reply's `expires`/`ttl` for a token: seconds until `exp`, when it has one. */
function expiry (claims: TokenClaims): Expiry {
  if (typeof claims.exp !== 'number') return {}
  return { expires: true, ttl: Math.max(0, Math.floor(claims.exp - Date.now() / 1000)) }
}
