import { WebSocket, type WebSocketServer } from 'ws'
import type { FastifyBaseLogger } from 'fastify'
import { CloseCode } from './core/close-codes.js'
import { connectionOf } from './core/connection.js'
import type { Registry } from './core/registry.js'

/**
 * Closes the registered connections with their endpoint's code for
 * `messagesMissed`, each after what is queued for it: at both moments of a
 * backplane gap for clients that refetch by themselves (/ws), and only once
 * it is over for those that recover from history (their recovery needs
 * Redis back: closing them while it is down makes them reconnect twice).
 */
export function closeAll (registry: Registry, why: 'messagesMissed', phase: 'lost' | 'restored'): void {
  for (const connection of registry.values()) {
    if (phase === 'restored' || !connection.protocol.recovers) connection.closeFor(why)
  }
}

/**
 * Closes every client with its endpoint's shutdown code (1001, going away, on /ws) and waits for the closing
 * handshakes, up to `timeout` ms, then terminates the rest. Each client's
 * close frame queues behind the messages already written to it, so what was
 * accepted before shutdown still arrives first.
 */
export async function closeClients (server: WebSocketServer, timeout: number, log: FastifyBaseLogger): Promise<void> {
  const open = new Set(server.clients)
  if (open.size === 0) return
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      log.warn({ clients: open.size, timeout }, 'fanout: clients did not finish closing in time, terminating them')
      for (const client of open) client.terminate()
    }, timeout)
    for (const client of open) {
      client.once('close', () => {
        open.delete(client)
        if (open.size === 0) {
          clearTimeout(timer)
          resolve()
        }
      })
      // Each endpoint's own code (1001 on /ws, 3001 for Centrifugo's SDKs).
      const connection = connectionOf(client)
      if (connection !== undefined) connection.closeFor('shutdown')
      else if (client.readyState === WebSocket.OPEN) client.close(CloseCode.GOING_AWAY, 'server shutting down')
    }
  })
}
