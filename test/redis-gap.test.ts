import { once } from 'node:events'
import t from 'tap'
import { WebSocket } from 'ws'
import { broadcast, build, closed, collect, connect, nextMessage, runExample, sample, token, until } from './helpers.js'
import { inspector, randomPrefix, startRedis } from './redis-helpers.js'

t.test('a lost subscription closes the instance\'s clients with 4011 and counts the gap; they reconnect and receive again', async (t) => {
  const redis = await startRedis(t)
  const prefix = randomPrefix()
  const a = await build(t, { redis: redis.url, channelPrefix: prefix })
  const b = await build(t, { redis: redis.url, channelPrefix: prefix, backplaneGap: 'keep' })
  const onA = await connect(t, a.wsUrl, token({ sub: 'ann' }))
  const onB = await connect(t, b.wsUrl, token({ sub: 'ben' }))

  // What Redis does to a subscriber past its output buffer limit.
  const closing = closed(onA)
  await inspector(t, redis.port).call('CLIENT', 'KILL', 'TYPE', 'pubsub')
  const { code, reason } = await closing
  t.equal(code, 4011)
  t.match(reason, /messages may have been missed/)
  t.equal(onB.readyState, WebSocket.OPEN, "backplaneGap: 'keep' leaves clients open")

  // Both instances lost their subscriber; wait until both are back.
  for (const instance of [a, b]) {
    await until(async () => instance.app.fanout.backplaneUp &&
      sample(await instance.app.fanout.metricsRegistry.metrics(), 'fanout_backplane_gaps_total', 'phase="restored"') === 1, 'the subscription to come back')
  }
  const again = await connect(t, a.wsUrl, token({ sub: 'ann' }))
  const next = [nextMessage(again), nextMessage(onB)]
  t.equal((await broadcast(b.url, { data: 'after the gap' })).status, 202)
  t.same((await Promise.all(next)).map((message) => message.data), ['after the gap', 'after the gap'])

  for (const instance of [a, b]) {
    const text = await instance.app.fanout.metricsRegistry.metrics()
    t.equal(sample(text, 'fanout_backplane_gaps_total', 'phase="lost"'), 1, 'the loss is counted')
  }
  t.equal(sample(await a.app.fanout.metricsRegistry.metrics(), 'fanout_disconnects_total', 'code="4011"'), 1)
})

t.test('disconnectUser closes the user\'s connections on every instance', async (t) => {
  const redis = await startRedis(t)
  const prefix = randomPrefix()
  const a = await build(t, { redis: redis.url, channelPrefix: prefix })
  const b = await build(t, { redis: redis.url, channelPrefix: prefix })
  const aliceOnA = await connect(t, a.wsUrl, token({ sub: 'alice' }))
  const aliceOnB = await connect(t, b.wsUrl, token({ sub: 'alice' }))
  const bobOnB = await connect(t, b.wsUrl, token({ sub: 'bob' }))
  const closes = [closed(aliceOnA), closed(aliceOnB)]
  const result = await a.app.fanout.disconnectUser('alice', 4403, 'banned')
  t.equal(result.instances, 2, 'both instances hold alice')
  t.same(await Promise.all(closes), [{ code: 4403, reason: 'banned' }, { code: 4403, reason: 'banned' }])
  t.equal(bobOnB.readyState, WebSocket.OPEN, 'other users are untouched')
  await until(() => a.app.fanout.connectionsOf('alice').size + b.app.fanout.connectionsOf('alice').size === 0, 'alice to be gone everywhere')
})

t.test('a subscriber dropped for falling behind: every message answered 202 either arrives or its client is told', async (t) => {
  // A small pubsub output buffer, so that an instance that stops reading is cut off quickly.
  const redis = await startRedis(t, ['--client-output-buffer-limit', 'pubsub 256kb 0 0'])
  const publisher = await build(t, { redis: redis.url, channelPrefix: 'fanout:' })
  // The other instance runs in its own process, so that it can be stopped (as
  // a stalled event loop would) while this one goes on publishing.
  const stalled = await runExample(t, '../example/server.ts', { PORT: '0', REDIS_URL: redis.url })
  const client = new WebSocket(`${stalled.base.replace('http', 'ws')}/ws?token=${stalled.userToken}`)
  t.teardown(() => client.terminate())
  collect(client)
  const received: unknown[] = []
  client.on('message', (data: Buffer) => received.push(JSON.parse(data.toString()).data))
  await once(client, 'open')
  const closing = closed(client)

  process.kill(stalled.child.pid as number, 'SIGSTOP')
  // 6 MB in all: more than loopback socket buffers hold, so Redis's buffer fills.
  const total = 1500
  const payload = 'p'.repeat(4000)
  let accepted = 0
  for (let i = 0; i < total; i += 25) {
    await Promise.all(Array.from({ length: 25 }, async (_, j) => {
      const response = await broadcast(publisher.url, { data: { i: i + j, payload } })
      if (response.status === 202) accepted++
      await response.arrayBuffer()
    }))
  }
  process.kill(stalled.child.pid as number, 'SIGCONT')

  const { code } = await closing
  t.equal(accepted, total, 'every message was answered 202')
  t.ok(received.length < total, `the stalled instance missed messages (it delivered ${received.length} of ${total})`)
  t.equal(code, 4011, 'and its client was told, with 4011')
})
