import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import fanout, { closeOnUnreadBody } from '../lib/index.js'
import { build, SECRET, serviceToken } from './helpers.js'

interface RawResponse {
  status: number
  headers: string
  /** Resolves with how long after the response head the server closed the socket. */
  closedAfter: Promise<number>
}

/**
 * Sends `head` on a raw socket, then trickles body bytes (a client that never
 * finishes its body) until the server closes the socket or `holdMs` passes.
 */
async function rawRequest (t: Test, url: string, head: string, holdMs = 2000): Promise<RawResponse> {
  const { port } = new URL(url)
  const socket: Socket = connect({ host: '127.0.0.1', port: Number(port) })
  t.teardown(() => socket.destroy())
  socket.on('error', () => {}) // a reset after the response is what closing a half-read body looks like
  await once(socket, 'connect')
  socket.write(head + 'x'.repeat(1024))
  const trickle = setInterval(() => { if (socket.writable) socket.write('x'.repeat(1024)) }, 20)
  t.teardown(() => clearInterval(trickle))

  let received = ''
  socket.setEncoding('latin1')
  const headEnd = new Promise<number>((resolve) => {
    socket.on('data', (chunk: string) => {
      received += chunk
      if (received.includes('\r\n\r\n')) resolve(Date.now())
    })
  })
  const closed = new Promise<number>((resolve) => { socket.once('close', () => { resolve(Date.now()) }) })
  const answeredAt = await Promise.race([headEnd, closed])
  const closedAfter = Promise.race([
    closed.then((at) => at - answeredAt),
    new Promise<number>((resolve) => setTimeout(() => { resolve(Infinity) }, holdMs))
  ]).finally(() => { clearInterval(trickle) })
  const [statusLine = '', ...headerLines] = received.slice(0, received.indexOf('\r\n\r\n')).split('\r\n')
  return { status: Number(statusLine.split(' ')[1]), headers: headerLines.join('\n').toLowerCase(), closedAfter }
}

const endless = (method: string, path: string, headers = ''): string =>
  `${method} ${path} HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100000000000\r\n${headers}\r\n`

t.test('a refused POST /broadcast closes the connection instead of reading its body', async (t) => {
  const { url } = await build(t)
  const response = await rawRequest(t, url, endless('POST', '/broadcast'))
  t.equal(response.status, 401)
  t.match(response.headers, /connection: close/)
  t.ok(await response.closedAfter < 1000, 'the server closed the socket after the 401')

  const scoped = await rawRequest(t, url, endless('POST', '/broadcast', `authorization: Bearer ${serviceToken('read')}\r\n`))
  t.equal(scoped.status, 403, 'a token without the scope')
  t.ok(await scoped.closedAfter < 1000, 'closed after the 403')
})

t.test('app-wide: 404s, the app\'s own refusals and responses nobody reads the body of close too', async (t) => {
  const { app, url } = await build(t, {}, {}, (app) => {
    app.post('/private', { onRequest: async (_request, reply) => await reply.code(401).send({ error: 'no' }) }, async () => 'never')
  })
  for (const [what, head, status] of [
    ['a 404 to a GET with a body', endless('GET', '/nowhere'), 404],
    ['a 401 from the app\'s own onRequest', endless('POST', '/private'), 401],
    ['the readiness route, which reads no body', endless('GET', '/fanout/ready'), 200],
    ['a plain GET to the WebSocket endpoint', endless('GET', '/ws'), 426]
  ] as const) {
    const response = await rawRequest(t, url, head)
    t.equal(response.status, status, what)
    t.ok(await response.closedAfter < 1000, `${what}: closed`)
  }
  t.ok(app.hasPlugin('fastify-fanout'))
})

t.test('keep-alive is kept where the body was read or there was none', async (t) => {
  const { url } = await build(t)
  const body = '{"data":"hi"}'
  const { port } = new URL(url)
  const socket = connect({ host: '127.0.0.1', port: Number(port) })
  t.teardown(() => socket.destroy())
  await once(socket, 'connect')
  socket.setEncoding('latin1')
  let received = ''
  socket.on('data', (chunk: string) => { received += chunk })
  const answers = async (count: number): Promise<void> => {
    while (received.split('HTTP/1.1 ').length - 1 < count) await once(socket, 'data')
  }
  socket.write(`POST /broadcast HTTP/1.1\r\nHost: localhost\r\nauthorization: Bearer ${serviceToken()}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`)
  await answers(1)
  socket.write('GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n')
  await answers(2)
  socket.write('GET /fanout/ready HTTP/1.1\r\nHost: localhost\r\n\r\n')
  await answers(3)
  t.match(received, /^HTTP\/1.1 202 [^]*HTTP\/1.1 404 [^]*HTTP\/1.1 200 /, 'three answers on one connection')
  t.notMatch(received.toLowerCase(), /connection: close/)
})

t.test('a handler still streaming the body of a 2xx keeps its connection', async (t) => {
  const { url } = await build(t, {}, {}, (app) => {
    app.addContentTypeParser('application/octet-stream', (_request, payload, done) => { done(null, payload) })
    app.post('/upload', async (request, reply) => {
      const body = request.body as NodeJS.ReadableStream
      body.resume() // reads on (to storage, say) while answering
      return await reply.code(202).send('accepted')
    })
  })
  const { port } = new URL(url)
  const socket = connect({ host: '127.0.0.1', port: Number(port) })
  t.teardown(() => socket.destroy())
  await once(socket, 'connect')
  socket.setEncoding('latin1')
  socket.write('POST /upload HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/octet-stream\r\ncontent-length: 10\r\n\r\n12345')
  const [answer] = await once(socket, 'data') as [string]
  t.match(answer, /^HTTP\/1.1 202 /)
  t.notMatch(answer.toLowerCase(), /connection: close/)
})

t.test('closeOnUnreadBody: false leaves Node\'s behaviour; the hook is exported for other scopes', async (t) => {
  const { url } = await build(t, { closeOnUnreadBody: false })
  const response = await rawRequest(t, url, endless('POST', '/broadcast'), 500)
  t.equal(response.status, 401)
  t.notMatch(response.headers, /connection: close/)
  t.equal(await response.closedAfter, Infinity, 'Node keeps reading the body')

  // An app that registers fastify-fanout in a child scope adds the hook at its root itself.
  const app = Fastify()
  t.teardown(() => app.close())
  app.addHook('onSend', closeOnUnreadBody)
  await app.register(async (child) => { await child.register(fanout, { jwt: { secret: SECRET }, closeOnUnreadBody: false }) })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const root = await rawRequest(t, `http://127.0.0.1:${port}`, endless('GET', '/nowhere'))
  t.equal(root.status, 404)
  t.ok(await root.closedAfter < 1000, 'closed by the app\'s own hook')

  await t.rejects(async () => {
    const bad = Fastify()
    try { await bad.register(fanout, { jwt: { secret: SECRET }, closeOnUnreadBody: 'yes' as unknown as boolean }) } finally { await bad.close() }
  }, { code: 'FST_FANOUT_INVALID_OPTION', message: /`closeOnUnreadBody` must be true or false, got "yes"/ })
})
