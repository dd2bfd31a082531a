import { CloseCode, isApplicationCloseCode } from './close-codes.js'
import { InvalidCloseCodeError } from './errors.js'
import type { Fanout } from './fanout.js'
import type { FanoutMetrics } from './metrics.js'
import type { Registry } from './registry.js'
import type { FanoutDecorator } from './types.js'

/** Builds `fastify.fanout`: the registry's read side and the send methods. */
export function createDecorator (registry: Registry, fanout: Fanout, metrics: FanoutMetrics, backplaneUp: () => boolean): FanoutDecorator {
  return {
    get size () { return registry.size },
    get userCount () { return registry.userCount },
    connection: (id) => registry.get(id),
    connectionsOf: (userId) => registry.ofUser(userId),
    connections: () => registry.values(),
    // async: a bad message becomes a rejected promise, never a synchronous throw
    broadcast: async (data, target = {}) => await fanout.publish(data, { users: target.users, except: target.except }),
    sendToUser: async (userId, data) => await fanout.publish(data, { users: [userId] }),
    sendTo: async (connectionId, data) => await fanout.publish(data, { connectionId }),
    disconnectUser (userId, code = CloseCode.DISCONNECTED, reason = 'disconnected by server') {
      if (!isApplicationCloseCode(code)) throw new InvalidCloseCodeError(code)
      // Copy first: closing removes connections from the live set.
      const connections = [...registry.ofUser(userId)]
      for (const connection of connections) connection.close(code, reason)
      return connections.length
    },
    metricsRegistry: metrics.registry,
    get backplaneUp () { return backplaneUp() }
  }
}
