// Fastify server options for a WebSocket server that faces the internet
// itself. Node's and Fastify's defaults let a client that never finishes its
// request hold a socket (and a file descriptor) for 60-90 s (headers) or
// forever (a trickled body): enough half-sent requests from a few addresses
// exhaust the process's file limit and nobody else can connect.
//
// None of these reach an open WebSocket: Node hands the socket over at the
// upgrade (no more header or request deadline) and ws turns its idle timeout
// off (`socket.setTimeout(0)`); heartbeats watch open connections instead.
import type { Server } from 'node:http'
import type { FastifyHttpOptions } from 'fastify'

export const publicServerOptions = {
  // The whole request, body included, within 20 s: a trickled body is
  // dropped with 408, whatever token it carries. 1 MiB (the broadcast body
  // limit) takes 8 s at 1 Mbit/s.
  requestTimeout: 20_000,
  // An idle keep-alive connection is closed after 5 s (Node waits 1 s more
  // than it advertises, so clients close first). Fastify's default,
  // 72 s, outlasts a load balancer's idle timeout (it keeps a pool of
  // connections to us); on the internet it lets every client park a socket.
  // Behind a proxy that reuses connections, set it above the proxy's.
  keepAliveTimeout: 5_000,
  // A socket that sends nothing for 30 s while its request is under way.
  connectionTimeout: 30_000,
  // Passed by Fastify to http.createServer().
  http: {
    // Request headers (an upgrade request's included) within 10 s...
    headersTimeout: 10_000,
    // ...checked every 2 s; with Node's 30 s a deadline could be overrun by
    // up to 30 s. The check walks only requests still under way.
    connectionsCheckingInterval: 2_000
  }
} satisfies FastifyHttpOptions<Server>
