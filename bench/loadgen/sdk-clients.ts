// One load-generator process of real centrifuge-js clients (ws as their
// WebSocket, from one source address 127.0.0.x), each subscribed to a few
// channels. Every subscription keeps account of what it was given, as an
// application relying on recovery would:
// - the offsets of its `publication` events (live ones, and the recovered
//   ones the SDK emits right after `subscribed`), which must follow each
//   other by one: an offset at or below the last is a duplicate, one further
//   on a gap the client was never told of (a silent gap);
// - its `subscribed` events: recovered (the missed publications follow),
//   or told it could not recover (`wasRecovering` and not `recovered`: the
//   application knows it lost some and reloads), which moves it to the
//   stream position the server gives;
// - a running checksum of the publications' `seq`, in the order received,
//   which the runner compares with the channel's history.
// It also counts the close codes that made its clients reconnect. Latency is
// post-to-receipt from the `t` each publication carries (same machine clock).
import { createSigner } from 'fast-jwt'
import { Centrifuge, type PublicationContext, type SubscribedContext } from 'centrifuge'
import { WebSocket } from 'ws'
import { encode, newHistogram, recordMs } from './histogram.js'

export interface SdkClientsConfig {
  /** Client i connects to urls[(firstIndex + i) % urls.length]. */
  urls: string[]
  jwtSecret: string
  count: number
  firstIndex: number
  /** Channels of client i: channelSets[(firstIndex + i) % channelSets.length]. */
  channelSets: string[][]
  localAddress: string
  /** Clients started per second. */
  connectRate: number
  /** Extra centrifuge-js options (the SDK's defaults otherwise: its backoff, its timeouts). */
  sdk?: Record<string, unknown>
}

/** One subscription's account. */
export interface SubscriptionAccount {
  client: number
  channel: string
  /** Offset the subscription started after (its first position), and its epoch. */
  startOffset: number
  startEpoch: string
  /** Where it stands now. */
  offset: number
  epoch: string
  received: number
  duplicates: number
  /** Times an offset jumped ahead without the client being told, and publications so skipped. */
  silentGaps: number
  silentMissing: number
  /** `subscribed` events after the first: recovered, told it could not recover, or not recovering at all. */
  recovered: number
  toldNotRecovered: number
  resubscribedWithoutRecovery: number
  /** Each time it was told it could not recover: the position it held, and the one it was moved to. */
  told: Array<{ fromEpoch: string, fromOffset: number, toEpoch: string, toOffset: number }>
  /** Publications delivered by the SDK right after a recovered `subscribed` (part of `received`). */
  replayed: number
  /** A recovered `subscribed` whose position was not the one this subscription held. */
  positionMismatches: number
  /** `hasRecoveredPublications` said one thing and the events another. */
  replayFlagMismatches: number
  /** `subscribed` contexts that carried publications themselves (centrifuge-js 5 emits them as `publication` events instead). */
  publicationsInSubscribedContext: number
  /** seq checksum, in the order received (first epoch only while no loss was told). */
  checksum: number
  /** Still subscribed at the report. */
  subscribed: boolean
}

const histogram = newHistogram()
const accounts: SubscriptionAccount[] = []
const closeCodes: Record<string, number> = {}
const subscribingCodes: Record<string, number> = {}
const errors: Record<string, number> = {}
const clients: Centrifuge[] = []
/** Milliseconds each subscription spent between losing its subscription and being subscribed again. */
const outages: number[] = []
let connected = 0
let subscribedOnce = 0
const now = (): number => performance.timeOrigin + performance.now()

function bump (counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1
}

/** ws with this process's source address and no compression (the SDK passes only url and protocols). */
function websocketFrom (localAddress: string): typeof WebSocket {
  return class LocalWebSocket extends WebSocket {
    constructor (url: string, protocols?: string | string[]) {
      super(url, protocols, { localAddress, perMessageDeflate: false })
    }
  } as unknown as typeof WebSocket
}

function track (client: Centrifuge, index: number, channel: string): void {
  const account: SubscriptionAccount = {
    client: index,
    channel,
    startOffset: -1,
    startEpoch: '',
    offset: -1,
    epoch: '',
    received: 0,
    duplicates: 0,
    silentGaps: 0,
    silentMissing: 0,
    recovered: 0,
    toldNotRecovered: 0,
    resubscribedWithoutRecovery: 0,
    told: [],
    replayed: 0,
    positionMismatches: 0,
    replayFlagMismatches: 0,
    publicationsInSubscribedContext: 0,
    checksum: 0,
    subscribed: false
  }
  accounts.push(account)
  let lostAt: number | undefined
  let replaying = false
  let replayedNow = 0
  const sub = client.newSubscription(channel)
  sub.on('subscribed', (ctx: SubscribedContext) => {
    account.subscribed = true
    if (lostAt !== undefined) outages.push(now() - lostAt)
    lostAt = undefined
    const position = ctx.streamPosition ?? { offset: 0, epoch: '' }
    if ('publications' in ctx) account.publicationsInSubscribedContext++
    if (account.startOffset === -1) {
      subscribedOnce++
      account.startOffset = position.offset
      account.startEpoch = position.epoch
      account.offset = position.offset
      account.epoch = position.epoch
    } else if (ctx.wasRecovering && ctx.recovered) {
      account.recovered++
      // The reply holds the position recovered from; the publications follow.
      if (position.offset !== account.offset || position.epoch !== account.epoch) account.positionMismatches++
    } else if (ctx.wasRecovering) {
      account.toldNotRecovered++
      account.told.push({ fromEpoch: account.epoch, fromOffset: account.offset, toEpoch: position.epoch, toOffset: position.offset })
      account.offset = position.offset
      account.epoch = position.epoch
    } else {
      account.resubscribedWithoutRecovery++
      account.offset = position.offset
      account.epoch = position.epoch
    }
    // The SDK delivers recovered publications synchronously after this event.
    replaying = true
    replayedNow = 0
    const flagged = ctx.hasRecoveredPublications
    queueMicrotask(() => {
      replaying = false
      if (flagged !== (replayedNow > 0)) account.replayFlagMismatches++
    })
  })
  sub.on('unsubscribed', () => { account.subscribed = false })
  sub.on('subscribing', (ctx) => {
    if (account.subscribed) lostAt = now()
    account.subscribed = false
    bump(subscribingCodes, String(ctx.code))
  })
  sub.on('error', (ctx) => { bump(errors, `subscription ${ctx.type}: ${ctx.error.message}`) })
  sub.on('publication', (ctx: PublicationContext) => {
    const data = ctx.data as { seq: number, t: number }
    recordMs(histogram, now() - data.t)
    if (replaying) { account.replayed++; replayedNow++ }
    const offset = ctx.offset
    if (offset === undefined) { // a channel without history: nothing to check
      account.received++
      return
    }
    if (offset <= account.offset) {
      account.duplicates++
      return
    }
    if (offset > account.offset + 1) {
      account.silentGaps++
      account.silentMissing += offset - account.offset - 1
    }
    account.offset = offset
    account.received++
    account.checksum = (Math.imul(account.checksum, 31) + data.seq) >>> 0
  })
  sub.subscribe()
}

function open (config: SdkClientsConfig, i: number, sign: (payload: object) => string): void {
  const index = config.firstIndex + i
  const token = sign({ sub: `u${index}` })
  const client = new Centrifuge(config.urls[index % config.urls.length] as string, {
    websocket: websocketFrom(config.localAddress),
    token,
    ...config.sdk
  })
  let first = true
  client.on('connected', () => { if (first) { first = false; connected++ } })
  client.on('connecting', (ctx) => { if (ctx.code !== 0) bump(closeCodes, String(ctx.code)) })
  client.on('error', (ctx) => { bump(errors, `${ctx.type}: ${ctx.error.message}`) })
  for (const channel of config.channelSets[index % config.channelSets.length] as string[]) track(client, index, channel)
  client.connect()
  clients.push(client)
}

function start (config: SdkClientsConfig): void {
  const sign = createSigner({ key: config.jwtSecret })
  let opened = 0
  const perTick = Math.max(1, Math.round(config.connectRate / 100))
  const timer = setInterval(() => {
    for (let i = 0; i < perTick && opened < config.count; i++, opened++) open(config, opened, sign)
    if (opened >= config.count) clearInterval(timer)
  }, 10)
}

process.on('message', (message: { cmd: string, config?: SdkClientsConfig }) => {
  if (message.cmd === 'start' && message.config !== undefined) start(message.config)
  else if (message.cmd === 'progress') {
    const subscribed = accounts.filter((a) => a.subscribed).length
    process.send?.({ opened: clients.length, connected, subscribedOnce, subscribed, subscriptions: accounts.length, received: accounts.reduce((sum, a) => sum + a.received, 0) })
  } else if (message.cmd === 'report') {
    process.send?.({ accounts, closeCodes, subscribingCodes, errors, outages, histogram: encode(histogram) })
  } else if (message.cmd === 'reset') {
    histogram.reset()
    process.send?.({ reset: true })
  } else if (message.cmd === 'close') {
    for (const client of clients) client.disconnect()
    process.exit(0)
  }
})
process.send?.({ ready: true })
