import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import t, { type Test } from 'tap'
import { chromium, type Browser, type Locator, type Page } from 'playwright-core'
import { runExample, until, type RunningExample } from './helpers.js'
import { freePort, startRedis } from './redis-helpers.js'

// The example's channels page (example/channels.html), driven in headless
// Chromium: centrifuge-js served by the example server, two users on
// chat:lobby, presence, join and leave, and what the page says after the
// server restarts (without Redis and with it).
//
// The browser is Debian's (`apt-get install -y chromium`), launched by
// playwright-core, which downloads none. Without it the tests are skipped,
// saying why, except under CI (CI set), where that is a failure: CI must
// install it. FANOUT_SKIP_BROWSER=1 skips them anywhere; CHROMIUM_PATH
// names another executable.

const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const missing = existsSync(executablePath) ? undefined : `no Chromium at ${executablePath}: install Debian's (apt-get install -y chromium) or set CHROMIUM_PATH`
const skip = process.env.FANOUT_SKIP_BROWSER === '1'
  ? 'FANOUT_SKIP_BROWSER=1'
  : missing !== undefined && (process.env.CI === undefined || process.env.CI === '') ? missing : false

/** How long any one wait on the page may take (a restart and the SDK's back-off included). */
const WAIT = 15_000

// Three browser sessions, two example servers each and a Redis: longer than
// .taprc's 60 s per file when the machine is busy (each step waits up to WAIT).
t.setTimeout(180_000)

const example = '../example/server.ts'

async function launch (t: Test): Promise<Browser> {
  if (missing !== undefined) throw new Error(`${missing} (CI must install it before npm test)`)
  const browser = await chromium.launch({ executablePath, headless: true, timeout: WAIT })
  t.teardown(async () => { await browser.close() })
  return browser
}

interface DemoPage {
  page: Page
  /** Exceptions the page's scripts threw. */
  errors: string[]
  /** The section of one channel. */
  channel: (name?: string) => Locator
}

/** The channels page as `user`, in a browser context of its own (another browser, as it were), once connected; `codec`: the SDK build it runs. */
async function openPage (browser: Browser, base: string, user: string, codec: 'json' | 'protobuf' = 'json'): Promise<DemoPage> {
  const context = await browser.newContext()
  context.setDefaultTimeout(WAIT)
  const page = await context.newPage()
  const errors: string[] = []
  page.on('pageerror', (err) => { errors.push(err.message) })
  await page.goto(`${base}/channels?user=${user}&codec=${codec}`)
  await page.locator('#state', { hasText: /^connected$/ }).waitFor()
  await page.locator('#detail', { hasText: codec === 'protobuf' ? /, Protobuf$/ : /, JSON$/ }).waitFor()
  return { page, errors, channel: (name = 'chat:lobby') => page.locator(`section[data-channel="${name}"]`) }
}

async function subscribe (demo: DemoPage, name = 'chat:lobby'): Promise<void> {
  await demo.page.fill('#channel', name)
  await demo.page.click('#subscribe button')
  await demo.channel(name).locator('.sub-state', { hasText: /^subscribed$/ }).waitFor()
}

async function publish (demo: DemoPage, text: string, name = 'chat:lobby'): Promise<void> {
  const section = demo.channel(name)
  await section.locator('.publish .text').fill(text)
  await section.locator('.publish button').click()
  // The page clears the input once the server acknowledged the publication.
  await until(async () => await section.locator('.publish .text').inputValue() === '', `the publication of ${JSON.stringify(text)} to be acknowledged`, WAIT)
}

/** Waits for a line of the channel's log, and returns every publication shown (text and publisher, in order). */
async function publications (demo: DemoPage, waitFor: string, name = 'chat:lobby'): Promise<string[]> {
  const log = demo.channel(name).locator('.log li.publication')
  await log.filter({ hasText: waitFor }).first().waitFor()
  const users = await log.locator('b').allTextContents()
  const bodies = await log.locator('.body').allTextContents()
  return bodies.map((body, i) => `${users[i] ?? ''}${body}`)
}

async function presence (demo: DemoPage, name = 'chat:lobby'): Promise<string[]> {
  return (await demo.channel(name).locator('.presence li').allTextContents()).map((item) => item.replace(/ \(.*\)$/, '')).sort()
}

/** Until the presence list shows exactly `users`. */
async function presenceIs (demo: DemoPage, users: string[], name = 'chat:lobby'): Promise<void> {
  let shown: string[] = []
  await until(async () => {
    shown = await presence(demo, name)
    return JSON.stringify(shown) === JSON.stringify(users)
  }, `presence of ${name} to be ${JSON.stringify(users)}`, WAIT).catch((err: Error) => {
    throw new Error(`${err.message}; it shows ${JSON.stringify(shown)}`)
  })
}

async function stop (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  await exited
}

t.test('two users on chat:lobby, one on the SDK\'s JSON build and one on its Protobuf build: publications, presence, join and leave', { skip }, async (t) => {
  const browser = await launch(t)
  const server = await runExample(t, example, { PORT: '0', METRICS_PORT: String(await freePort()) })
  const alice = await openPage(browser, server.base, 'alice')
  const bob = await openPage(browser, server.base, 'bob', 'protobuf')

  await subscribe(alice)
  t.match(await alice.channel().locator('.recovery').textContent(), /recoverable: true/, 'the namespace recovers')
  await subscribe(bob)
  await alice.channel().locator('.log li.join', { hasText: 'bob joined' }).waitFor()
  await presenceIs(alice, ['alice', 'bob'])
  await presenceIs(bob, ['alice', 'bob'])
  t.pass('each page sees the other join, and both in presence')

  await publish(bob, 'hello from bob')
  t.same(await publications(alice, 'hello from bob'), ['bob: hello from bob'], 'alice sees bob\'s publication, with his name')
  await publish(alice, 'hi bob')
  t.same(await publications(bob, 'hi bob'), ['bob: hello from bob', 'alice: hi bob'], 'bob sees both, in order, once')

  await alice.page.click('#toggle') // Disconnect: the subscription stays, to be recovered
  await alice.page.locator('#state', { hasText: /^disconnected$/ }).waitFor()
  await bob.channel().locator('.log li.leave', { hasText: 'alice left' }).waitFor()
  await publish(bob, 'while alice was away')
  await alice.page.click('#toggle') // Connect
  await alice.channel().locator('.recovery', { hasText: 'recovered: true' }).waitFor()
  t.same(await publications(alice, 'while alice was away'), ['bob: hello from bob', 'alice: hi bob', 'bob: while alice was away'], 'alice recovers what she missed, once')
  await presenceIs(bob, ['alice', 'bob'])

  await bob.channel().locator('.leave-channel').click()
  await alice.channel().locator('.log li.leave', { hasText: 'bob left' }).waitFor()
  await presenceIs(alice, ['alice'])
  t.pass('leaving the channel is a leave for the others')

  await subscribe(bob)
  await presenceIs(alice, ['alice', 'bob'])
  t.equal(await alice.channel().locator('.log li.join', { hasText: 'bob joined' }).count(), 2, 'bob joined again')
  await bob.page.context().close()
  await alice.channel().locator('.log li.leave', { hasText: 'bob left' }).nth(1).waitFor()
  await presenceIs(alice, ['alice'])
  t.pass('closing the page is a leave too')

  t.same([...alice.errors, ...bob.errors], [], 'no script error on either page')
})

t.test('after a restart without Redis the page reports recovered: false (the stream is new)', { skip }, async (t) => {
  const browser = await launch(t)
  const env = { PORT: String(await freePort()), METRICS_PORT: String(await freePort()) }
  const first = await runExample(t, example, env)
  const alice = await openPage(browser, first.base, 'alice')
  await subscribe(alice)
  await publish(alice, 'before the restart')
  await publications(alice, 'before the restart')

  await stop(first.child)
  await alice.page.locator('#state', { hasText: /^connecting$/ }).waitFor()
  t.match(await alice.page.locator('#detail').textContent(), /3001: shutdown/, 'the SDK was told the server is shutting down')
  await runExample(t, example, env)

  const recovery = alice.channel().locator('.recovery', { hasText: 'recovered: false' })
  await recovery.waitFor()
  t.match(await recovery.textContent(), /resubscribed: recovered: false/, 'the page says it could not recover')
  t.equal(await alice.page.locator('#state').textContent(), 'connected', 'connected again, with a token from /demo/token (the new server has a new secret)')
  t.same(await publications(alice, 'before the restart'), ['alice: before the restart'], 'what was shown stays, once')
  t.same(alice.errors, [], 'no script error')
})

t.test('after a restart with Redis the page recovers what was published meanwhile, once', { skip }, async (t) => {
  const browser = await launch(t)
  const redis = await startRedis(t)
  const env = { PORT: String(await freePort()), METRICS_PORT: String(await freePort()), REDIS_URL: redis.url }
  const first = await runExample(t, example, env)
  // A second instance on the same Redis publishes while the first is down.
  const other: RunningExample = await runExample(t, example, { PORT: '0', METRICS_PORT: String(await freePort()), REDIS_URL: redis.url })
  const alice = await openPage(browser, first.base, 'alice')
  await subscribe(alice)
  await publish(alice, 'one')
  await publications(alice, 'one')

  await stop(first.child)
  await alice.page.locator('#state', { hasText: /^connecting$/ }).waitFor()
  for (const text of ['two', 'three']) {
    const response = await fetch(`${other.base}/broadcast`, {
      method: 'POST',
      headers: { authorization: `Bearer ${other.serviceToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ channel: 'chat:lobby', data: { text } })
    })
    t.equal(response.status, 202, `"${text}" published on the other instance`)
  }
  await runExample(t, example, env)

  const recovery = alice.channel().locator('.recovery', { hasText: 'recovered: true' })
  await recovery.waitFor()
  t.match(await recovery.textContent(), /publications missed meanwhile follow/, 'the page says it recovered')
  t.same(await publications(alice, 'three'), ['alice: one', 'server: two', 'server: three'], 'the missed publications, once each, in order')
  t.same(alice.errors, [], 'no script error')
})
