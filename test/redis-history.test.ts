import { once } from 'node:events'
import t, { type Test } from 'tap'
import { Cluster, Redis } from 'ioredis'
import { RedisHistory } from '../lib/backplane/redis-history.js'
import type { ClientInfo, HistoryLimits } from '../lib/channels/types.js'
import { inspector, randomPrefix, startCluster, startRedis } from './redis-helpers.js'

const LIMITS: HistoryLimits = { size: 100, ttl: 60_000, metaTtl: 120_000 }

function client (t: Test, port: number): Redis {
  const redis = new Redis({ port, host: '127.0.0.1' })
  t.teardown(() => { redis.disconnect() })
  return redis
}

/** The bytes the script must publish. */
function expected (header: string, offset: number, epoch: string, data: string): Buffer {
  return Buffer.from(`${header},"o":${offset},"e":"${epoch}"}\n${data}`)
}

/** Splits a message at its first newline: the header's JSON and the data's text. */
function parse (message: Buffer): { header: Record<string, unknown>, data: string } {
  const text = message.toString('utf8')
  const newline = text.indexOf('\n')
  return { header: JSON.parse(text.slice(0, newline)), data: text.slice(newline + 1) }
}

t.test('publish sends the header with offset and epoch, a newline and the data, byte for byte', async (t) => {
  const redis = await startRedis(t)
  const prefix = randomPrefix()
  const history = new RedisHistory(client(t, redis.port), prefix)
  const subscriber = client(t, redis.port)
  const pubsubChannel = `${prefix}channel:{c:chat:1}`
  await subscriber.subscribe(pubsubChannel)

  const header = '{"v":2,"id":"x1","ch":"chat:1"'
  // A newline inside the data too: only the first one ends the header.
  const data = '{"text":"héllo \\"you\\" 🎉","list":[1,\n2]}'
  const received = once(subscriber, 'messageBuffer') as Promise<[Buffer, Buffer]>
  const result = await history.publish({ channel: 'chat:1', pubsubChannel, sharded: false, header, data, limits: LIMITS })
  const [channel, message] = await received
  t.equal(channel.toString(), pubsubChannel)
  t.equal(result.receivers, 1, 'PUBLISH counted the subscriber')
  t.match(result.position, { offset: 1, epoch: /^[\w-]+$/ })
  t.same(message, expected(header, 1, result.position.epoch, data), 'exactly the bytes promised')
  t.same(parse(message), { header: { v: 2, id: 'x1', ch: 'chat:1', o: 1, e: result.position.epoch }, data })

  const second = once(subscriber, 'messageBuffer') as Promise<[Buffer, Buffer]>
  const next = await history.publish({ channel: 'chat:1', pubsubChannel, sharded: false, header, data: '2', limits: LIMITS })
  t.same(next.position, { offset: 2, epoch: result.position.epoch })
  t.same((await second)[1], expected(header, 2, result.position.epoch, '2'))

  t.equal((await history.publish({ channel: 'chat:2', pubsubChannel: `${prefix}channel:{c:chat:2}`, sharded: false, header, data, limits: LIMITS })).receivers, 0,
    'nobody listens there')
})

t.test('on a Redis Cluster', async (t) => {
  const ports = await startCluster(t)
  const clusterClient = (t: Test): Cluster => {
    const cluster = new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })))
    t.teardown(() => { cluster.disconnect() })
    return cluster
  }

  t.test('SPUBLISH from the script reaches a sharded subscriber, whatever node owns the channel', async (t) => {
    const prefix = randomPrefix()
    const cluster = clusterClient(t)
    const subscriber = cluster.duplicate(undefined, { shardedSubscribers: true })
    t.teardown(() => { subscriber.disconnect() })
    const history = new RedisHistory(cluster, prefix)

    // Enough channels that they land on every node.
    const channels = Array.from({ length: 12 }, (_, i) => `room:${i}`)
    const inspect = inspector(t, ports[0] as number)
    const ranges = await inspect.cluster('SLOTS')
    const owners = new Set<number | undefined>()
    for (const channel of channels) {
      const slot = await inspect.cluster('KEYSLOT', `${prefix}channel:{c:${channel}}`)
      owners.add(ranges.find(([first, last]) => slot >= first && slot <= last)?.[2]?.[1])
    }
    t.equal(owners.size, 3, 'the channels spread over the three nodes')
    for (const channel of channels) await subscriber.ssubscribe(`${prefix}channel:{c:${channel}}`)

    for (const channel of channels) {
      const pubsubChannel = `${prefix}channel:{c:${channel}}`
      const header = `{"ch":${JSON.stringify(channel)}`
      const received = new Promise<Buffer>((resolve) => {
        const listener = (from: Buffer, message: Buffer): void => {
          if (from.toString() !== pubsubChannel) return
          subscriber.off('smessageBuffer', listener)
          resolve(message)
        }
        subscriber.on('smessageBuffer', listener)
      })
      const result = await history.publish({ channel, pubsubChannel, sharded: true, header, data: '"hi"', limits: LIMITS })
      t.equal(result.receivers, 1, `${channel}: SPUBLISH counted the subscriber`)
      t.same(await received, expected(header, 1, result.position.epoch, '"hi"'), `${channel}: exact bytes`)
      const page = await history.read(channel, { limit: -1 }, LIMITS)
      t.same(page, { position: result.position, publications: [{ offset: 1, data: '"hi"' }] }, `${channel}: kept`)
    }
  })

  t.test('a sharded publish to a channel outside the keys\' slot is refused before anything is written', async (t) => {
    const prefix = randomPrefix()
    const history = new RedisHistory(clusterClient(t), prefix)
    for (const pubsubChannel of [`${prefix}channel:room`, `${prefix}channel:{room:2}`, `${prefix}channel:{}{room}`]) {
      await t.rejects(history.publish({ channel: 'room', pubsubChannel, sharded: true, header: '{', data: '1', limits: LIMITS }),
        { name: 'TypeError', message: /must have the hash tag \{c:room\}/ }, pubsubChannel)
    }
    t.equal((await history.position('room', LIMITS)).offset, 0, 'nothing appended')
    // Any name with the channel's tag is in its slot.
    const result = await history.publish({ channel: 'room', pubsubChannel: 'other:{c:room}:x', sharded: true, header: '{', data: '1', limits: LIMITS })
    t.equal(result.position.offset, 1)
  })
})

t.test('concurrent publishes from two clients get distinct, consecutive offsets, published in offset order', async (t) => {
  const redis = await startRedis(t)
  const prefix = randomPrefix()
  const a = new RedisHistory(client(t, redis.port), prefix)
  const b = new RedisHistory(client(t, redis.port), prefix)
  const subscriber = client(t, redis.port)
  const pubsubChannel = `${prefix}channel:{c:busy}`
  await subscriber.subscribe(pubsubChannel)
  const offsets: number[] = []
  const all = new Promise<void>((resolve) => {
    subscriber.on('messageBuffer', (_channel: Buffer, message: Buffer) => {
      offsets.push(parse(message).header.o as number)
      if (offsets.length === 200) resolve()
    })
  })

  const results = await Promise.all(Array.from({ length: 200 }, async (_, i) =>
    await (i % 2 === 0 ? a : b).publish({ channel: 'busy', pubsubChannel, sharded: false, header: '{"n":' + i, data: String(i), limits: LIMITS })))
  await all
  const sequence = Array.from({ length: 200 }, (_, i) => i + 1)
  t.same(results.map((r) => r.position.offset).sort((x, y) => x - y), sequence, 'every offset once')
  t.equal(new Set(results.map((r) => r.position.epoch)).size, 1, 'one epoch')
  t.same(offsets, sequence, 'subscribers see offsets in order')
  const page = await a.read('busy', { limit: -1 }, LIMITS)
  t.same(page.publications.map((p) => p.offset), Array.from({ length: 100 }, (_, i) => i + 101), 'the last `size` kept, in order')
})

t.test('the stream and its meta get their TTLs; a read-created meta gets metaTtl and no stream', async (t) => {
  const redis = await startRedis(t)
  const prefix = randomPrefix()
  const inspect = inspector(t, redis.port)
  const history = new RedisHistory(client(t, redis.port), prefix)
  await history.publish({ channel: 'c', pubsubChannel: `${prefix}channel:{c:c}`, sharded: false, header: '{', data: '1', limits: LIMITS })
  const streamTtl = await inspect.pttl(`${prefix}history:{c:c}`)
  const metaTtl = await inspect.pttl(`${prefix}history-meta:{c:c}`)
  t.ok(streamTtl > 59_000 && streamTtl <= 60_000, `stream PTTL ${streamTtl}`)
  t.ok(metaTtl > 119_000 && metaTtl <= 120_000, `meta PTTL ${metaTtl}`)
  t.same(await inspect.xlen(`${prefix}history:{c:c}`), 1)
  t.same(await inspect.hgetall(`${prefix}history-meta:{c:c}`), { e: (await history.position('c', LIMITS)).epoch, s: '1' })

  await history.read('fresh', { limit: -1 }, LIMITS)
  const freshTtl = await inspect.pttl(`${prefix}history-meta:{c:fresh}`)
  t.ok(freshTtl > 119_000 && freshTtl <= 120_000, `read-created meta PTTL ${freshTtl}`)
  t.equal(await inspect.exists(`${prefix}history:{c:fresh}`), 0, 'no stream without a publication')

  await history.remove('c')
  t.equal(await inspect.exists(`${prefix}history:{c:c}`), 0, 'remove deletes the stream')
  t.equal(await inspect.exists(`${prefix}history-meta:{c:c}`), 1, 'and keeps the meta')
})

t.test('info round-trips; a publication without info has none', async (t) => {
  const redis = await startRedis(t)
  const prefix = randomPrefix()
  const history = new RedisHistory(client(t, redis.port), prefix)
  const info = { user: 'alice', client: 'c-1', conn_info: { name: 'Alice', tags: ['a', 1, null] }, chan_info: 'vip' }
  const publish = async (data: string, withInfo?: ClientInfo): Promise<void> => {
    await history.publish({ channel: 'c', pubsubChannel: `${prefix}channel:{c:c}`, sharded: false, header: '{', data, info: withInfo, limits: LIMITS })
  }
  await publish('"with"', info)
  await publish('"without"')
  await publish('"empty user"', { user: '', client: 'c-2' })
  const page = await history.read('c', { limit: -1 }, LIMITS)
  t.same(page.publications, [
    { offset: 1, data: '"with"', info },
    { offset: 2, data: '"without"' },
    { offset: 3, data: '"empty user"', info: { user: '', client: 'c-2' } }
  ])
  t.notOk('info' in page.publications[1], 'no info key at all')
})

t.test('offsets up to 2^53 stay exact, in the message and in reads', async (t) => {
  const redis = await startRedis(t)
  const prefix = randomPrefix()
  const inspect = inspector(t, redis.port)
  const history = new RedisHistory(client(t, redis.port), prefix)
  const epoch = (await history.position('big', LIMITS)).epoch
  await inspect.hset(`${prefix}history-meta:{c:big}`, 's', String(2 ** 53 - 3))
  const subscriber = client(t, redis.port)
  await subscriber.subscribe(`${prefix}channel:{c:big}`)
  const received = once(subscriber, 'messageBuffer') as Promise<[Buffer, Buffer]>
  const results = []
  for (const data of ['1', '2', '3']) {
    results.push(await history.publish({ channel: 'big', pubsubChannel: `${prefix}channel:{c:big}`, sharded: false, header: '{', data, limits: LIMITS }))
  }
  t.same(results.map((r) => r.position), [2 ** 53 - 2, 2 ** 53 - 1, 2 ** 53].map((offset) => ({ offset, epoch })))
  t.same((await received)[1], expected('{', 2 ** 53 - 2, epoch, '1'), 'the digits, not 9.007199254741e+15')
  const page = await history.read('big', { limit: -1, since: { offset: 2 ** 53 - 2, epoch } }, LIMITS)
  t.same(page, { position: { offset: 2 ** 53, epoch }, publications: [{ offset: 2 ** 53 - 1, data: '2' }, { offset: 2 ** 53, data: '3' }] })
  t.same((await history.read('big', { limit: -1, since: { offset: 2 ** 53, epoch } }, LIMITS)).publications, [], 'nothing after 2^53')
  const reversed = await history.read('big', { limit: 1, since: { offset: 2 ** 53, epoch }, reverse: true }, LIMITS)
  t.same(reversed.publications, [{ offset: 2 ** 53 - 1, data: '2' }])
})

t.test('a stream whose meta is gone is a lost epoch: publish and read start a new one and drop the leftovers', async (t) => {
  const redis = await startRedis(t)
  const prefix = randomPrefix()
  const inspect = inspector(t, redis.port)
  const history = new RedisHistory(client(t, redis.port), prefix)
  const publish = async (data: string): Promise<void> => {
    await history.publish({ channel: 'c', pubsubChannel: `${prefix}channel:{c:c}`, sharded: false, header: '{', data, limits: LIMITS })
  }
  for (const data of ['1', '2', '3']) await publish(data)
  const old = await history.position('c', LIMITS)

  await inspect.del(`${prefix}history-meta:{c:c}`)
  await publish('new')
  const page = await history.read('c', { limit: -1 }, LIMITS)
  t.not(page.position.epoch, old.epoch, 'a new epoch')
  t.same(page.publications, [{ offset: 1, data: 'new' }], 'offsets restart; the old publications are gone')

  await inspect.del(`${prefix}history-meta:{c:c}`)
  const read = await history.read('c', { limit: -1 }, LIMITS)
  t.same(read.publications, [], 'a read that creates the epoch drops leftovers too')
  t.equal(read.position.offset, 0)
  t.equal(await inspect.exists(`${prefix}history:{c:c}`), 0)
})

t.test('scripts flushed from Redis are loaded again', async (t) => {
  const redis = await startRedis(t)
  const prefix = randomPrefix()
  const inspect = inspector(t, redis.port)
  const history = new RedisHistory(client(t, redis.port), prefix)
  await history.publish({ channel: 'c', pubsubChannel: `${prefix}channel:{c:c}`, sharded: false, header: '{', data: '1', limits: LIMITS })
  await inspect.script('FLUSH')
  await history.publish({ channel: 'c', pubsubChannel: `${prefix}channel:{c:c}`, sharded: false, header: '{', data: '2', limits: LIMITS })
  t.same((await history.read('c', { limit: -1 }, LIMITS)).publications.map((p) => p.data), ['1', '2'])
})
