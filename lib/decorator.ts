import { assertCloseArguments, CloseCode } from './core/close-codes.js'
import { InvalidArgumentError } from './errors.js'
import type { Fanout } from './core/fanout.js'
import type { FanoutMetrics } from './metrics.js'
import type { Registry } from './core/registry.js'
import type { FanoutDecorator } from './types.js'
import { assertTarget, assertUserId } from './user-id.js'

/** Builds `fastify.fanout`: the registry's read side and the send methods. */
export function createDecorator (registry: Registry, fanout: Fanout, metrics: FanoutMetrics, backplaneUp: () => boolean): FanoutDecorator {
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
    async disconnectUser (userId, code = CloseCode.DISCONNECTED, reason = 'disconnected by server') {
      assertUserId('userId', userId)
      assertCloseArguments(code, reason)
      const { id, delivered, instances, partial } = await fanout.disconnect(userId, code, reason)
      return { id, disconnected: delivered, instances, partial }
    },
    metricsRegistry: metrics.registry,
    get backplaneUp () { return backplaneUp() }
  }
}
