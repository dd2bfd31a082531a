import fc from 'fast-check'
import t from 'tap'
import { ExpiryWheel } from '../../lib/core/expiry.js'
import { fuzzParameters } from './harness.js'

interface Item { name: number, expiresAt: number }

const START = 1_700_000_000_000

type Step = { op: 'add', at: number } | { op: 'remove', index: number } | { op: 'sweep', advance: number }

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ op: fc.constant('add' as const), at: fc.oneof(fc.integer({ min: -5000, max: 20_000 }), fc.constant(Infinity)) }),
  fc.record({ op: fc.constant('remove' as const), index: fc.nat(50) }),
  fc.record({ op: fc.constant('sweep' as const), advance: fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 10_000_000 })) })
)

t.test('the wheel returns exactly what is due, once, never early, and keeps nothing removed', async (t) => {
  fc.assert(fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
    let now = START
    const wheel = new ExpiryWheel<Item>(now)
    const live = new Map<number, Item>() // added, not removed, not yet returned
    let names = 0
    for (const s of steps) {
      if (s.op === 'add') {
        const item = { name: names++, expiresAt: s.at === Infinity ? Infinity : now + s.at }
        wheel.add(item)
        live.set(item.name, item)
      } else if (s.op === 'remove') {
        const item = [...live.values()][s.index]
        if (item !== undefined) { wheel.remove(item); live.delete(item.name) }
      } else {
        now += s.advance
        const expired = wheel.sweep(now)
        for (const item of expired) {
          if (!live.has(item.name)) return false // returned twice, or after removal
          if (item.expiresAt > now) return false // early
          live.delete(item.name)
        }
        // Nothing due is left behind.
        for (const item of live.values()) if (item.expiresAt <= now) return false
      }
    }
    return wheel.size === [...live.values()].filter((item) => item.expiresAt !== Infinity).length
  }), fuzzParameters(500))
  t.pass('random schedules of adds, removes and sweeps')
})
