// Type tests: this file must compile (`npm test` runs tsc first), and each
// line marked as an expected error must stay an error.
import t from 'tap'
import Fastify from 'fastify'
import fanout, { CloseCode, type DeliveryResult, type FanoutConnection, type FanoutOptions, type MessageFrame } from '../lib/index.js'
import { SECRET } from './helpers.js'

t.test('the decorator is typed through declaration merging', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const options: FanoutOptions = { jwt: { secret: SECRET }, slowConsumer: 'drop', compression: { threshold: 512 } }
  await app.register(fanout, options)
  await app.ready()

  const result: DeliveryResult = await app.fanout.broadcast({ any: 'json' }, { users: ['a'], except: ['b'] })
  const size: number = app.fanout.size
  const connections: ReadonlySet<FanoutConnection> = app.fanout.connectionsOf('a')
  const frame: MessageFrame<{ n: number }> = { type: 'message', id: 'x', data: { n: 1 } }
  const code: number = CloseCode.SLOW_CONSUMER
  t.same([result.delivered, size, connections.size, frame.data.n, code], [0, 0, 0, 1, 4008])

  // @ts-expect-error slowConsumer takes 'close' or 'drop'
  const bad: FanoutOptions = { jwt: { secret: SECRET }, slowConsumer: 'block' }
  // @ts-expect-error jwt is required
  const missing: FanoutOptions = {}
  // @ts-expect-error users is a list of ids (from JavaScript: a rejected promise)
  await t.rejects(app.fanout.broadcast(1, { users: 'a' }), { code: 'FST_FANOUT_INVALID_ARGUMENT' })
  t.ok(bad !== undefined && missing !== undefined)
})
