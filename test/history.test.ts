import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { RedisHistory } from '../lib/backplane/redis-history.js'
import { MemoryHistory } from '../lib/channels/history.js'
import type { ClientInfo, HistoryLimits, HistoryPage, HistoryQuery, Publication, StreamPosition } from '../lib/channels/types.js'
import { fuzzParameters } from './fuzz/harness.js'
import { randomPrefix, startRedis } from './redis-helpers.js'

const START = 1_700_000_000_000
const LIMITS: HistoryLimits = { size: 10, ttl: 60_000, metaTtl: 120_000 }
const ALICE: ClientInfo = { user: 'alice', client: 'c-1', conn_info: { name: 'Alice' } }

/** Either store, as the conformance tests drive it. */
interface Store {
  append: (channel: string, data: string, limits?: HistoryLimits, info?: ClientInfo) => Promise<StreamPosition>
  read: (channel: string, query: HistoryQuery, limits?: HistoryLimits) => Promise<HistoryPage>
  position: (channel: string, limits?: HistoryLimits) => Promise<StreamPosition>
  remove: (channel: string) => Promise<void>
  /** Lets `ms` pass: the memory store's clock moves (and it sweeps); Redis's own clock is waited for. */
  elapse: (ms: number) => Promise<void>
}

function memoryStore (): Store {
  let now = START
  const history = new MemoryHistory(now)
  return {
    append: async (channel, data, limits = LIMITS, info) => history.append(channel, data, info, limits, now),
    read: async (channel, query, limits = LIMITS) => history.read(channel, query, limits, now),
    position: async (channel, limits = LIMITS) => history.position(channel, limits, now),
    remove: async (channel) => { history.remove(channel) },
    elapse: async (ms) => {
      now += ms
      history.sweep(now)
    }
  }
}

/** A store on the redis-server at `port`, with a prefix of its own. */
function redisStore (t: Test, port: number): Store {
  const client = new Redis({ port, host: '127.0.0.1' })
  t.teardown(() => { client.disconnect() })
  const prefix = randomPrefix()
  const history = new RedisHistory(client, prefix)
  return {
    append: async (channel, data, limits = LIMITS, info) => (await history.publish({
      channel, pubsubChannel: `${prefix}channel:{${channel}}`, sharded: false, header: '{"v":1', data, info, limits
    })).position,
    read: async (channel, query, limits = LIMITS) => await history.read(channel, query, limits),
    position: async (channel, limits = LIMITS) => await history.position(channel, limits),
    remove: async (channel) => { await history.remove(channel) },
    // Redis expires a key on access as soon as its deadline has passed, so
    // waiting a little past it is exact; no event tells when it has.
    elapse: async (ms) => { await sleep(ms + 15) }
  }
}

/** Publications `from`..`to` as `append(channel, 'p<offset>')` made them, in that order. */
function range (from: number, to: number): Publication[] {
  const step = from <= to ? 1 : -1
  return Array.from({ length: Math.abs(to - from) + 1 }, (_, i) => ({ offset: from + i * step, data: `"p${from + i * step}"` }))
}

async function appendMany (store: Store, channel: string, count: number, limits = LIMITS): Promise<StreamPosition> {
  let position: StreamPosition = { offset: 0, epoch: '' }
  for (let i = 0; i < count; i++) position = await store.append(channel, `"p${position.offset + 1}"`, limits)
  return position
}

/** What both stores must do alike. */
function conformance (t: Test, store: (t: Test) => Store): void {
  t.test('a stream gets an epoch on first touch, whichever call touches it, and keeps it', async (t) => {
    const s = store(t)
    const first = await s.position('by-position')
    t.match(first, { offset: 0, epoch: /^[0-9a-f]{12}$/ }, 'an epoch, with no quote or backslash')
    t.same(await s.position('by-position'), first, 'stable')
    t.same(await s.read('by-position', { limit: -1 }), { position: first, publications: [] })
    t.same(await s.append('by-position', '"p1"'), { offset: 1, epoch: first.epoch }, 'the first append keeps it')

    const read = await s.read('by-read', { limit: -1 })
    t.same(read.publications, [])
    t.equal(read.position.offset, 0)
    t.same(await s.position('by-read'), read.position)

    const appended = await s.append('by-append', '"p1"')
    t.equal(appended.offset, 1)
    t.same(await s.position('by-append'), appended)

    t.equal(new Set([first.epoch, read.position.epoch, appended.epoch]).size, 3, 'each channel its own epoch')
  })

  t.test('offsets count 1, 2, 3; data and info come back exactly as given', async (t) => {
    const s = store(t)
    const data = ['{"text":"héllo \\"x\\" 🎉\\u0000"}', '[1,\n2]', 'null']
    const positions = [
      await s.append('c', data[0] as string, LIMITS, ALICE),
      await s.append('c', data[1] as string),
      await s.append('c', data[2] as string, LIMITS, { user: '', client: 'c-2' })
    ]
    t.same(positions.map((p) => p.offset), [1, 2, 3])
    t.equal(new Set(positions.map((p) => p.epoch)).size, 1)
    t.same(await s.read('c', { limit: -1 }), {
      position: positions[2],
      publications: [
        { offset: 1, data: data[0], info: ALICE },
        { offset: 2, data: data[1] },
        { offset: 3, data: data[2], info: { user: '', client: 'c-2' } }
      ]
    })
  })

  t.test('only the last `size` publications are kept', async (t) => {
    const s = store(t)
    const limits = { ...LIMITS, size: 3 }
    const top = await appendMany(s, 'c', 5, limits)
    t.same(await s.read('c', { limit: -1 }, limits), { position: top, publications: range(3, 5) })
    t.same((await s.read('c', { limit: -1, reverse: true }, limits)).publications, range(5, 3))
  })

  t.test('limit: 0 gives the position only, -1 everything kept, n at most n', async (t) => {
    const s = store(t)
    const top = await appendMany(s, 'c', 5)
    t.same(await s.read('c', { limit: 0 }), { position: top, publications: [] })
    t.same((await s.read('c', { limit: -1 })).publications, range(1, 5))
    t.same((await s.read('c', { limit: 2 })).publications, range(1, 2), 'the oldest n')
    t.same((await s.read('c', { limit: 9 })).publications, range(1, 5))
    t.same((await s.read('c', { limit: 0, since: { offset: 1, epoch: top.epoch } })).publications, [])
  })

  t.test('since: only what came after the position', async (t) => {
    const s = store(t)
    const top = await appendMany(s, 'c', 5)
    const since = (offset: number, epoch = top.epoch): HistoryQuery => ({ limit: -1, since: { offset, epoch } })
    t.same(await s.read('c', since(2)), { position: top, publications: range(3, 5) })
    t.same((await s.read('c', { ...since(2), limit: 2 })).publications, range(3, 4))
    t.same((await s.read('c', since(0))).publications, range(1, 5))
    t.same((await s.read('c', since(5))).publications, [], 'nothing after the top')
    t.same((await s.read('c', since(7))).publications, [], 'nor after a position past it')
    t.same((await s.read('c', since(3, ''))).publications, range(4, 5), 'an empty epoch matches any')
  })

  t.test('since with another epoch: no publications, and the position tells the epoch changed', async (t) => {
    const s = store(t)
    const top = await appendMany(s, 'c', 3)
    const page = await s.read('c', { limit: -1, since: { offset: 1, epoch: 'other' } })
    t.same(page, { position: top, publications: [] })
    t.same((await s.read('c', { limit: -1, since: { offset: 1, epoch: 'other' }, reverse: true })).publications, [])
  })

  t.test('reverse: newest first; with since, those before it', async (t) => {
    const s = store(t)
    const top = await appendMany(s, 'c', 5)
    const reverse = (limit: number, offset?: number): HistoryQuery =>
      ({ limit, reverse: true, ...(offset === undefined ? {} : { since: { offset, epoch: top.epoch } }) })
    t.same(await s.read('c', reverse(-1)), { position: top, publications: range(5, 1) })
    t.same((await s.read('c', reverse(2))).publications, range(5, 4))
    t.same((await s.read('c', reverse(-1, 4))).publications, range(3, 1))
    t.same((await s.read('c', reverse(2, 4))).publications, range(3, 2))
    t.same((await s.read('c', reverse(-1, 1))).publications, [], 'nothing before the first')
    t.same((await s.read('c', reverse(-1, 0))).publications, [])
    t.same((await s.read('c', reverse(2, 9))).publications, range(5, 4), 'a position past the top: the newest')
  })

  t.test('remove drops the publications and keeps the position; offsets go on', async (t) => {
    const s = store(t)
    const top = await appendMany(s, 'c', 3)
    await s.remove('c')
    t.same(await s.read('c', { limit: -1 }), { position: top, publications: [] })
    t.same(await s.append('c', '"p4"'), { offset: 4, epoch: top.epoch })
    t.same((await s.read('c', { limit: -1 })).publications, range(4, 4))
    await s.remove('never-seen')
    t.same((await s.read('never-seen', { limit: -1 })).position.offset, 0)
  })

  // Redis runs on a real clock: a check that a deadline has not yet passed
  // comes at least 180 ms before it, so that a slow machine cannot fail it.
  t.test('publications expire ttl after the last append, all together; the position stays', async (t) => {
    const s = store(t)
    const limits = { size: 10, ttl: 400, metaTtl: 2000 }
    await appendMany(s, 'c', 2, limits)
    await s.elapse(200)
    const top = await s.append('c', '"p3"', limits)
    await s.elapse(200)
    t.same((await s.read('c', { limit: -1 }, limits)).publications, range(1, 3), 'the last append keeps them all')
    await s.elapse(220)
    t.same(await s.read('c', { limit: -1 }, limits), { position: top, publications: [] }, 'gone, but not the position')
    t.same(await s.append('c', '"p4"', limits), { offset: 4, epoch: top.epoch })
    t.same((await s.read('c', { limit: -1 }, limits)).publications, range(4, 4))
  })

  t.test('when the meta expires the stream is lost: a new epoch, offsets from 1', async (t) => {
    const s = store(t)
    const limits = { size: 10, ttl: 100, metaTtl: 400 }
    const old = await appendMany(s, 'c', 3, limits)
    const quiet = await s.position('quiet', limits)
    await s.elapse(200)
    t.same(await s.read('c', { limit: -1 }, limits), { position: old, publications: [] }, 'the meta outlives the publications')
    await s.elapse(250)
    const lost = await s.read('c', { limit: -1, since: old }, limits)
    t.not(lost.position.epoch, old.epoch, 'a new epoch')
    t.same(lost, { position: { offset: 0, epoch: lost.position.epoch }, publications: [] })
    t.same(await s.append('c', '"p1"', limits), { offset: 1, epoch: lost.position.epoch })
    // A stream only read, never appended to, goes metaTtl after the touch that made it.
    t.not((await s.position('quiet', limits)).epoch, quiet.epoch, 'a read-created stream expires too')
  })

  t.test('a limit or offset that is not a whole number is refused', async (t) => {
    const s = store(t)
    await t.rejects(s.read('c', { limit: 1.5 }), TypeError)
    await t.rejects(s.read('c', { limit: -1, since: { offset: 0.5, epoch: '' } }), TypeError)
    await t.rejects(s.read('c', { limit: -1, since: { offset: 2 ** 53 + 2, epoch: '' } }), TypeError)
    await t.rejects(s.read('c', { limit: -1, since: { offset: NaN, epoch: '' } }), TypeError)
  })
}

t.test('memory', async (t) => {
  conformance(t, () => memoryStore())
})

t.test('redis', async (t) => {
  // One server for the lot: each test has its own client and prefix.
  const { port } = await startRedis(t)
  conformance(t, (t) => redisStore(t, port))
})

t.test('memory: sweep forgets what expired, and only that', async (t) => {
  let now = START
  const history = new MemoryHistory(now)
  const limits = { size: 10, ttl: 1000, metaTtl: 5000 }
  history.append('a', '1', undefined, limits, now)
  history.position('b', limits, now)
  now += 2000
  history.append('c', '1', undefined, limits, now)
  history.remove('never-seen')
  t.equal(history.size, 3, 'remove creates nothing')

  history.sweep(now)
  t.equal(history.size, 3, 'expired publications leave the channel')
  t.same(history.read('a', { limit: -1 }, limits, now), { position: { offset: 1, epoch: history.position('a', limits, now).epoch }, publications: [] })
  t.equal(history.read('c', { limit: -1 }, limits, now).publications.length, 1)

  now += 3000 // a's and b's meta are due, c's not
  history.sweep(now)
  t.equal(history.size, 1)
  now += 2000
  history.sweep(now)
  t.equal(history.size, 0, 'nothing left')
  history.sweep(now + 1_000_000)
  t.equal(history.size, 0)
})

t.test('memory: a namespace whose size changes keeps the newest publications that fit', async (t) => {
  const history = new MemoryHistory(START)
  const append = (count: number, size: number): void => {
    for (let i = 0; i < count; i++) {
      const top = history.position('c', LIMITS, START).offset
      history.append('c', `"p${top + 1}"`, undefined, { ...LIMITS, size }, START)
    }
  }
  const kept = (): Publication[] => history.read('c', { limit: -1 }, LIMITS, START).publications
  append(5, 3)
  t.same(kept(), range(3, 5))
  append(2, 5)
  t.same(kept(), range(3, 7), 'growing keeps what was there')
  append(4, 5)
  t.same(kept(), range(7, 11), 'wrapped')
  append(1, 2)
  t.same(kept(), range(11, 12), 'shrinking keeps the newest')
  t.same(history.read('c', { limit: 1, reverse: true }, LIMITS, START).publications, range(12, 12))
})

// ---------------------------------------------------------------- model

type Step =
  | { op: 'append', channel: string, info: boolean, limits: number }
  | { op: 'read', channel: string, limit: number, since: { offset: number, epoch: 'current' | 'other' | 'any' } | undefined, reverse: boolean, limits: number }
  | { op: 'position', channel: string, limits: number }
  | { op: 'remove', channel: string }
  | { op: 'elapse', ms: number }
  | { op: 'sweep' }

/** Limits the steps choose from; the last keeps the meta for less time than the publications. */
const LIMIT_SETS: HistoryLimits[] = [
  { size: 3, ttl: 1000, metaTtl: 3000 },
  { size: 1, ttl: 400, metaTtl: 2500 },
  { size: 5, ttl: 2000, metaTtl: 2000 },
  { size: 4, ttl: 3000, metaTtl: 1500 }
]

const channel = fc.constantFrom('a', 'b', 'c')
const limits = fc.nat(LIMIT_SETS.length - 1)
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('append' as const), channel, info: fc.boolean(), limits }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('read' as const),
      channel,
      limit: fc.integer({ min: -1, max: 6 }),
      since: fc.option(fc.record({ offset: fc.integer({ min: -1, max: 14 }), epoch: fc.constantFrom('current' as const, 'other' as const, 'any' as const) }), { nil: undefined }),
      reverse: fc.boolean(),
      limits
    })
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('position' as const), channel, limits }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('remove' as const), channel }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('elapse' as const), ms: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 1500 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 20_000 }) }) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'sweep' as const }) }
)

/** A stream as plain data, expiring exactly at its deadlines. */
interface ModelStream {
  epoch: string
  top: number
  publications: Publication[]
  publicationsExpireAt: number
  metaExpireAt: number
}

t.test('memory: random appends, reads, removes, time and sweeps agree with a plain-array model', async (t) => {
  fc.assert(fc.property(fc.array(step, { minLength: 1, maxLength: 80, size: 'max' }), (steps) => {
    let now = START
    const history = new MemoryHistory(now)
    const model = new Map<string, ModelStream>()
    const epochs = new Set<string>()
    let count = 0

    const live = (channel: string): ModelStream | undefined => {
      const stream = model.get(channel)
      if (stream !== undefined && stream.metaExpireAt <= now) {
        model.delete(channel)
        return undefined
      }
      if (stream !== undefined && stream.publicationsExpireAt <= now) {
        stream.publications = []
        stream.publicationsExpireAt = Infinity
      }
      return stream
    }
    // The store's epoch is random: a stream the model creates must get one never seen, then keep it.
    const touch = (channel: string, epoch: string, limits: HistoryLimits): ModelStream => {
      let stream = live(channel)
      if (stream === undefined) {
        assert(!epochs.has(epoch), `${channel}: a new stream reused epoch ${epoch}`)
        epochs.add(epoch)
        stream = { epoch, top: 0, publications: [], publicationsExpireAt: Infinity, metaExpireAt: now + limits.metaTtl }
        model.set(channel, stream)
      }
      assert(stream.epoch === epoch, `${channel}: epoch ${epoch}, expected ${stream.epoch}`)
      return stream
    }

    for (const s of steps) {
      if (s.op === 'append') {
        const limits = LIMIT_SETS[s.limits] as HistoryLimits
        const data = `"d${count++}"`
        const info = s.info ? ALICE : undefined
        const position = history.append(s.channel, data, info, limits, now)
        const stream = touch(s.channel, position.epoch, limits)
        stream.top++
        assert(position.offset === stream.top, `append: offset ${position.offset}, expected ${stream.top}`)
        stream.publications.push(info === undefined ? { offset: stream.top, data } : { offset: stream.top, data, info })
        stream.publications = stream.publications.slice(-limits.size)
        stream.publicationsExpireAt = now + limits.ttl
        stream.metaExpireAt = now + limits.metaTtl
      } else if (s.op === 'read') {
        const limits = LIMIT_SETS[s.limits] as HistoryLimits
        const current = model.get(s.channel)?.epoch ?? 'none'
        const since = s.since === undefined
          ? undefined
          : { offset: s.since.offset, epoch: s.since.epoch === 'current' ? current : s.since.epoch === 'other' ? 'other' : '' }
        const query: HistoryQuery = { limit: s.limit, reverse: s.reverse, ...(since === undefined ? {} : { since }) }
        const page = history.read(s.channel, query, limits, now)
        const stream = touch(s.channel, page.position.epoch, limits)
        assert(page.position.offset === stream.top, 'read: top offset')
        let expected: Publication[] = []
        if (s.limit !== 0 && (since === undefined || since.epoch === '' || since.epoch === stream.epoch)) {
          expected = stream.publications.filter((p) => since === undefined || (s.reverse ? p.offset < since.offset : p.offset > since.offset))
          if (s.reverse) expected.reverse()
          if (s.limit > 0) expected = expected.slice(0, s.limit)
        }
        assert.deepStrictEqual(page.publications, expected, `read ${JSON.stringify(query)}`)
      } else if (s.op === 'position') {
        const limits = LIMIT_SETS[s.limits] as HistoryLimits
        const position = history.position(s.channel, limits, now)
        assert(position.offset === touch(s.channel, position.epoch, limits).top, 'position: top offset')
      } else if (s.op === 'remove') {
        history.remove(s.channel)
        const stream = model.get(s.channel)
        if (stream !== undefined) {
          stream.publications = []
          stream.publicationsExpireAt = Infinity
        }
      } else if (s.op === 'elapse') {
        now += s.ms
      } else {
        history.sweep(now)
        for (const channel of [...model.keys()]) live(channel)
      }
      // The store forgets a stream when the model does: on the touch after its meta expired, or at a sweep.
      assert(history.size === model.size, `size ${history.size}, model ${model.size}`)
    }
  }), fuzzParameters(300))
  t.pass('random schedules')
})
