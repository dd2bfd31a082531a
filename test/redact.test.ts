import { once } from 'node:events'
import { connect as tcpConnect } from 'node:net'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import t from 'tap'
import { WebSocket } from 'ws'
import fanout, { logHooks, serializers } from '../lib/index.js'
import { redactText, redactUrl } from '../lib/redact.js'
import { build, connect, rejectedUpgrade, SECRET, token } from './helpers.js'

function capture (): { lines: string[], stream: Writable } {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  return { lines, stream }
}

/** Whether `line` holds `secret` as text or as the byte list of a logged Buffer. */
function leaks (line: string, secret: string): boolean {
  return line.includes(secret) || line.includes(JSON.stringify([...Buffer.from(secret)]).slice(1, -1))
}

t.test('redactUrl: token parameters by their decoded name, every occurrence, any encoding', async (t) => {
  const cases: Array<[string, string]> = [
    ['/ws?token=abc', '/ws?token=[redacted]'],
    ['/ws?x=1&token=abc&y=2', '/ws?x=1&token=[redacted]&y=2'],
    ['/ws?token=a&token=b', '/ws?token=[redacted]&token=[redacted]'],
    ['/ws?tok%65n=abc', '/ws?tok%65n=[redacted]'],
    ['/ws?%74oken=abc', '/ws?%74oken=[redacted]'],
    ['/ws?%74%6F%6B%65%6E=abc', '/ws?%74%6F%6B%65%6E=[redacted]'],
    ['/ws?TOKEN=abc', '/ws?TOKEN=[redacted]'],
    ['/ws?access_token=abc', '/ws?access_token=[redacted]'],
    ['/ws?access%5Ftoken=abc', '/ws?access%5Ftoken=[redacted]'],
    ['/ws?token=abc%ZZ', '/ws?token=[redacted]'],
    ['/ws?tok%65n%C0=abc', '/ws?tok%65n%C0=abc'], // not valid UTF-8: a different name
    ['/ws;token=abc', '/ws;token=[redacted]'], // useSemicolonDelimiter
    ['/ws?token=', '/ws?token=[redacted]'],
    ['/ws?token', '/ws?token'],
    ['/ws?tokens=abc&my+token=b', '/ws?tokens=abc&my+token=b'],
    ['/ws', '/ws'],
    ['/', '/'],
    ['/ws?user=alice&page=2', '/ws?user=alice&page=2'],
    // A JWT is recognizable under any name, in the path too.
    ['/ws?jwt=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig', '/ws?jwt=[redacted]'],
    ['/ws?jwt=eyJhbGciOiJIUzI1NiJ9%2EeyJzdWIiOiJhIn0%2Esig', '/ws?jwt=[redacted]'],
    ['/ws/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig?x=1', '/ws/[redacted]?x=1'],
    ['/ws?eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig', '/ws?[redacted]']
  ]
  for (const [url, expected] of cases) t.equal(redactUrl(url), expected, url)
  t.equal(redactText('Route GET:/x?token=abc not found'), 'Route GET:/x?token=[redacted] not found')
  t.equal(redactText('no url here? fine; ok'), 'no url here? fine; ok')
})

t.test('serializers.err drops the raw packet of a client error and keeps the rest', async (t) => {
  const cause = new Error('inner /x?token=abc')
  const error = Object.assign(new Error('Parse Error: /x?token=abc', { cause }), {
    code: 'HPE_HEADER_OVERFLOW',
    statusCode: 431,
    rawPacket: Buffer.from('GET /x?token=abc HTTP/1.1\r\n')
  })
  const serialized = serializers.err(error) as Record<string, unknown>
  t.equal(serialized.rawPacket, undefined)
  t.match(serialized, { type: 'Error', message: 'Parse Error: /x?token=[redacted]', code: 'HPE_HEADER_OVERFLOW', statusCode: 431 })
  t.match(serialized.stack, /^Error: Parse Error: \/x\?token=\[redacted\]/)
  t.match(serialized.cause, { type: 'Error', message: 'inner /x?token=[redacted]' })
  const circular = Object.assign(new Error('loop'), { self: undefined as unknown })
  circular.self = circular
  t.equal((serializers.err(circular) as Record<string, unknown>).self, '[Circular]')
  t.equal(serializers.err('not an error' as unknown as Error), 'not an error', 'a value that is not an error passes as is')
})

t.test('no log line holds a token, at trace level, with the exported serializers and hooks', async (t) => {
  const { lines, stream } = capture()
  const app = Fastify({ logger: { level: 'trace', serializers, hooks: logHooks, stream } })
  t.teardown(() => app.close())
  await app.register(fanout, { jwt: { secret: SECRET } })
  app.get('/', async () => 'home')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const base = `http://127.0.0.1:${port}`
  const wsBase = `ws://127.0.0.1:${port}`
  const jwt = token({ sub: 'alice', scope: 'broadcast' })

  const steps: Array<[string, () => Promise<unknown>]> = [
    ['a 404 path', async () => await fetch(`${base}/nowhere?token=${jwt}`)],
    ['the app\'s own route', async () => await fetch(`${base}/?token=${jwt}`)],
    ['/broadcast', async () => await fetch(`${base}/broadcast?token=${jwt}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"data":1}' })],
    ['POST /ws', async () => await fetch(`${base}/ws?token=${jwt}`, { method: 'POST' })],
    ['OPTIONS /ws', async () => await fetch(`${base}/ws?token=${jwt}`, { method: 'OPTIONS' })],
    ['GET /ws without upgrade', async () => await fetch(`${base}/ws?token=${jwt}`)],
    ['/ws?tok%65n= (accepted: the parser decodes the name)', async () => {
      const ws = new WebSocket(`${wsBase}/ws?tok%65n=${jwt}`)
      await once(ws, 'open')
      ws.terminate()
    }],
    ['/ws?%74oken= (rejected)', async () => await rejectedUpgrade(`${wsBase}/ws?%74oken=${jwt}x`)],
    ['/ws?token=&token= (duplicates)', async () => await rejectedUpgrade(`${wsBase}/ws?token=${jwt}&token=${jwt}`)],
    ['431 headers too large', async () => await headerOverflow(port, `/ws?token=${jwt}`)]
  ]
  for (const [name, step] of steps) {
    const before = lines.length
    await step()
    await new Promise((resolve) => setImmediate(resolve))
    const logged = lines.slice(before)
    t.ok(logged.length > 0, `${name}: logged`)
    t.same(logged.filter((line) => leaks(line, jwt)), [], `${name}: no line holds the token`)
  }
  t.notOk(lines.some((line) => line.includes('rawPacket')), 'no raw packet is logged')
  t.ok(lines.some((line) => line.includes('token=[redacted]')), 'request lines stay useful')
  t.ok(lines.some((line) => line.includes('Route GET:/nowhere?token=[redacted] not found')), 'the 404 message is redacted')
})

t.test('our routes never log a token, whatever the app configures', async (t) => {
  const { lines, stream } = capture()
  const { url, wsUrl } = await build(t, {}, { logger: { level: 'info', stream } })
  const accepted = token({ sub: 'alice' })
  const ws = await connect(t, wsUrl, accepted)
  const expired = token({ sub: 'alice', exp: 1 })
  await rejectedUpgrade(`${wsUrl}?token=${expired}&x=1`)
  await rejectedUpgrade(`${wsUrl}?tok%65n=${expired}`)
  await fetch(`${url}/broadcast?token=${accepted}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"data":1}' })
  ws.close()
  const log = lines.join('')
  t.match(log, /token=\[redacted\]/, 'the request line is logged, redacted')
  t.match(log, /tok%65n=\[redacted\]/, 'an encoded name is redacted too')
  t.notOk(leaks(log, accepted), 'the accepted token is not in the log')
  t.notOk(leaks(log, expired), 'the rejected token is not in the log')
})

t.test('the exported serializers and hooks fit Fastify\'s logger options', async (t) => {
  const app = Fastify({ logger: { level: 'silent', serializers: { ...serializers, res: (reply: { statusCode: number }) => ({ statusCode: reply.statusCode }) }, hooks: logHooks } })
  await app.ready()
  await app.close()
  t.pass()
})

// Sends a request whose headers exceed Node's limit: Fastify answers 431 and
// logs the client error (at trace level) with the bytes it could not parse.
async function headerOverflow (port: number, path: string): Promise<string> {
  const socket = tcpConnect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nX-Padding: ${'a'.repeat(20_000)}\r\n\r\n`)
  const [answer] = await once(socket, 'data') as [Buffer]
  socket.destroy()
  return answer.toString().split('\r\n')[0] as string
}
