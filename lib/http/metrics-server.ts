import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'

export interface MetricsListen {
  readonly host: string
  readonly port: number
  readonly path: string
}

/**
 * Serves the registry on its own small HTTP server (an internal address),
 * so that the public port does not reveal versions, file usage and counts,
 * and a scrape of the public port costs the attacker nothing and us a few
 * milliseconds of CPU. Listens when the app is ready; closed, connections
 * included, when the app closes.
 */
export function registerMetricsServer (fastify: FastifyInstance, registry: Registry, listen: MetricsListen): void {
  const log = fastify.log
  const server = createServer({
    // Internal, but still a socket: nothing half-sent is held for long.
    headersTimeout: 10_000,
    requestTimeout: 10_000
  }, (request, response) => { answer(request, response, registry, listen.path, log) })

  fastify.addHook('onReady', async () => {
    server.listen({ host: listen.host, port: listen.port })
    await once(server, 'listening') // 'error' (port taken) rejects ready()
    const { address, port } = server.address() as AddressInfo
    log.info({ address, port }, `fastify-fanout: metrics at http://${address.includes(':') ? `[${address}]` : address}:${port}${listen.path}`)
  })
  fastify.addHook('onClose', async () => {
    if (!server.listening) return
    const closed = once(server, 'close')
    server.close()
    server.closeAllConnections() // a scraper's keep-alive socket must not hold close() up
    await closed
  })
}

function answer (request: IncomingMessage, response: ServerResponse, registry: Registry, path: string, log: FastifyBaseLogger): void {
  const url = request.url ?? '/'
  const pathname = url.includes('?') ? url.slice(0, url.indexOf('?')) : url
  if (pathname !== path) {
    response.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found\n')
    return
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('Method Not Allowed\n')
    return
  }
  registry.metrics().then((text) => {
    response.writeHead(200, { 'content-type': registry.contentType })
    response.end(request.method === 'HEAD' ? undefined : text)
  }, (err: unknown) => {
    log.error({ err }, 'fastify-fanout: collecting metrics failed')
    response.writeHead(500, { 'content-type': 'text/plain' }).end('Internal Server Error\n')
  })
}
