// Model-based: MemoryPresence, driven by random adds, removes, clock steps
// and sweeps, answers every read as a plain map of deadlines says it should,
// and holds no channel that has nothing live in it.
import { deepStrictEqual, equal } from 'node:assert/strict'
import fc from 'fast-check'
import t from 'tap'
import { MemoryPresence } from '../../lib/channels/presence.js'
import type { ClientInfo } from '../../lib/channels/types.js'
import { fuzzParameters } from './harness.js'

const START = 1_700_000_000_000
// Few names, so that steps meet: refreshes, shared users, emptied channels.
const CHANNELS = ['a', 'b', 'c']

type Step =
  | { op: 'add', channel: number, client: number, user: number, ttl: number }
  | { op: 'remove', channel: number, client: number }
  | { op: 'pass', ms: number }
  | { op: 'sweep' }
  | { op: 'check' }

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('add' as const), channel: fc.nat(2), client: fc.nat(4), user: fc.nat(2), ttl: fc.integer({ min: 1, max: 4000 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('remove' as const), channel: fc.nat(2), client: fc.nat(4) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('pass' as const), ms: fc.oneof(fc.integer({ min: 0, max: 2500 }), fc.integer({ min: 0, max: 10_000_000 })) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'sweep' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'check' as const }) }
)

interface ModelEntry { info: ClientInfo, expiresAt: number }

t.test('MemoryPresence agrees with a map of deadlines, whatever the order of adds, removes, time and sweeps', async (t) => {
  await fc.assert(fc.asyncProperty(fc.array(step, { maxLength: 60 }), async (steps) => {
    let now = START
    const store = new MemoryPresence(() => now)
    const model = new Map<string, Map<string, ModelEntry>>(CHANNELS.map((channel) => [channel, new Map()]))
    const live = (channel: string): Array<[string, ModelEntry]> =>
      [...(model.get(channel) as Map<string, ModelEntry>)].filter(([, entry]) => entry.expiresAt > now)

    // Throws (so that fast-check shrinks the steps) on the first disagreement.
    async function check (): Promise<void> {
      for (const channel of CHANNELS) {
        const expected = live(channel)
        deepStrictEqual(await store.get(channel), Object.fromEntries(expected.map(([client, entry]) => [client, entry.info])), `get ${channel}`)
        deepStrictEqual(await store.stats(channel), {
          numClients: expected.length,
          numUsers: new Set(expected.map(([, entry]) => entry.info.user)).size
        }, `stats ${channel}`)
      }
      // Reads swept what was due: only channels with a live entry are held.
      equal(store.size, CHANNELS.filter((channel) => live(channel).length > 0).length, 'channels held')
    }

    for (const [index, s] of steps.entries()) {
      if (s.op === 'add') {
        const client = `c${s.client}`
        // The step number makes each add's info distinct: a refresh must replace it.
        const info: ClientInfo = { user: `u${s.user}`, client, conn_info: { step: index } }
        await store.add(CHANNELS[s.channel], client, info, s.ttl)
        model.get(CHANNELS[s.channel])?.set(client, { info, expiresAt: now + s.ttl })
      } else if (s.op === 'remove') {
        await store.remove(CHANNELS[s.channel], `c${s.client}`)
        model.get(CHANNELS[s.channel])?.delete(`c${s.client}`)
      } else if (s.op === 'pass') {
        now += s.ms
      } else if (s.op === 'sweep') {
        store.sweep(now)
        // A sweep leaves exactly the channels with something live.
        equal(store.size, CHANNELS.filter((channel) => live(channel).length > 0).length, 'channels held after a sweep')
      } else {
        await check()
      }
    }
    await check()
  }), fuzzParameters(300))
  t.pass('random schedules of adds, removes, clock steps and sweeps')
})
