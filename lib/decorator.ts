import { CloseCode, isApplicationCloseCode, MAX_CLOSE_REASON_BYTES } from './close-codes.js'
import { InvalidCloseCodeError, InvalidCloseReasonError } from './errors.js'
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
    async disconnectUser (userId, code = CloseCode.DISCONNECTED, reason = 'disconnected by server') {
      if (!isApplicationCloseCode(code)) throw new InvalidCloseCodeError(code)
      if (typeof reason !== 'string' || Buffer.byteLength(reason) > MAX_CLOSE_REASON_BYTES) throw new InvalidCloseReasonError(MAX_CLOSE_REASON_BYTES)
      const { id, delivered, instances, partial } = await fanout.disconnect(userId, code, reason)
      return { id, disconnected: delivered, instances, partial }
    },
    metricsRegistry: metrics.registry,
    get backplaneUp () { return backplaneUp() }
  }
}
