import { assertCloseArguments } from './core/close-codes.js'
import { InvalidArgumentError } from './errors.js'
import type { Channels } from './channels/channels.js'
import type { ResolvedNamespace } from './channels/namespaces.js'
import { dataFromBytes, serializeData } from './core/data.js'
import type { Fanout } from './core/fanout.js'
import type { FanoutMetrics } from './metrics.js'
import type { Registry } from './core/registry.js'
import type { FanoutDecorator } from './types.js'
import { assertTarget, assertUserId } from './user-id.js'

/** Builds `fastify.fanout`: the registry's read side and the send methods. */
export function createDecorator (registry: Registry, fanout: Fanout, channels: Channels, metrics: FanoutMetrics, backplaneUp: () => boolean): FanoutDecorator {
  // The namespace of a channel the app names, or the reason it has none.
  function namespaceOf (channel: unknown): ResolvedNamespace {
    if (typeof channel !== 'string') throw new InvalidArgumentError('channel', `must be a string, got ${typeof channel}`)
    const lookup = channels.settings.lookup(channel)
    if (!lookup.ok) throw new InvalidArgumentError('channel', `${JSON.stringify(channel.slice(0, 100))}: ${lookup.reason}`)
    return lookup.namespace
  }
  function withHistory (channel: unknown): ResolvedNamespace {
    const namespace = namespaceOf(channel)
    if (namespace.history === undefined) throw new InvalidArgumentError('channel', `${JSON.stringify(channel)} is in a namespace without history (set historySize and historyTtl)`)
    return namespace
  }
  function withPresence (channel: unknown): ResolvedNamespace {
    const namespace = namespaceOf(channel)
    if (!namespace.presence) throw new InvalidArgumentError('channel', `${JSON.stringify(channel)} is in a namespace without presence (set presence: true)`)
    return namespace
  }

  return {
    get size () { return registry.size },
    get userCount () { return registry.userCount },
    connection: (id) => registry.get(id),
    connectionsOf: (userId) => registry.ofUser(userId),
    connections: () => registry.values(),
    // async: a bad message or argument becomes a rejected promise, never a synchronous throw.
    // Arguments are checked as the broadcast route checks its body: from
    // JavaScript, users: 'alice' would otherwise mean the users a, l, i, c and e.
    async broadcast (data, target = {}) {
      assertTarget(target)
      return await fanout.publish(data, { users: target.users, except: target.except })
    },
    async sendToUser (userId, data) {
      assertUserId('userId', userId)
      return await fanout.publish(data, { users: [userId] })
    },
    async sendTo (connectionId, data) {
      if (typeof connectionId !== 'string') throw new InvalidArgumentError('connectionId', `must be a string, got ${typeof connectionId}`)
      return await fanout.publish(data, { connectionId })
    },
    async disconnectUser (userId, code, reason = 'disconnected by server') {
      assertUserId('userId', userId)
      // Without a code, each endpoint closes with its own (4000 on /ws, 3503 for Centrifugo's SDKs).
      if (code !== undefined) assertCloseArguments(code, reason)
      const { id, delivered, instances, partial } = await fanout.disconnect(userId, code ?? 0, code === undefined ? '' : reason)
      return { id, disconnected: delivered, instances, partial }
    },
    async subscribe (userId, channel) {
      assertUserId('userId', userId)
      namespaceOf(channel)
      const { id, delivered, instances, partial } = await fanout.subscription(userId, channel, true)
      return { id, subscribed: delivered, instances, partial }
    },
    async unsubscribe (userId, channel) {
      assertUserId('userId', userId)
      namespaceOf(channel)
      const { id, delivered, instances, partial } = await fanout.subscription(userId, channel, false)
      return { id, subscribed: delivered, instances, partial }
    },
    async publish (channel, data) {
      const namespace = namespaceOf(channel)
      if (data instanceof Uint8Array) {
        const { bytes, binary } = dataFromBytes(data)
        return await channels.publish(channel, namespace, bytes, { binary })
      }
      return await channels.publish(channel, namespace, serializeData(data))
    },
    async history (channel, query = {}) {
      const namespace = withHistory(channel)
      const { limit = 0, since, reverse = false } = query
      if (!Number.isSafeInteger(limit) || limit < -1) throw new InvalidArgumentError('limit', 'must be -1 (all), 0 (position only) or a positive integer')
      const page = await channels.history(channel, namespace, { limit, since, reverse })
      // Bytes are the store's own (memory): the caller gets copies it may change.
      if (!page.publications.some((publication) => typeof publication.data !== 'string')) return page
      return { ...page, publications: page.publications.map((publication) => typeof publication.data === 'string' ? publication : { ...publication, data: Buffer.from(publication.data) }) }
    },
    async removeHistory (channel) {
      withHistory(channel)
      await channels.removeHistory(channel)
    },
    async presence (channel) {
      withPresence(channel)
      return await channels.presence(channel)
    },
    async presenceStats (channel) {
      withPresence(channel)
      return await channels.presenceStats(channel)
    },
    metricsRegistry: metrics.registry,
    get backplaneUp () { return backplaneUp() }
  }
}
