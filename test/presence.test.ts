import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { Cluster, Redis } from 'ioredis'
import { MemoryPresence } from '../lib/channels/presence.js'
import type { ClientInfo, PresenceStore } from '../lib/channels/types.js'
import { RedisPresence } from '../lib/backplane/redis-presence.js'
import { inspector, randomPrefix, startCluster, startRedis } from './redis-helpers.js'

/** A store under test, and how time passes for it. */
interface Backend {
  store: PresenceStore
  /** Lets `ms` go by: the memory store's clock moves at once, Redis's is waited for. */
  pass: (ms: number) => Promise<void>
}

const LONG = 60_000
// Short enough to wait for in Redis; a step leaves 150 ms of slack either side of a deadline.
const TTL = 400
const STEP = 250

function info (user: string, client: string, extra: Partial<ClientInfo> = {}): ClientInfo {
  return { user, client, ...extra }
}

/** The same expectations, whichever store. */
function conformance (t: Test, backend: (t: Test) => Promise<Backend>): void {
  t.test('add, get and remove', async (t) => {
    const { store } = await backend(t)
    t.strictSame(await store.get('room'), {}, 'an unknown channel is empty')
    await store.add('room', 'c1', info('u1', 'c1'), LONG)
    await store.add('room', 'c2', info('u2', 'c2'), LONG)
    t.strictSame(await store.get('room'), { c1: info('u1', 'c1'), c2: info('u2', 'c2') })
    await store.remove('room', 'c1')
    t.strictSame(await store.get('room'), { c2: info('u2', 'c2') })
    await store.remove('room', 'c1')
    await store.remove('elsewhere', 'c2')
    t.strictSame(await store.get('room'), { c2: info('u2', 'c2') }, 'removing what is absent changes nothing')
    await store.remove('room', 'c2')
    t.strictSame(await store.get('room'), {})
    t.strictSame(await store.stats('room'), { numClients: 0, numUsers: 0 })
  })

  t.test('stats count clients and distinct users', async (t) => {
    const { store } = await backend(t)
    t.strictSame(await store.stats('room'), { numClients: 0, numUsers: 0 })
    await store.add('room', 'c1', info('u1', 'c1'), LONG)
    await store.add('room', 'c2', info('u1', 'c2'), LONG)
    await store.add('room', 'c3', info('u2', 'c3'), LONG)
    t.strictSame(await store.stats('room'), { numClients: 3, numUsers: 2 }, 'two clients of one user are one user')
    await store.remove('room', 'c1')
    t.strictSame(await store.stats('room'), { numClients: 2, numUsers: 2 })
    await store.remove('room', 'c2')
    t.strictSame(await store.stats('room'), { numClients: 1, numUsers: 1 })
    await store.add('room', 'c3', info('u3', 'c3'), LONG)
    t.strictSame(await store.stats('room'), { numClients: 1, numUsers: 1 }, 'a refresh under another user moves the count')
    await store.add('room', 'c4', info('u3', 'c4'), LONG)
    t.strictSame(await store.stats('room'), { numClients: 2, numUsers: 1 })
    t.strictSame(await store.get('room'), { c3: info('u3', 'c3'), c4: info('u3', 'c4') })
  })

  t.test('a refresh replaces the info and counts once', async (t) => {
    const { store } = await backend(t)
    await store.add('room', 'c1', info('u1', 'c1', { chan_info: 'first' }), LONG)
    await store.add('room', 'c1', info('u1', 'c1', { chan_info: 'second' }), LONG)
    t.strictSame(await store.get('room'), { c1: info('u1', 'c1', { chan_info: 'second' }) })
    t.strictSame(await store.stats('room'), { numClients: 1, numUsers: 1 })
  })

  t.test('entries expire after their ttl, a refresh extends it, an expired channel is empty', async (t) => {
    const { store, pass } = await backend(t)
    await store.add('room', 'a', info('u1', 'a'), TTL)
    await store.add('room', 'b', info('u2', 'b'), TTL)
    await store.add('room', 'c', info('u1', 'c'), LONG)
    await store.add('quiet', 'd', info('u3', 'd'), TTL)
    t.strictSame(await store.stats('room'), { numClients: 3, numUsers: 2 })
    await pass(STEP)
    await store.add('room', 'b', info('u2', 'b'), TTL)
    await pass(STEP)
    t.strictSame(await store.get('room'), { b: info('u2', 'b'), c: info('u1', 'c') }, 'a expired; b was refreshed; c lives long')
    t.strictSame(await store.stats('room'), { numClients: 2, numUsers: 2 }, 'u1 still has c')
    t.strictSame(await store.get('quiet'), {}, 'every entry expired')
    t.strictSame(await store.stats('quiet'), { numClients: 0, numUsers: 0 })
    await pass(STEP)
    t.strictSame(await store.get('room'), { c: info('u1', 'c') }, 'the refreshed entry expires in its turn')
    t.strictSame(await store.stats('room'), { numClients: 1, numUsers: 1 })
    await store.add('quiet', 'd', info('u3', 'd'), LONG)
    t.strictSame(await store.stats('quiet'), { numClients: 1, numUsers: 1 }, 'an expired entry added again counts once')
  })

  t.test('info round-trips: JSON values, unusual user and client ids', async (t) => {
    const { store } = await backend(t)
    const entries: Record<string, ClientInfo> = {
      rich: info('ünï "user"\nwith a newline', 'rich', { conn_info: { name: 'Zoë', tags: ['a', 'b'], n: 1.5, deep: { ok: true, none: null } }, chan_info: 'text' }),
      scalars: info('u2', 'scalars', { conn_info: 42, chan_info: [1, 'x', false] }),
      nulls: info('u3', 'nulls', { conn_info: null, chan_info: { } }),
      bare: info('', 'bare'),
      'spaces and {braces}': info('u4', 'spaces and {braces}')
    }
    for (const [clientId, value] of Object.entries(entries)) await store.add('room', clientId, value, LONG)
    t.strictSame(await store.get('room'), entries)
    t.strictSame(await store.stats('room'), { numClients: 5, numUsers: 5 })

    await store.add('proto', '__proto__', info('u1', '__proto__'), LONG)
    const got = await store.get('proto')
    t.equal(Object.getPrototypeOf(got), Object.prototype, 'a plain object')
    t.strictSame(Object.getOwnPropertyDescriptor(got, '__proto__')?.value, info('u1', '__proto__'), '`__proto__` is an own entry')
  })

  t.test('channels are independent', async (t) => {
    const { store } = await backend(t)
    const channels = Array.from({ length: 12 }, (_, i) => `ch-${i}`)
    for (const [i, channel] of channels.entries()) {
      for (let j = 0; j <= i; j++) await store.add(channel, `c${j}`, info(`u${j % 3}`, `c${j}`), LONG)
    }
    for (const [i, channel] of channels.entries()) {
      t.strictSame(await store.stats(channel), { numClients: i + 1, numUsers: Math.min(i + 1, 3) }, channel)
    }
    await store.remove('ch-5', 'c0')
    t.strictSame(Object.keys(await store.get('ch-5')).sort(), ['c1', 'c2', 'c3', 'c4', 'c5'])
    t.strictSame(Object.keys(await store.get('ch-6')).sort(), ['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6'], 'the same client id elsewhere stays')
    t.strictSame(await store.stats('ch-0'), { numClients: 1, numUsers: 1 })
  })

  t.test('a ttl that is not a positive number of milliseconds is refused', async (t) => {
    const { store } = await backend(t)
    for (const ttl of [0, -1, Number.NaN, Infinity]) {
      await t.rejects(store.add('room', 'c1', info('u1', 'c1'), ttl), { code: 'FST_FANOUT_INVALID_ARGUMENT' }, String(ttl))
    }
    t.strictSame(await store.get('room'), {}, 'nothing added')
  })
}

/** Client and store for one test on `port`; the client is closed when the test ends. */
function redisBackend (port: () => number) {
  return async (t: Test): Promise<Backend> => {
    const client = new Redis({ port: port(), host: '127.0.0.1', maxRetriesPerRequest: 1 })
    t.teardown(() => { client.disconnect() })
    return { store: new RedisPresence(client, randomPrefix()), pass: async (ms) => { await sleep(ms) } }
  }
}

// The three stores' tests wait on different things (the cluster mostly on its start): side by side.
t.jobs = 3

t.test('MemoryPresence', async (t) => {
  conformance(t, async () => {
    let now = 1_700_000_000_000
    return { store: new MemoryPresence(() => now), pass: async (ms) => { now += ms } }
  })

  t.test('sweep drops only what is due, and forgets empty channels', async (t) => {
    const start = 1_700_000_000_500
    const store = new MemoryPresence(() => start)
    await store.add('one', 'a', info('u1', 'a'), 1000)
    await store.add('one', 'b', info('u2', 'b'), 3000)
    await store.add('two', 'c', info('u1', 'c'), 1000)
    t.equal(store.size, 2)
    store.sweep(start + 999)
    t.equal(store.size, 2, 'nothing due yet')
    t.strictSame(await store.stats('one'), { numClients: 2, numUsers: 2 })
    store.sweep(start + 1000)
    t.equal(store.size, 1, 'channel two emptied and forgotten')
    t.strictSame(await store.stats('one'), { numClients: 1, numUsers: 1 })
    t.strictSame(await store.get('two'), {})
    store.sweep(start + 10_000)
    t.equal(store.size, 0)
    store.sweep(start)
    t.equal(store.size, 0, 'a sweep back in time finds nothing')
  })

  t.test('an expired entry is never returned, even before a sweep', async (t) => {
    let now = 1_700_000_000_000
    const store = new MemoryPresence(() => now)
    await store.add('room', 'a', info('u1', 'a'), 300)
    now += 299
    t.strictSame(Object.keys(await store.get('room')), ['a'])
    now += 1
    t.strictSame(await store.get('room'), {}, 'due at its deadline')
    t.strictSame(await store.stats('room'), { numClients: 0, numUsers: 0 })
    t.equal(store.size, 0)
  })

  t.test('removing the last entry forgets the channel; a refresh is not swept at its old deadline', async (t) => {
    let now = 1_700_000_000_000
    const store = new MemoryPresence(() => now)
    await store.add('room', 'a', info('u1', 'a'), 500)
    await store.add('room', 'a', info('u1', 'a'), 5000)
    store.sweep(now += 1000)
    t.strictSame(Object.keys(await store.get('room')), ['a'], 'the first deadline no longer counts')
    await store.remove('room', 'a')
    t.equal(store.size, 0)
    store.sweep(now += 10_000)
    t.equal(store.size, 0)
  })

  t.test('uses the real clock by default', async (t) => {
    const store = new MemoryPresence()
    await store.add('room', 'a', info('u1', 'a'), 50)
    t.strictSame(Object.keys(await store.get('room')), ['a'])
    await sleep(60)
    t.strictSame(await store.get('room'), {})
  })
})

t.test('RedisPresence', async (t) => {
  const redis = await startRedis(t)
  conformance(t, redisBackend(() => redis.port))

  t.test('keys: one hash tag per channel, with a deadline', async (t) => {
    const prefix = randomPrefix()
    const client = inspector(t, redis.port)
    const store = new RedisPresence(client, prefix)
    const serverMs = async (): Promise<number> => { const [s, us] = await client.time(); return Number(s) * 1000 + Math.floor(Number(us) / 1000) }
    const before = await serverMs()
    await store.add('room', 'c1', info('u1', 'c1', { conn_info: { a: 1 } }), 5000)
    const after = await serverMs()
    await store.add('room', 'c2', info('u1', 'c2'), 1000)
    t.strictSame((await client.keys(`${prefix}*`)).sort(), [`${prefix}presence-exp:{c:room}`, `${prefix}presence-users:{c:room}`, `${prefix}presence:{c:room}`])
    t.strictSame(await client.hgetall(`${prefix}presence-users:{c:room}`), { u1: '2' })
    t.equal(await client.hget(`${prefix}presence:{c:room}`, 'c1'), '{"user":"u1","client":"c1","conn_info":{"a":1}}\nu1')
    for (const kind of ['presence', 'presence-exp', 'presence-users']) {
      const pttl = await client.pttl(`${prefix}${kind}:{c:room}`)
      t.ok(pttl > 4000 && pttl <= 5000, `${kind} lives as long as the longest entry (${pttl} ms)`)
    }
    const deadline = Number(await client.zscore(`${prefix}presence-exp:{c:room}`, 'c1'))
    t.ok(deadline >= before + 5000 && deadline <= after + 5000, 'the deadline in ms, by the server clock')
    await store.remove('room', 'c1')
    await store.remove('room', 'c2')
    t.strictSame(await client.keys(`${prefix}*`), [], 'an empty channel leaves no key')
  })

  t.test('the entries of an instance that dies vanish within their ttl; the counts follow', async (t) => {
    const prefix = randomPrefix()
    const dying = new Redis({ port: redis.port, host: '127.0.0.1' })
    t.teardown(() => { dying.disconnect() })
    const survivor = inspector(t, redis.port)
    const a = new RedisPresence(dying, prefix)
    const b = new RedisPresence(survivor, prefix)
    await a.add('room', 'a1', info('u1', 'a1'), TTL)
    await a.add('room', 'a2', info('u1', 'a2'), TTL)
    await a.add('room', 'a3', info('u2', 'a3'), TTL)
    await a.add('only-a', 'a4', info('u3', 'a4'), TTL)
    await b.add('room', 'b1', info('u1', 'b1'), LONG)
    dying.disconnect() // no remove, no goodbye
    t.strictSame(await b.stats('room'), { numClients: 4, numUsers: 2 })

    await sleep(TTL + 100)
    t.strictSame(await survivor.exists(`${prefix}presence:{only-a}`, `${prefix}presence-exp:{only-a}`, `${prefix}presence-users:{only-a}`), 0,
      'keys nobody touched expired by themselves')
    t.strictSame(await b.stats('room'), { numClients: 1, numUsers: 1 })
    t.strictSame(await survivor.hgetall(`${prefix}presence-users:{c:room}`), { u1: '1' }, 'u1 counted down, u2 gone')
    t.strictSame(await b.get('room'), { b1: info('u1', 'b1') })
    await b.remove('room', 'b1')
    t.strictSame(await survivor.keys(`${prefix}*`), [], 'nothing left')
  })

  t.test('adding sweeps the channel: dead entries do not pile up where nobody reads', async (t) => {
    const prefix = randomPrefix()
    const client = inspector(t, redis.port)
    const store = new RedisPresence(client, prefix)
    await store.add('room', 'gone', info('u1', 'gone'), 100)
    await store.add('room', 'stays', info('u2', 'stays'), LONG)
    await sleep(150)
    await store.add('room', 'new', info('u3', 'new'), LONG)
    t.strictSame((await client.hkeys(`${prefix}presence:{c:room}`)).sort(), ['new', 'stays'])
    t.strictSame((await client.zrange(`${prefix}presence-exp:{c:room}`, '0', '-1')).sort(), ['new', 'stays'])
    t.strictSame(Object.keys(await client.hgetall(`${prefix}presence-users:{c:room}`)).sort(), ['u2', 'u3'])
  })

  t.test('the scripts are loaded again after SCRIPT FLUSH', async (t) => {
    const client = inspector(t, redis.port)
    const store = new RedisPresence(client, randomPrefix())
    await store.add('room', 'c1', info('u1', 'c1'), LONG)
    await client.script('FLUSH')
    t.strictSame(await store.stats('room'), { numClients: 1, numUsers: 1 })
  })
})

t.test('RedisPresence on Redis Cluster', async (t) => {
  const ports = await startCluster(t)
  conformance(t, async (t) => {
    const client = new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })))
    t.teardown(() => { client.disconnect() })
    return { store: new RedisPresence(client, randomPrefix()), pass: async (ms) => { await sleep(ms) } }
  })

  t.test('each channel stays on one slot; channels spread over the nodes', async (t) => {
    const client = new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })))
    t.teardown(() => { client.disconnect() })
    const prefix = randomPrefix()
    const store = new RedisPresence(client, prefix)
    const channels = Array.from({ length: 30 }, (_, i) => `spread-${i}`)
    for (const channel of channels) await store.add(channel, 'c1', info('u1', 'c1'), LONG)
    const nodes = ports.map((port) => inspector(t, port))
    const counts = await Promise.all(nodes.map(async (node) => (await node.keys(`${prefix}presence:*`)).length))
    t.equal(counts.reduce((a, b) => a + b, 0), channels.length)
    t.ok(counts.filter((count) => count > 0).length >= 2, `spread: ${counts.join('/')}`)
  })
})
