import { once } from 'node:events'
import t, { type Test } from 'tap'
import fc from 'fast-check'
import { BinaryWriter } from '@bufbuild/protobuf/wire'
import { WebSocket } from 'ws'
import { Centrifuge as JsonSdk } from 'centrifuge'
import { Centrifuge as ProtobufSdk } from 'centrifuge/build/protobuf'
import * as pb from '../lib/protocols/centrifuge/proto/client.js'
import { token, until } from './helpers.js'
import { buildCentrifuge, centClient, protobufAsJson, record, type Recorder } from './centrifuge-helpers.js'
import { decodeEnvelope, encodeEnvelope } from '../lib/backplane/codec.js'
import { randomPrefix, startRedis } from './redis-helpers.js'

// The Protobuf codec on the wire: what the SDK-driven tests (test/protobuf/)
// cannot send: batches, malformed binary frames, unknown fields, both codecs
// on one channel. The Protobuf build of the SDK runs every SDK scenario in
// test/protobuf/.

/** Commands as one binary frame: each with its length in front. */
function frame (...commands: Array<Partial<pb.Command>>): Buffer {
  const writer = new BinaryWriter()
  for (const command of commands) {
    writer.fork()
    pb.Command.encode(command as pb.Command, writer)
    writer.join()
  }
  return Buffer.from(writer.finish())
}

/** One message's bytes with its length in front. */
function delimit (body: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(new BinaryWriter().uint32(body.length).finish()), Buffer.from(body)])
}

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value))

interface RawProtobuf {
  readonly ws: WebSocket
  /** The next reply or push, as its JSON form (zero values left out). */
  next: () => Promise<any>
  readonly closed: Promise<[number, string]>
}

/** A raw client of the Protobuf codec: binary frames out, every Reply read back. */
async function rawProtobuf (t: Test, url: string, protocols: string[] = ['centrifuge-protobuf']): Promise<RawProtobuf> {
  const ws = new WebSocket(url, protocols)
  t.teardown(() => { ws.terminate() })
  const replies: any[] = []
  const waiting: Array<(reply: any) => void> = []
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) throw new Error(`a text frame on the Protobuf codec: ${data.toString()}`)
    for (const line of protobufAsJson(data, pb.Reply).split('\n')) {
      const reply = JSON.parse(line)
      const resolve = waiting.shift()
      if (resolve !== undefined) resolve(reply)
      else replies.push(reply)
    }
  })
  const closed = once(ws, 'close').then(([code, reason]) => [code as number, String(reason)] as [number, string])
  await once(ws, 'open')
  return {
    ws,
    closed,
    next: async () => replies.length > 0 ? replies.shift() : await new Promise((resolve) => waiting.push(resolve))
  }
}

async function connected (t: Test, url: string): Promise<RawProtobuf> {
  const raw = await rawProtobuf(t, url)
  raw.ws.send(frame({ id: 1, connect: { token: token() } }))
  const reply = await raw.next()
  if (reply.connect === undefined) throw new Error(`connect failed: ${JSON.stringify(reply)}`)
  return raw
}

t.test('the subprotocol picks the codec: the Protobuf SDK gets binary replies; ?format=protobuf does without a subprotocol', async (t) => {
  const built = await buildCentrifuge(t)
  const raw = await rawProtobuf(t, built.sdkUrl)
  t.equal(raw.ws.protocol, 'centrifuge-protobuf')
  raw.ws.send(frame({ id: 1, connect: { token: token({ sub: 'alice' }) } }))
  const reply = await raw.next()
  t.match(reply, { id: 1, connect: { client: /\./, ping: 1, pong: true } })
  t.equal(built.app.fanout.connectionsOf('alice').size, 1)

  const among = await rawProtobuf(t, built.sdkUrl, ['x-custom', 'centrifuge-protobuf'])
  t.equal(among.ws.protocol, 'centrifuge-protobuf', 'chosen among others the client offered first')
  among.ws.send(frame({ id: 1, connect: { token: token({ sub: 'dave' }) } }))
  t.match(await among.next(), { id: 1, connect: { client: /\./ } })

  const query = await rawProtobuf(t, built.sdkUrl + '?format=protobuf', [])
  t.equal(query.ws.protocol, '')
  query.ws.send(frame({ id: 1, connect: { token: token({ sub: 'bob' }) } }))
  t.match(await query.next(), { id: 1, connect: { client: /\./ } })
  const legacy = await rawProtobuf(t, built.sdkUrl + '?cf_protocol=protobuf', [])
  legacy.ws.send(frame({ id: 1, connect: { token: token({ sub: 'carol' }) } }))
  t.match(await legacy.next(), { id: 1, connect: { client: /\./ } })
})

t.test('a batch in one frame is answered in order: results, 104, 107; pings are empty Replies and empty Commands their pongs', async (t) => {
  const built = await buildCentrifuge(t)
  const raw = await rawProtobuf(t, built.sdkUrl)
  raw.ws.send(frame(
    { id: 1, connect: { token: token() } },
    { id: 2, subscribe: { channel: 'chat:a' } },
    { id: 3 },
    { id: 4, presence: { channel: 'chat:a' }, history: { channel: 'chat:a' } },
    { id: 5, subscribe: { channel: '' } },
    { id: 6, publish: { channel: 'chat:a', data: json({ text: 'hi' }) } },
    { id: 7, history: { channel: 'chat:a', limit: 10 } },
    { id: 8, rpc: { method: 'x' } }
  ))
  t.match(await raw.next(), { id: 1, connect: {} })
  t.match(await raw.next(), { id: 2, subscribe: { recoverable: true, positioned: true, epoch: /./ } })
  t.same(await raw.next(), { id: 3, error: { code: 104, message: 'method not found' } })
  t.same(await raw.next(), { id: 4, error: { code: 107, message: 'bad request' } }, 'two methods in one command')
  t.same(await raw.next(), { id: 5, error: { code: 107, message: 'bad request' } }, 'an empty channel')
  // The publication reaches this subscriber too; its reply and its push may come in either order.
  const two = [await raw.next(), await raw.next()]
  t.same(two.find((reply) => reply.id === 6), { id: 6, publish: {} })
  t.match(two.find((reply) => reply.push !== undefined), { push: { channel: 'chat:a', pub: { data: { text: 'hi' }, offset: 1, info: { user: 'alice' } } } })
  t.match(await raw.next(), { id: 7, history: { publications: [{ data: { text: 'hi' }, offset: 1 }], offset: 1 } })
  t.same(await raw.next(), { id: 8, error: { code: 104, message: 'method not found' } }, 'no onRpc')
  t.same(await raw.next(), {}, 'a ping: an empty Reply')
  raw.ws.send(frame({}))
  t.same(await raw.next(), {}, 'answered with an empty Command, the next ping comes and the connection lives')
  t.equal(built.app.fanout.size, 1)
})

t.test('unknown fields are skipped, as proto3 asks: a newer client still connects and subscribes', async (t) => {
  const built = await buildCentrifuge(t)
  const raw = await rawProtobuf(t, built.sdkUrl)
  // A Command with a field this server does not know (99, a string), then a
  // SubscribeRequest with one (40, a varint).
  const connect = pb.Command.encode({ id: 1, connect: { token: token() } }).uint32(99 << 3 | 2).string('from the future').finish()
  raw.ws.send(delimit(connect))
  t.match(await raw.next(), { id: 1, connect: { client: /./ } })
  const subscribe = pb.SubscribeRequest.encode({ channel: 'news' }).uint32(40 << 3 | 0).uint64(7).finish()
  raw.ws.send(delimit(new BinaryWriter().uint32(1 << 3 | 0).uint32(2).uint32(5 << 3 | 2).bytes(subscribe).finish()))
  t.same(await raw.next(), { id: 2, subscribe: {} })
})

/** A subscribe whose offset (a uint64) is past what a double holds exactly: written by hand, as the codec refuses to. */
const OFFSET_PAST_2_53 = delimit(new BinaryWriter().uint32(1 << 3 | 0).uint32(2).uint32(5 << 3 | 2).bytes(
  new BinaryWriter().uint32(1 << 3 | 2).string('chat:a').uint32(7 << 3 | 0).uint64(2n ** 60n).finish()
).finish())

// Each frame breaks the protocol in its own way; each closes with 3501 and
// nothing else happens (the server logs the reason at debug).
const MALFORMED: Array<[string, Buffer | string]> = [
  ['a truncated length varint', Buffer.from([0x80])],
  ['a varint longer than ten bytes', Buffer.alloc(11, 0xff)],
  ['a length past the end of the frame', Buffer.from([0x05, 0x08, 0x02])],
  ['a field past the end of its command', Buffer.from([0x03, 0x22, 0x02, 0x0a, 0x00])],
  ['a truncated field inside its command', Buffer.from([0x02, 0x08, 0x80])],
  ['an invalid wire type', Buffer.from([0x02, 0x0f, 0x01])],
  ['an offset past 2^53', OFFSET_PAST_2_53],
  ['a frame of garbage', Buffer.from('ffd8ffe000104a46494600010101004800480000fffe0013', 'hex')],
  ['an empty frame', Buffer.alloc(0)],
  ['a text frame', '{"id":2,"ping":{}}'],
  ['a command without an id', frame({ ping: {} })],
  // Within the command, wrong inside: what the generated decoders would not notice.
  ['a field past the end of its nested message', delimit(Buffer.from([0x08, 0x02, 0x2a, 0x02, 0x0a, 0x06, ...Buffer.from('chat:a')]))],
  ['a nested length past the frame, ended by a zero byte', delimit(Buffer.from([0x08, 0x02, 0x2a, 100, 0x0a, 0x06, ...Buffer.from('chat:a'), 0x00]))],
  ['a field number 0 inside a nested message', delimit(Buffer.from([0x08, 0x02, 0x2a, 0x0b, 0x0a, 0x06, ...Buffer.from('chat:a'), 0x00, 0x08, 0x09]))],
  ['a group', delimit(Buffer.from([0x08, 0x02, 0x53, 0x54]))],
  ['a string that is not UTF-8', delimit(Buffer.from([0x08, 0x02, 0x2a, 0x08, 0x0a, 0x06, ...Buffer.from('chat:'), 0xff]))]
]

t.test('malformed binary frames close with 3501 (bad request), never anything worse; a bystander is not disturbed', async (t) => {
  const built = await buildCentrifuge(t)
  const bystander = await connected(t, built.sdkUrl)
  for (const [what, bad] of MALFORMED) {
    const raw = await connected(t, built.sdkUrl)
    raw.ws.send(bad, { binary: typeof bad !== 'string' })
    t.same(await raw.closed, [3501, 'bad request'], what)
  }
  bystander.ws.send(frame({ id: 2, ping: {} }))
  let reply = await bystander.next()
  while (reply.id === undefined) reply = await bystander.next() // pings meanwhile
  t.same(reply, { id: 2, ping: {} }, 'the bystander is served')
  const before = await rawProtobuf(t, built.sdkUrl)
  before.ws.send(frame({ id: 1, subscribe: { channel: 'chat:a' } }))
  t.same(await before.closed, [3501, 'bad request'], 'a command before connect')
})

t.test('random frames: each is answered or closes with 3501; the server neither crashes nor stops serving', async (t) => {
  const built = await buildCentrifuge(t, { heartbeatInterval: 0 })
  const bystander = await connected(t, built.sdkUrl)
  const closes = new Map<number, number>()
  await fc.assert(fc.asyncProperty(
    fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 64 }),
      // A valid command with some bytes changed: lengths and tags go wrong in every way.
      fc.tuple(fc.nat(1000), fc.array(fc.tuple(fc.nat(40), fc.nat(255)), { minLength: 1, maxLength: 3 })).map(([id, edits]) => {
        const bytes = frame({ id: id + 2, subscribe: { channel: 'chat:x', recover: true, offset: 3, epoch: 'e' } })
        for (const [at, value] of edits) bytes[at % bytes.length] = value
        return new Uint8Array(bytes)
      })
    ),
    async (bytes) => {
      const raw = await connected(t, built.sdkUrl)
      raw.ws.send(bytes, { binary: true })
      // The answer to a command that parsed, or the close; then one more ping must be answered in turn.
      raw.ws.send(frame({ id: 99_999, ping: {} }))
      const outcome = await Promise.race([raw.closed, (async () => {
        for (;;) {
          const reply = await raw.next()
          if (reply.id === 99_999) return 'served'
        }
      })()])
      if (outcome !== 'served') {
        if (outcome[0] !== 3501) throw new Error(`closed with ${outcome[0]} ${outcome[1]}`)
        closes.set(outcome[0], (closes.get(outcome[0]) ?? 0) + 1)
      }
      raw.ws.terminate()
    }
  ), { numRuns: 60 })
  t.ok((closes.get(3501) ?? 0) > 0, 'some frames broke the protocol')
  bystander.ws.send(frame({ id: 2, ping: {} }))
  t.same(await bystander.next(), { id: 2, ping: {} }, 'the bystander is served')
})

t.test('JSON and Protobuf subscribers on one channel: both get every publication, in order, with the same data, and each publication is encoded once per codec', async (t) => {
  // A namespace without presence: no join or leave notices are encoded meanwhile.
  const built = await buildCentrifuge(t, { heartbeatInterval: 0, channels: { namespaces: { mixed: { historySize: 10, historyTtl: 60_000, recovery: true, publish: true } } } })
  const clients: Array<{ codec: string, events: Recorder, client: JsonSdk }> = []
  for (const [codec, Sdk] of [['json', JsonSdk], ['protobuf', ProtobufSdk]] as const) {
    for (let i = 0; i < 3; i++) {
      const client = new Sdk(built.sdkUrl, { websocket: WebSocket, token: token({ sub: `${codec}-${i}` }), minReconnectDelay: 50, maxReconnectDelay: 300 })
      t.teardown(() => { client.disconnect() })
      const sub = client.newSubscription('mixed:a')
      const events = record(sub, ['subscribed', 'publication'])
      sub.subscribe()
      client.connect()
      await events.next('subscribed')
      clients.push({ codec, events, client: client as unknown as JsonSdk })
    }
  }
  // Counts the Protobuf codec's encodings while the decorator publishes.
  const encode = pb.Reply.encode
  let encodings = 0
  pb.Reply.encode = (message, writer) => { encodings++; return encode(message, writer) }
  t.teardown(() => { pb.Reply.encode = encode })
  const payloads = [{ n: 1, text: 'ünïcödé ✓' }, [1, 2, 3], 'text', 42, null]
  for (const payload of payloads) await built.app.fanout.publish('mixed:a', payload)
  for (const { codec, events } of clients) {
    for (const [i, payload] of payloads.entries()) {
      const publication = await events.next('publication')
      const data = codec === 'protobuf' ? JSON.parse(Buffer.from(publication.data as Uint8Array).toString()) : publication.data
      t.same(data, payload, `${codec}: publication ${i + 1}`)
      t.equal(publication.offset, i + 1)
    }
  }
  t.equal(encodings, payloads.length, 'one Protobuf encoding per publication, for three Protobuf subscribers')
  pb.Reply.encode = encode

  // A Protobuf client publishes JSON bytes: JSON subscribers get the value.
  const [jsonClient] = clients
  const protobufClient = clients[3]
  const sub = protobufClient?.client.getSubscription('mixed:a')
  await sub?.publish(json({ from: 'protobuf' }))
  t.same((await jsonClient?.events.next('publication')).data, { from: 'protobuf' })
  await until(() => built.app.fanout.size === 6, 'every client to stay connected')
})

t.test('bytes through the hooks: onRpc and onSend get JSON values when the bytes are JSON, a Buffer otherwise; a Uint8Array result goes out as it is', async (t) => {
  const received: unknown[] = []
  const built = await buildCentrifuge(t, {
    centrifuge: {
      connectTimeout: 500,
      onRpc: (_connection, method, data) => {
        received.push(data)
        return method === 'raw' ? new Uint8Array([0xde, 0xad, 0xbe, 0xef]) : { echo: data }
      },
      onSend: (_connection, data) => { received.push(data) }
    }
  })
  const raw = await connected(t, built.sdkUrl)
  raw.ws.send(frame(
    { id: 2, rpc: { method: 'echo', data: json({ a: 1 }) } },
    { id: 3, rpc: { method: 'raw', data: Buffer.from([0x00, 0xff]) } },
    { send: { data: json([1, 2]) } },
    { id: 4, rpc: { method: 'echo' } }
  ))
  t.same(await raw.next(), { id: 2, rpc: { data: { echo: { a: 1 } } } })
  t.same(await raw.next(), { id: 3, rpc: { data: { $bytes: 'deadbeef' } } }, 'the result bytes, untouched')
  t.same(received.slice(0, 3), [{ a: 1 }, Buffer.from([0x00, 0xff]), [1, 2]])
  t.same(await raw.next(), { id: 4, rpc: { data: {} } }, 'no data: undefined for the hook, whose { echo: undefined } is {}')

  const jsonClient = new JsonSdk(built.sdkUrl, { websocket: WebSocket, token: token({ sub: 'bob' }) })
  t.teardown(() => { jsonClient.disconnect() })
  jsonClient.connect()
  await t.rejects(jsonClient.rpc('raw', {}), { code: 100 }, 'bytes that are not JSON cannot reach a JSON client')
  t.same((await jsonClient.rpc('echo', { b: 2 })).data, { echo: { b: 2 } })
})

/** Three JSON and three Protobuf SDK clients subscribed to `channel`, each with its publications recorded. */
async function mixedSubscribers (t: Test, url: string, channel: string): Promise<{ json: Recorder[], protobuf: Recorder[], protobufClients: ProtobufSdk[] }> {
  const json: Recorder[] = []
  const protobuf: Recorder[] = []
  const protobufClients: ProtobufSdk[] = []
  for (const [codec, Sdk] of [['json', JsonSdk], ['protobuf', ProtobufSdk]] as const) {
    for (let i = 0; i < 3; i++) {
      const client = new Sdk(url, { websocket: WebSocket, token: token({ sub: `${codec}-${i}` }), minReconnectDelay: 50, maxReconnectDelay: 300 })
      t.teardown(() => { client.disconnect() })
      const sub = client.newSubscription(channel)
      const events = record(sub, ['subscribed', 'publication'])
      sub.subscribe()
      client.connect()
      await events.next('subscribed')
      if (codec === 'json') json.push(events)
      else {
        protobuf.push(events)
        protobufClients.push(client as ProtobufSdk)
      }
    }
  }
  return { json, protobuf, protobufClients }
}

const BINARY = Buffer.from([0x00, 0xff, 0x0a, 0x80, 0x7b, 0x22])

const dropped = async (app: { inject: (url: string) => Promise<{ body: string }> }): Promise<number> => {
  const match = /fanout_messages_dropped_total\{reason="unencodable"\} (\d+)/.exec((await app.inject('/metrics')).body)
  return Number(match?.[1] ?? 0)
}

t.test('binary data: bytes that are not JSON reach Protobuf subscribers untouched, from the decorator and from a Protobuf client; JSON subscribers never see them, counted as unencodable', async (t) => {
  const built = await buildCentrifuge(t, { heartbeatInterval: 0, channels: { namespaces: { bin: { historySize: 10, historyTtl: 60_000, recovery: true, publish: true } } } })
  const { json, protobuf, protobufClients } = await mixedSubscribers(t, built.sdkUrl, 'bin:a')

  const published = await built.app.fanout.publish('bin:a', BINARY)
  t.equal(published.offset, 1)
  await built.app.fanout.publish('bin:a', { after: 'binary' })
  // JSON text given as bytes goes to everyone, its bytes as they were (line feeds as spaces).
  await built.app.fanout.publish('bin:a', Buffer.from('{"as":\n"bytes"}'))
  for (const events of protobuf) {
    t.same(Buffer.from((await events.next('publication')).data as Uint8Array), BINARY, 'the bytes, untouched')
    t.same(Buffer.from((await events.next('publication')).data as Uint8Array).toString(), '{"after":"binary"}')
    t.same(Buffer.from((await events.next('publication')).data as Uint8Array).toString(), '{"as": "bytes"}')
  }
  for (const events of json) {
    const first = await events.next('publication')
    t.same([first.data, first.offset], [{ after: 'binary' }, 2], 'the binary one was never written to a JSON client')
    t.same((await events.next('publication')).data, { as: 'bytes' })
  }
  t.equal(await dropped(built.app), 3, 'one unencodable drop per JSON subscriber')

  // A Protobuf client publishes bytes that are not JSON: the same way.
  const sub = protobufClients[0]?.getSubscription('bin:a')
  await sub?.publish(new Uint8Array([0xde, 0xad]))
  for (const events of protobuf) t.same(Buffer.from((await events.next('publication')).data as Uint8Array), Buffer.from([0xde, 0xad]))
  await until(async () => await dropped(built.app) === 6, 'three more unencodable drops')

  // History: the decorator returns the bytes; Protobuf clients get them, JSON clients only the JSON ones.
  const page = await built.app.fanout.history('bin:a', { limit: -1 })
  t.same(page.publications.map((p) => p.data), [BINARY, '{"after":"binary"}', '{"as": "bytes"}', Buffer.from([0xde, 0xad])])
  const fromProtobuf = await sub?.history({ limit: -1 })
  t.same(fromProtobuf?.publications.map((p) => Buffer.from(p.data as Uint8Array)), page.publications.map((p) => Buffer.from(p.data)))
  const jsonClient = new JsonSdk(built.sdkUrl, { websocket: WebSocket, token: token({ sub: 'reader' }) })
  t.teardown(() => { jsonClient.disconnect() })
  jsonClient.connect()
  const jsonSub = jsonClient.newSubscription('bin:a')
  jsonSub.subscribe()
  const fromJson = await jsonSub.history({ limit: -1 })
  t.same(fromJson.publications.map((p) => [p.offset, p.data]), [[2, { after: 'binary' }], [3, { as: 'bytes' }]], 'a JSON client\'s history leaves the bytes out')
  await t.rejects(built.app.fanout.publish('bin:a', new Uint8Array(0)), { code: 'FST_FANOUT_INVALID_MESSAGE' })
})

t.test('binary data over Redis: published on one instance (decorator and server API b64data), kept in the stream, received and recovered untouched on another', async (t) => {
  const redis = await startRedis(t)
  const options = {
    redis: redis.url,
    channelPrefix: randomPrefix(),
    heartbeatInterval: 0,
    serverApi: { key: 'binary-test-api-key' },
    channels: { namespaces: { bin: { historySize: 10, historyTtl: 60_000, recovery: true } } }
  }
  const a = await buildCentrifuge(t, options)
  const b = await buildCentrifuge(t, options)
  const { json, protobuf, protobufClients } = await mixedSubscribers(t, b.sdkUrl, 'bin:r')
  await a.app.fanout.publish('bin:r', BINARY)
  t.match(await centClient(`${a.url}/api`, 'binary-test-api-key').publish({ channel: 'bin:r', b64data: Buffer.from([0x01, 0x02, 0xfe]).toString('base64') }), { offset: 2, epoch: /./ })
  await a.app.fanout.publish('bin:r', 'json')
  for (const events of protobuf) {
    t.same(Buffer.from((await events.next('publication')).data as Uint8Array), BINARY)
    t.same(Buffer.from((await events.next('publication')).data as Uint8Array), Buffer.from([0x01, 0x02, 0xfe]))
    t.same(Buffer.from((await events.next('publication')).data as Uint8Array).toString(), '"json"')
  }
  for (const events of json) t.same([(await events.next('publication')).offset], [3], 'JSON clients get only the JSON one')
  const page = await b.app.fanout.history('bin:r', { limit: -1 })
  t.same(page.publications.map((p) => p.data), [BINARY, Buffer.from([0x01, 0x02, 0xfe]), '"json"'], 'kept in the stream as bytes')
  const api = await fetch(`${a.url}/api/history`, { method: 'POST', headers: { 'x-api-key': 'binary-test-api-key' }, body: JSON.stringify({ channel: 'bin:r', limit: 10 }) })
  t.match(await api.json(), { result: { publications: [{ b64data: BINARY.toString('base64'), offset: 1 }, { b64data: 'AQL+', offset: 2 }, { data: 'json', offset: 3 }] } }, 'the server API gives bytes as b64data')

  // A Protobuf client away while bytes are published recovers them from Redis.
  const [client] = protobufClients
  const events = protobuf[0] as Recorder
  client?.disconnect()
  await a.app.fanout.publish('bin:r', Buffer.from([0x09]))
  client?.connect()
  const resubscribed = await events.next('subscribed')
  t.equal(resubscribed.recovered, true)
  t.same(Buffer.from((await events.next('publication')).data as Uint8Array), Buffer.from([0x09]), 'recovered untouched')
})

t.test('the Redis codec carries bytes in base64 and refuses what is not', async (t) => {
  const envelope = { id: 'x', data: BINARY, binary: true, channel: 'c' }
  const encoded = encodeEnvelope(envelope)
  t.equal(encoded.indexOf(0x0a), encoded.lastIndexOf(0x0a), 'one line feed: the header\'s')
  t.match(decodeEnvelope(encoded), { id: 'x', data: BINARY, binary: true, channel: 'c' })
  t.match(JSON.parse(encoded.subarray(0, encoded.indexOf(0x0a)).toString()), { v: 3, b: 1 }, 'version 3: instances from before binary publications drop it')
  t.equal(decodeEnvelope(Buffer.from('{"v":3,"id":"x","ch":"c","b":1}\n!!!!')), null, 'not base64')
  t.equal(decodeEnvelope(Buffer.from('{"v":3,"id":"x","ch":"c","b":1}\n')), null, 'no data')
  t.equal(decodeEnvelope(Buffer.from('{"v":3,"id":"x","b":1}\nAA==')), null, 'bytes only for channels')
  t.equal(decodeEnvelope(Buffer.from('{"v":3,"id":"x","ch":"c","b":2}\nAA==')), null, 'b is 1')
  t.equal(decodeEnvelope(Buffer.from('{"v":2,"id":"x","ch":"c","b":1}\nAA==')), null, 'b only with version 3')
  t.equal(decodeEnvelope(Buffer.from('{"v":3,"id":"x","ch":"c"}\n1')), null, 'version 3 only with b')
})

t.test('a Protobuf client\'s JSON bytes are published as they came; the application\'s bytes are copied; send is never answered', async (t) => {
  const built = await buildCentrifuge(t, {
    heartbeatInterval: 0,
    centrifuge: { connectTimeout: 500, hookTimeout: 100, onSend: async () => await new Promise(() => {}) },
    channels: { namespaces: { bin: { historySize: 10, historyTtl: 60_000, recovery: true, publish: true } } }
  })
  const publisher = await connected(t, built.sdkUrl)
  publisher.ws.send(frame({ id: 2, subscribe: { channel: 'bin:a' } }))
  t.match(await publisher.next(), { id: 2, subscribe: {} })
  // Values JSON.parse and JSON.stringify would change: an exponent, a 64-bit id, spacing.
  const sent = ['1e2', '{"n":12345678901234567891}', ' [1.50] ']
  publisher.ws.send(frame(...sent.map((text, i) => ({ id: 3 + i, publish: { channel: 'bin:a', data: Buffer.from(text) } }))))
  await until(async () => (await built.app.fanout.history('bin:a', { limit: -1 })).publications.length === sent.length, 'the publications to be kept')
  const page = await built.app.fanout.history('bin:a', { limit: -1 })
  t.same(page.publications.map((p) => String(p.data)), sent, 'kept as published')

  const scratch = Buffer.from([0xde, 0xad, 0xbe, 0xef])
  await built.app.fanout.publish('bin:a', scratch)
  scratch.fill(0) // the application reuses its buffer
  const kept = (await built.app.fanout.history('bin:a', { limit: -1 })).publications.at(-1)?.data as Buffer
  t.same(kept, Buffer.from([0xde, 0xad, 0xbe, 0xef]), 'history holds what was published')
  kept.fill(1) // a history reader writes into what it got
  t.same((await built.app.fanout.history('bin:a', { limit: -1 })).publications.at(-1)?.data, Buffer.from([0xde, 0xad, 0xbe, 0xef]), 'and cannot change what is kept')

  // A send with an id, whose onSend never settles: no answer, not even an error.
  publisher.ws.send(frame({ id: 7, send: { data: json(1) } }, { id: 8, ping: {} }))
  const answered: number[] = []
  for (let reply = await publisher.next(); reply.id !== 8; reply = await publisher.next()) {
    if (reply.id !== undefined) answered.push(reply.id)
  }
  t.same(answered, [3, 4, 5], 'the publishes were answered, the send never')
})
