// The codec against the real centrifuge-js SDK (pinned ~5.8.0): a bare `ws`
// server parses every frame the SDK sends with CommandParser and answers
// with the reply and push builders only. What the SDK sends must parse to the
// commands its calls stand for; what we send must reach the app as the
// events and results the SDK documents. No endpoint here: the server is the
// few lines below.
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { Centrifuge, type Subscription } from 'centrifuge'
import t, { type Test } from 'tap'
import { WebSocket, WebSocketServer } from 'ws'
import { CommandParser, type Command, type Method, type ParsedLine } from '../lib/protocols/centrifuge/commands.js'
import { DisconnectCode, ErrorCode, UnsubscribeCode } from '../lib/protocols/centrifuge/codes.js'
import {
  connectResult, disconnectPush, errorReply, historyResult, joinPush, leavePush, messagePush, PING, presenceResult,
  presenceStatsResult, pubPush, refreshResult, reply, rpcResult, subRefreshResult, subscribePush, subscribeResult
  , unsubscribePush
} from '../lib/protocols/centrifuge/replies.js'

type Handler = (command: Command, server: FakeServer) => string | undefined

/** A WebSocket server that speaks through the codec and records what it heard. */
class FakeServer {
  readonly frames: string[] = []
  readonly lines: ParsedLine[] = []
  readonly problems: string[] = []
  socket: WebSocket | undefined
  readonly #parser = new CommandParser()
  readonly #taken = new Set<Command>()
  readonly #waiters = new Set<() => void>()

  private constructor (readonly wss: WebSocketServer, readonly handler: Handler) {
    wss.on('connection', (socket) => {
      this.socket = socket
      socket.on('message', (data, isBinary) => this.#frame(String(data), isBinary))
    })
  }

  static async start (t: Test, handler: Handler): Promise<FakeServer> {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
    await once(wss, 'listening')
    t.teardown(async () => {
      for (const client of wss.clients) client.terminate()
      await new Promise((resolve) => wss.close(resolve))
    })
    return new FakeServer(wss, handler)
  }

  get url (): string {
    return `ws://127.0.0.1:${(this.wss.address() as AddressInfo).port}/connection/websocket`
  }

  get commands (): Command[] {
    return this.lines.flatMap((line) => line.kind === 'command' ? [line.command] : [])
  }

  get pongs (): number {
    return this.lines.filter((line) => line.kind === 'pong').length
  }

  send (text: string): void {
    this.socket?.send(text)
  }

  /** The first command of `method` not taken yet (waiting for it), matching `where` if given. */
  async take<M extends Method> (method: M, where: (command: Extract<Command, { method: M }>) => boolean = () => true): Promise<Extract<Command, { method: M }>> {
    for (;;) {
      const found = this.commands.find((c): c is Extract<Command, { method: M }> => c.method === method && !this.#taken.has(c) && where(c as Extract<Command, { method: M }>))
      if (found !== undefined) {
        this.#taken.add(found)
        return found
      }
      await new Promise<void>((resolve) => this.#waiters.add(resolve))
    }
  }

  /** Resolves once `check` holds (checked after every frame). */
  async until (check: () => boolean): Promise<void> {
    while (!check()) await new Promise<void>((resolve) => this.#waiters.add(resolve))
  }

  #frame (text: string, isBinary: boolean): void {
    this.frames.push(text)
    if (isBinary) this.problems.push('binary frame')
    const parsed = this.#parser.parse(text)
    if (!parsed.ok) {
      this.problems.push(`refused ${JSON.stringify(text)}: ${parsed.reason}`)
      this.socket?.close(DisconnectCode.BAD_REQUEST.code, DisconnectCode.BAD_REQUEST.reason)
      return
    }
    const out: string[] = []
    for (const line of parsed.lines) {
      this.lines.push(line)
      if (line.kind === 'invalid') {
        this.problems.push(`invalid: ${line.detail}`)
        out.push(errorReply(line.id, { code: line.code, message: line.message, temporary: false }))
      } else if (line.kind === 'command') {
        const answer = this.handler(line.command, this)
        if (answer !== undefined) out.push(answer)
      }
    }
    // Replies to one frame go out in one frame, as an endpoint batching per tick would send them.
    if (out.length > 0) this.send(out.join('\n'))
    const waiters = [...this.#waiters]
    this.#waiters.clear()
    for (const wake of waiters) wake()
  }
}

interface Emitter { on: (event: string, listener: (ctx: unknown) => void) => unknown }

/** Every emission of `events` by `emitter`, in order, with a way to wait for the n-th of one. */
class Events {
  readonly seen: Array<[string, unknown]> = []
  readonly #waiters = new Set<() => void>()

  /** `emitter`: a Centrifuge client or Subscription (typed by event name, which a list of names cannot be). */
  constructor (emitter: object, events: string[]) {
    for (const event of events) {
      (emitter as Emitter).on(event, (ctx) => {
        this.seen.push([event, ctx])
        const waiters = [...this.#waiters]
        this.#waiters.clear()
        for (const wake of waiters) wake()
      })
    }
  }

  of (event: string): unknown[] {
    return this.seen.filter(([name]) => name === event).map(([, ctx]) => ctx)
  }

  /** The `count`-th `event` (1-based), waiting for it. */
  async nth (event: string, count = 1): Promise<unknown> {
    while (this.of(event).length < count) await new Promise<void>((resolve) => this.#waiters.add(resolve))
    return this.of(event)[count - 1]
  }
}

function unhandledRejections (t: Test): unknown[] {
  const seen: unknown[] = []
  const collect = (reason: unknown): void => { seen.push(reason) }
  process.on('unhandledRejection', collect)
  t.teardown(() => { process.off('unhandledRejection', collect) })
  return seen
}

const INFO = { user: 'u2', client: 'c-2', conn_info: { name: 'Bob' } }
const INFO_CTX = { user: 'u2', client: 'c-2', connInfo: { name: 'Bob' } }

t.test('a whole session with the real SDK: its commands parse as expected, our replies and pushes reach the app', async (t) => {
  const rejections = unhandledRejections(t)
  let connects = 0
  const server = await FakeServer.start(t, (command) => {
    switch (command.method) {
      case 'connect': {
        connects++
        const subs = {
          news: subscribeResult({ recoverable: true, positioned: true, epoch: 'NE', offset: connects === 1 ? 3 : 4 }),
          ...(connects === 1 ? {} : { srv: subscribeResult({ recoverable: true, epoch: 'S', offset: 2 }) })
        }
        return reply(command.id, 'connect', connectResult({
          client: `c-${connects}`,
          data: { hello: 'x' },
          subs,
          ping: 25,
          pong: true,
          // ttl 0: the SDK refreshes at once, which keeps the test fast.
          ...(connects === 1 ? { expires: true, ttl: 0 } as const : { expires: false } as const)
        }))
      }
      case 'subscribe':
        if (command.params.channel === 'chat:a') {
          return reply(command.id, 'subscribe', subscribeResult({
            recoverable: true,
            positioned: true,
            epoch: 'E1',
            offset: command.params.offset ?? 0,
            was_recovering: command.params.recover,
            recovered: command.params.recover,
            publications: connects === 1 ? [{ offset: 6, data: '{"n":6}' }, { offset: 7, data: '{"n":7}', info: INFO }] : []
          }))
        }
        if (command.params.channel === 'chat:b') return reply(command.id, 'subscribe', subscribeResult({ expires: true, ttl: 0 }))
        return errorReply(command.id, ErrorCode.PERMISSION_DENIED)
      case 'history':
        return reply(command.id, 'history', historyResult({
          publications: command.params.limit === undefined ? [] : [{ offset: 9, data: '{"n":9}', info: INFO }, { offset: 8, data: '{"n":8}' }],
          epoch: 'E1',
          offset: 9
        }))
      case 'presence':
        return reply(command.id, 'presence', presenceResult({ 'c-1': { user: 'u1', client: 'c-1' }, 'c-2': INFO }))
      case 'presence_stats':
        return reply(command.id, 'presence_stats', presenceStatsResult({ num_clients: 2, num_users: 1 }))
      case 'publish':
        return reply(command.id, 'publish')
      case 'rpc':
        return command.params.method === 'sum'
          ? reply(command.id, 'rpc', rpcResult({ sum: 3 }))
          : errorReply(command.id, ErrorCode.TOO_MANY_REQUESTS)
      case 'refresh':
        return reply(command.id, 'refresh', refreshResult({ expires: false }))
      case 'sub_refresh':
        return reply(command.id, 'sub_refresh', subRefreshResult({ expires: false }))
      case 'unsubscribe':
        return reply(command.id, 'unsubscribe')
      default:
        return undefined // send (never answered), ping
    }
  })

  let tokens = 1
  const client = new Centrifuge(server.url, {
    websocket: WebSocket,
    token: 'T1',
    getToken: async () => `T${++tokens}`,
    data: { app: 1 },
    version: '1.2.3',
    headers: { 'x-app': 'demo' },
    minReconnectDelay: 10,
    maxReconnectDelay: 50,
    timeout: 3000
  })
  t.teardown(() => client.disconnect())
  const clientEvents = new Events(client, ['connecting', 'connected', 'disconnected', 'subscribed', 'publication', 'message', 'error'])
  const a = client.newSubscription('chat:a', { since: { offset: 5, epoch: 'E1' }, positioned: true, recoverable: true, joinLeave: true, data: { want: 'a' }, delta: 'fossil' })
  const b = client.newSubscription('chat:b', { token: 'S1', getToken: async () => 'S2', tagsFilter: { key: 'k', cmp: 'eq', val: 'v' } })
  const denied = client.newSubscription('chat:denied')
  const subEvents = new Map<Subscription, Events>([a, b, denied].map((sub) => [sub, new Events(sub, ['subscribed', 'unsubscribed', 'publication', 'join', 'leave', 'error'])]))
  const on = (sub: Subscription): Events => subEvents.get(sub) as Events
  a.subscribe()
  b.subscribe()
  denied.subscribe()
  client.connect()

  // The first frame: connect and every pending subscribe, in order.
  const connect = await server.take('connect')
  t.same(connect, { id: 1, method: 'connect', params: { token: 'T1', data: { app: 1 }, name: 'js', version: '1.2.3', headers: { 'x-app': 'demo' } } })
  t.same(server.frames[0]?.split('\n').map((l) => Object.keys(JSON.parse(l)).filter((k) => k !== 'id')[0]), ['connect', 'subscribe', 'subscribe', 'subscribe'])
  t.same(await server.take('subscribe', (c) => c.params.channel === 'chat:a'), {
    id: 2,
    method: 'subscribe',
    params: { channel: 'chat:a', data: { want: 'a' }, positioned: true, recoverable: true, join_leave: true, flag: 1, recover: true, offset: 5, epoch: 'E1', delta: 'fossil' }
  })
  t.same((await server.take('subscribe', (c) => c.params.channel === 'chat:b')).params, { channel: 'chat:b', token: 'S1', flag: 1, tf: { key: 'k', cmp: 'eq', val: 'v' } })
  t.same((await server.take('subscribe', (c) => c.params.channel === 'chat:denied')).params, { channel: 'chat:denied', flag: 1 })

  // The connect result.
  t.same(await clientEvents.nth('connected'), { client: 'c-1', transport: 'websocket', data: { hello: 'x' } })
  t.match(await clientEvents.nth('subscribed'), { channel: 'news', recoverable: true, positioned: true, streamPosition: { offset: 3, epoch: 'NE' } })

  // Subscribe results: recovered publications after `subscribed`, in order; an error unsubscribes.
  t.match(await on(a).nth('subscribed'), { channel: 'chat:a', wasRecovering: true, recovered: true, positioned: true, recoverable: true, streamPosition: { offset: 5, epoch: 'E1' } })
  t.same(await on(a).nth('publication', 2), { channel: 'chat:a', data: { n: 7 }, offset: 7, info: INFO_CTX })
  t.same(on(a).of('publication')[0], { channel: 'chat:a', data: { n: 6 }, offset: 6 })
  t.same(await on(denied).nth('unsubscribed'), { channel: 'chat:denied', code: 103, reason: 'permission denied' })

  // Token refreshes (ttl 0: at once).
  t.same((await server.take('refresh')).params, { token: 'T2' })
  t.same((await server.take('sub_refresh')).params, { channel: 'chat:b', token: 'S2' })

  // Ping: the SDK answers {} with {}.
  server.send(PING)
  await server.until(() => server.pongs === 1)
  t.pass('pong parsed')

  // Pushes.
  server.send([
    pubPush('chat:a', { data: '{"n":8}', offset: 8, epoch: 'E1', info: INFO, tags: { k: 'v' } }),
    joinPush('chat:a', INFO),
    leavePush('chat:a', INFO),
    messagePush('{"direct":true}'),
    subscribePush('srv', { recoverable: true, epoch: 'S', offset: 1, data: { srv: 1 } }),
    pubPush('srv', { data: '"s2"', offset: 2 }),
    pubPush('news', { data: '{"n":4}', offset: 4, epoch: 'NE' }),
    unsubscribePush('chat:b', UnsubscribeCode.SERVER)
  ].join('\n'))
  t.same(await on(a).nth('publication', 3), { channel: 'chat:a', data: { n: 8 }, offset: 8, info: INFO_CTX, tags: { k: 'v' } })
  t.same(await on(a).nth('join'), { channel: 'chat:a', info: INFO_CTX })
  t.same(await on(a).nth('leave'), { channel: 'chat:a', info: INFO_CTX })
  t.same(await clientEvents.nth('message'), { data: { direct: true } })
  t.match(await clientEvents.nth('subscribed', 2), { channel: 'srv', recoverable: true, data: { srv: 1 }, streamPosition: { offset: 1, epoch: 'S' } })
  t.same(await clientEvents.nth('publication', 1), { channel: 'srv', data: 's2', offset: 2 })
  t.same(await clientEvents.nth('publication', 2), { channel: 'news', data: { n: 4 }, offset: 4 })
  t.same(await on(b).nth('unsubscribed'), { channel: 'chat:b', code: 2000, reason: 'server unsubscribe' })

  // Calls and their results.
  const history = await client.history('chat:a', { limit: 10, since: { offset: 2, epoch: 'E1' }, reverse: true })
  t.same((await server.take('history')).params, { channel: 'chat:a', since: { offset: 2, epoch: 'E1' }, limit: 10, reverse: true })
  t.same(history, { publications: [{ channel: 'chat:a', data: { n: 9 }, offset: 9, info: INFO_CTX }, { channel: 'chat:a', data: { n: 8 }, offset: 8 }], epoch: 'E1', offset: 9 })
  t.same(await client.history('chat:a'), { publications: [], epoch: 'E1', offset: 9 })
  t.same((await server.take('history')).params, { channel: 'chat:a' })
  t.same(await client.presence('chat:a'), { clients: { 'c-1': { user: 'u1', client: 'c-1' }, 'c-2': { ...INFO, connInfo: { name: 'Bob' } } } })
  t.same((await server.take('presence')).params, { channel: 'chat:a' })
  t.same(await client.presenceStats('chat:a'), { numClients: 2, numUsers: 1 })
  t.same((await server.take('presence_stats')).params, { channel: 'chat:a' })
  t.same(await client.publish('chat:a', { text: 'hi' }), {})
  t.same((await server.take('publish')).params, { channel: 'chat:a', data: { text: 'hi' } })
  await a.publish({ via: 'sub' })
  t.same((await server.take('publish')).params, { channel: 'chat:a', data: { via: 'sub' } })
  t.same(await client.rpc('sum', { a: 1, b: 2 }), { data: { sum: 3 } })
  t.same((await server.take('rpc')).params, { method: 'sum', data: { a: 1, b: 2 } })
  await t.rejects(client.rpc('busy', null), { code: 111, message: 'too many requests', temporary: true })
  t.same((await server.take('rpc')).params, { method: 'busy', data: null })
  await client.send({ fire: 1 })
  t.same(await server.take('send'), { id: 0, method: 'send', params: { data: { fire: 1 } } })

  // Reconnect: positions from the replies and publications come back as recovery requests.
  const frameCount = server.frames.length
  server.socket?.close(DisconnectCode.SHUTDOWN.code, DisconnectCode.SHUTDOWN.reason)
  t.same(await clientEvents.nth('connecting', 2), { code: 3001, reason: 'shutdown' })
  const again = await server.take('connect')
  t.ok(again.id > connect.id, 'ids go on counting across connections')
  t.same(again.params, {
    token: 'T2',
    data: { app: 1 },
    name: 'js',
    version: '1.2.3',
    headers: { 'x-app': 'demo' },
    subs: { news: { recover: true, offset: 4, epoch: 'NE' }, srv: { recover: true, offset: 2, epoch: 'S' } }
  })
  t.same((await server.take('subscribe', (c) => c.params.channel === 'chat:a')).params,
    { channel: 'chat:a', data: { want: 'a' }, positioned: true, recoverable: true, join_leave: true, flag: 1, recover: true, offset: 8, epoch: 'E1', delta: 'fossil' })
  t.same(server.frames[frameCount]?.split('\n').length, 2, 'connect and the one live subscription, in one frame')
  t.same(await clientEvents.nth('connected', 2), { client: 'c-2', transport: 'websocket', data: { hello: 'x' } })
  t.match(await on(a).nth('subscribed', 2), { wasRecovering: true, recovered: true, streamPosition: { offset: 8, epoch: 'E1' } })

  a.unsubscribe()
  t.same((await server.take('unsubscribe')).params, { channel: 'chat:a' })

  // A disconnect push ends the client for good (3503 is terminal).
  server.send(disconnectPush(DisconnectCode.FORCE_DISCONNECT))
  t.same(await clientEvents.nth('disconnected'), { code: 3503, reason: 'force disconnect' })

  t.same(server.problems, [], 'every frame parsed, every line valid')
  t.same(clientEvents.of('error'), [], 'no client errors')
  t.same(rejections, [], 'no unhandled rejections')
})

t.test('the SDK\'s own JsonCodec: it decodes our batched replies; we parse what it encodes', async (t) => {
  // Not exported: reached through the client, which builds one in its constructor.
  interface JsonCodec { encodeCommands: (commands: unknown[]) => string, decodeReplies: (data: string) => unknown[] }
  const codec = (new Centrifuge('ws://127.0.0.1:1/never', { websocket: WebSocket }) as unknown as { _codec: JsonCodec })._codec
  t.equal(typeof codec.encodeCommands, 'function')

  const out = [
    reply(1, 'connect', connectResult({ client: 'c', ping: 25, pong: true })),
    PING,
    pubPush('c', { data: '{ "pretty":\n  true }', offset: 1 }),
    errorReply(2, ErrorCode.UNRECOVERABLE_POSITION),
    messagePush('[1,2]')
  ]
  t.same(codec.decodeReplies(out.join('\n')), out.map((text) => JSON.parse(text)))

  const commands = [
    { connect: { token: 'T', name: 'js' }, id: 1 },
    { subscribe: { channel: 'c', flag: 3, recover: true, offset: 5, epoch: 'E' }, id: 2 },
    { send: { data: 'x' } },
    {},
    { history: { channel: 'c', since: { offset: 1 } }, id: 3 }
  ]
  const parsed = new CommandParser().parse(codec.encodeCommands(commands))
  t.same(parsed, {
    ok: true,
    lines: [
      { kind: 'command', command: { id: 1, method: 'connect', params: { token: 'T', name: 'js' } } },
      { kind: 'command', command: { id: 2, method: 'subscribe', params: { channel: 'c', flag: 3, recover: true, offset: 5, epoch: 'E' } } },
      { kind: 'command', command: { id: 0, method: 'send', params: { data: 'x' } } },
      { kind: 'pong' },
      { kind: 'command', command: { id: 3, method: 'history', params: { channel: 'c', since: { offset: 1 } } } }
    ]
  })
})
