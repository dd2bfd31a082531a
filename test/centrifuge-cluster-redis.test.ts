import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import type { FanoutOptions } from '../lib/index.js'
import { broadcast, token, until } from './helpers.js'
import { buildCentrifuge, restartCentrifuge, sdk, subscribed, subscription } from './centrifuge-helpers.js'
import { randomPrefix, startRedis } from './redis-helpers.js'

// Several instances on one Redis, with the real SDK: presence that outlives
// no instance, recovery across Redis restarts and app restarts, the
// broadcast route's channel publications, and the decorator's refusals.

/** An instance in a child process (test/fixtures/centrifuge-instance.ts); its port once it listens. Killed when the test ends. */
async function childInstance (t: Test, redisUrl: string, prefix: string): Promise<{ port: number, kill: () => Promise<void> }> {
  const script = fileURLToPath(new URL('./fixtures/centrifuge-instance.ts', import.meta.url))
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    env: { ...process.env, REDIS_URL: redisUrl, PREFIX: prefix },
    stdio: ['pipe', 'pipe', 'inherit'] // it exits when its stdin closes: never left running if this process dies
  })
  const exited = once(child, 'exit')
  const kill = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGKILL')
    await exited
  }
  t.teardown(kill)
  let output = ''
  child.stdout.setEncoding('utf8')
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`the instance did not start: ${output}`)) }, 15_000)
    child.stdout.on('data', (chunk: string) => {
      output += chunk
      const match = /listening (\d+)/.exec(output)
      if (match !== null) {
        clearTimeout(timer)
        resolve(Number(match[1]))
      }
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the instance exited with ${String(code)}: ${output}`)) })
  })
  return { port, kill }
}

const PRESENCE: Partial<FanoutOptions>['channels'] = { presenceTtl: 1000, namespaces: { room: { presence: true, joinLeave: true } } }

t.test('presence across instances; the entries of an instance killed with SIGKILL expire within presenceTtl, and the counts follow', async (t) => {
  const redis = await startRedis(t)
  const prefix = randomPrefix()
  const [child, b] = await Promise.all([
    childInstance(t, redis.url, prefix),
    buildCentrifuge(t, { redis: redis.url, channelPrefix: prefix, channels: PRESENCE })
  ])
  const carol = sdk(t, `ws://127.0.0.1:${child.port}/connection/websocket`, { token: token({ sub: 'carol' }) })
  const bob = sdk(t, b.sdkUrl, { token: token({ sub: 'bob' }) })
  carol.client.connect()
  bob.client.connect()
  const onChild = subscription(carol.client, 'room:p')
  const onB = subscription(bob.client, 'room:p', { joinLeave: true })
  onChild.sub.subscribe()
  onB.sub.subscribe()
  // From 0: connect and subscribe replies come in one frame, before a later wait would start.
  const carolId = (await carol.events.next('connected', 0)).client
  await onChild.events.next('subscribed', 0)
  await onB.events.next('subscribed', 0)
  await until(async () => (await b.app.fanout.presenceStats('room:p')).numClients === 2, 'both clients in presence')
  t.same(await b.app.fanout.presenceStats('room:p'), { numClients: 2, numUsers: 2 })
  t.same(Object.values(await b.app.fanout.presence('room:p')).map((info) => info.user).sort(), ['bob', 'carol'], 'presence from the other instance')

  // The child refreshes its entries: they outlive their 1 s ttl while it lives.
  const watchUntil = Date.now() + 1500
  let lapses = 0
  while (Date.now() < watchUntil) {
    if ((await b.app.fanout.presence('room:p'))[carolId] === undefined) lapses++
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.equal(lapses, 0, 'the living instance\'s entry never lapsed')

  await child.kill()
  const killedAt = Date.now()
  await until(async () => (await b.app.fanout.presence('room:p'))[carolId] === undefined, 'the dead instance\'s entry to expire', 3000)
  const gone = Date.now() - killedAt
  t.ok(gone <= 1500, `gone ${gone} ms after the kill (presenceTtl 1000)`)
  t.same(await b.app.fanout.presenceStats('room:p'), { numClients: 1, numUsers: 1 })
  t.same(Object.keys(await b.app.fanout.presence('room:p')), [bob.events.all('connected')[0].client])
})

t.test('Redis restarts under a subscribed client: it is closed with 3010 once Redis is back, and resubscribes recovering', async (t) => {
  for (const kept of [false, true]) {
    await t.test(kept ? 'a Redis that kept the stream (append-only file): recovered, same epoch' : 'the stream lost with Redis: not recovered, a new epoch', async (t) => {
      const dir = await mkdtemp(join(tmpdir(), 'fanout-aof-'))
      t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
      const redis = await startRedis(t, kept ? ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir] : [])
      const built = await buildCentrifuge(t, { redis: redis.url, channelPrefix: randomPrefix() })
      const { client, events: clientEvents } = sdk(t, built.sdkUrl, { token: token() })
      client.connect()
      const { events } = await subscribed(client, 'chat:r')
      const one = events.next('publication')
      const first = await built.app.fanout.publish('chat:r', 'one')
      t.equal((await one).offset, 1)

      const closed = clientEvents.next('connecting', clientEvents.events.length)
      const resubscribed = events.next('subscribed', events.events.length)
      await redis.kill()
      await redis.restart()
      // Closed once the subscription is back, so that it recovers at once.
      t.match(await closed, { code: 3010, reason: 'insufficient state' }, 'the lost subscription closed the client')
      const again = await resubscribed
      t.equal(again.wasRecovering, true)
      t.equal(again.recovered, kept)
      if (kept) t.same(again.streamPosition, { offset: 1, epoch: first.epoch }, 'the same stream')
      else t.not(again.streamPosition.epoch, first.epoch, 'a new epoch')

      const two = events.next('publication', events.events.length)
      await until(() => built.app.fanout.backplaneUp, 'the backplane to be up again')
      await built.app.fanout.publish('chat:r', 'two')
      const publication = await two
      t.equal(publication.data, 'two')
      t.equal(publication.offset, kept ? 2 : 1, 'offsets go on in the stream the client holds')
    })
  }
})

t.test('embedded backplane: an app restarted on the same port has a new epoch; the SDK resubscribes unrecovered', async (t) => {
  const built = await buildCentrifuge(t)
  const { client } = sdk(t, built.sdkUrl, { token: token() })
  client.connect()
  const { events } = await subscribed(client, 'chat:r')
  const one = events.next('publication')
  const first = await built.app.fanout.publish('chat:r', 'one')
  await one
  const resubscribed = events.next('subscribed', events.events.length)
  const restarted = await restartCentrifuge(t, built)
  const again = await resubscribed
  t.equal(again.wasRecovering, true)
  t.equal(again.recovered, false)
  t.not(again.streamPosition.epoch, first.epoch)
  t.equal(again.streamPosition.offset, 0)
  const next = events.next('publication', events.events.length)
  await restarted.app.fanout.publish('chat:r', 'two')
  t.equal((await next).offset, 1)
})

t.test('POST /broadcast to channels: offset and epoch per channel; 400 for what cannot be published; 503 when history is out of reach', async (t) => {
  const redis = await startRedis(t)
  const built = await buildCentrifuge(t, { redis: redis.url, channelPrefix: randomPrefix() })
  const { client } = sdk(t, built.sdkUrl, { token: token() })
  client.connect()
  const { events } = await subscribed(client, 'chat:b')

  const received = events.next('publication')
  const one = await broadcast(built.url, { channel: 'chat:b', data: { n: 1 } })
  t.equal(one.status, 202)
  const oneBody = await one.json() as { epoch: string }
  t.match(oneBody, { id: String, offset: 1, epoch: String, instances: 1 })
  t.same((await received).data, { n: 1 })

  const many = await broadcast(built.url, { channels: ['chat:b', 'chat:c', 'news'], data: 'many' })
  t.equal(many.status, 202)
  const manyBody = await many.json() as { channels: Record<string, Record<string, unknown>> }
  t.same(Object.keys(manyBody.channels).sort(), ['chat:b', 'chat:c', 'news'])
  t.match(manyBody.channels['chat:b'], { offset: 2, epoch: oneBody.epoch })
  t.match(manyBody.channels['chat:c'], { offset: 1, epoch: String })
  t.notOk('offset' in (manyBody.channels.news ?? {}), 'no offset where the namespace keeps no history')

  for (const [body, why] of [
    [{ channel: 'nowhere:x', data: 1 }, /namespace "nowhere" is not configured/],
    [{ channels: ['news', 'nowhere:x'], data: 1 }, /nowhere/],
    [{ channel: 'chat:b', users: ['alice'], data: 1 }, /leave out users and except/],
    [{ channel: 'chat:b', channels: ['chat:c'], data: 1 }, /either channel or channels/],
    [{ channel: '', data: 1 }, /channel/]
  ] as const) {
    const refused = await broadcast(built.url, body)
    t.equal(refused.status, 400, JSON.stringify(body))
    t.match(await refused.json(), { code: 'FST_FANOUT_INVALID_BROADCAST', message: why })
  }

  await redis.kill()
  await until(() => !built.app.fanout.backplaneUp, 'the backplane to see Redis gone')
  const down = await broadcast(built.url, { channel: 'chat:b', data: 'lost' })
  t.equal(down.status, 503)
  t.match(await down.json(), { statusCode: 503, code: 'FST_FANOUT_HISTORY_UNAVAILABLE' })
  const local = await broadcast(built.url, { channel: 'news', data: 'local' })
  t.equal(local.status, 503, 'a channel without history goes to this instance only: partial')
  t.match(await local.json(), { partial: true })
  const both = await broadcast(built.url, { channels: ['news', 'chat:b'], data: 'mixed' })
  t.equal(both.status, 503)
  t.match(await both.json(), {
    channels: {
      news: { partial: true, delivered: 0 },
      'chat:b': { error: { code: 'FST_FANOUT_HISTORY_UNAVAILABLE' } }
    }
  }, 'each channel says what happened to it: one delivered here only, one not published')
})

t.test("the decorator's channel methods refuse unknown namespaces and namespaces without the feature", async (t) => {
  const redis = await startRedis(t)
  const built = await buildCentrifuge(t, { redis: redis.url, channelPrefix: randomPrefix() })
  const { fanout } = built.app
  const invalid = { code: 'FST_FANOUT_INVALID_ARGUMENT' }
  await t.rejects(fanout.publish('nowhere:x', 1), { ...invalid, message: /not configured/ })
  await t.rejects(fanout.publish('', 1), invalid)
  await t.rejects(fanout.publish(5 as unknown as string, 1), invalid)
  await t.rejects(fanout.history('news'), { ...invalid, message: /without history/ })
  await t.rejects(fanout.history('nowhere:x'), invalid)
  await t.rejects(fanout.history('chat:x', { limit: -2 }), invalid)
  await t.rejects(fanout.history('chat:x', { limit: 1.5 }), invalid)
  await t.rejects(fanout.removeHistory('news'), { ...invalid, message: /without history/ })
  await t.rejects(fanout.presence('news'), { ...invalid, message: /without presence/ })
  await t.rejects(fanout.presenceStats('private:x'), { ...invalid, message: /without presence/ })
  await t.rejects(fanout.presence('nowhere:x'), invalid)

  // What they do accept, on Redis.
  for (const n of [1, 2, 3]) await fanout.publish('chat:x', n)
  const page = await fanout.history('chat:x', { limit: -1 })
  t.same(page.publications.map((p) => p.data), ['1', '2', '3'])
  await fanout.removeHistory('chat:x')
  const removed = await fanout.history('chat:x', { limit: -1 })
  t.same(removed.publications, [])
  t.same(removed.position, page.position, 'the position stays')
  t.same(await fanout.presenceStats('chat:x'), { numClients: 0, numUsers: 0 })
})
