import type { DoneFuncWithErrOrRes, FastifyReply, FastifyRequest } from 'fastify'

// When a response ends while its request body is still arriving, Node's HTTP
// server keeps the connection for the next request and reads the rest of the
// body into nowhere (`resOnFinish` calls `req._dump()`), for as long as the
// client keeps sending: gigabytes, or hours of a trickle, on a request that
// was refused at its first line. `Connection: close` on such a response makes
// Node end the socket once the response is written (`res._last`, then
// `socket.destroySoon()`), so a refusal costs one response, not the body.
//
// Closed: errors (401 from onRequest, 404, 413 ...) and responses whose body
// nobody reads (a GET with a body). A 2xx whose handler is still streaming
// the body (an upload proxy) is left alone: it will read the body itself.
//
// Unread bytes left in the kernel make it reset the connection instead of
// closing it gently; a client that sent a large body without waiting for
// `100 Continue` may see the reset instead of the refusal. That is the price
// of not reading what an unauthenticated client chooses to send.

/**
 * `onSend` hook: answers with `Connection: close` when the request body is
 * still unread and the response is an error, or nobody is reading the body.
 * fastify-fanout adds it to the instance it is registered on (the whole app
 * when registered at the root) unless `closeOnUnreadBody: false`.
 */
export function closeOnUnreadBody (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: DoneFuncWithErrOrRes): void {
  const raw = request.raw
  // HTTP/2 has no Connection header (and no per-request connection to close).
  if (raw.httpVersionMajor === 1 && hasBody(raw.headers) && !raw.complete &&
    (reply.statusCode >= 400 || !beingRead(raw)) && !reply.hasHeader('connection')) {
    reply.header('connection', 'close')
  }
  done(null, payload)
}

// Decided from the headers, not from `complete`: a reply sent in the same
// tick as the headers arrived would otherwise see an empty GET as unfinished.
function hasBody (headers: FastifyRequest['headers']): boolean {
  if (headers['transfer-encoding'] !== undefined) return true
  const length = headers['content-length']
  return length !== undefined && length !== '0'
}

function beingRead (raw: FastifyRequest['raw']): boolean {
  return raw.readableFlowing === true || raw.listenerCount('data') > 0 || raw.listenerCount('readable') > 0
}
