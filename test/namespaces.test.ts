// Channel namespaces: the `channels` option's defaults and checks, and which
// namespace a channel name resolves to (Centrifugo's rules), with a property
// test holding lookup to a model of those rules for any string.
import fc from 'fast-check'
import t from 'tap'
import { resolveChannels, type AuthorizePublish, type AuthorizeSubscribe, type ChannelLookup, type ChannelsOptions, type ResolvedChannels } from '../lib/channels/namespaces.js'
import { fuzzParameters } from './fuzz/harness.js'

const THIRTY_DAYS = 30 * 24 * 60 * 60 * 1000

function thrown (value: unknown): unknown {
  try {
    resolveChannels(value as ChannelsOptions)
  } catch (err) {
    return err
  }
  return undefined
}

// A test name with every character outside printable ASCII escaped (TAP is line-based).
function named (channel: string): string {
  return JSON.stringify(channel).replace(/[^\x20-\x7e]/g, (unit) => '\\u' + unit.charCodeAt(0).toString(16).padStart(4, '0'))
}

function found (result: ChannelLookup): Extract<ChannelLookup, { ok: true }> {
  if (!result.ok) throw new Error(`expected a namespace, got ${result.code}: ${result.reason}`)
  return result
}

t.test('defaults: channels without a namespace allowed, every option off, Centrifugo\'s limits', async (t) => {
  for (const value of [undefined, {}, { default: {}, namespaces: {} }]) {
    const channels = resolveChannels(value)
    t.match(channels, {
      maxChannelLength: 255,
      maxPerConnection: 128,
      historyMaxLimit: 300,
      recoveryMaxPublications: 300,
      presenceTtl: 60_000
    })
    t.equal(channels.namespaces.length, 1, 'only the default namespace')
    t.strictSame({ ...channels.namespaces[0] }, {
      name: '',
      history: undefined,
      recovery: false,
      positioning: false,
      presence: false,
      joinLeave: false,
      forcePushJoinLeave: false,
      subscribe: 'user',
      publish: false,
      userLimited: false
    })
  }
})

t.test('a namespace with history: historyMetaTtl defaults to 30 days, recovery implies positioning', async (t) => {
  const channels = resolveChannels({
    namespaces: {
      chat: { historySize: 100, historyTtl: 300_000, recovery: true, presence: true, joinLeave: true, forcePushJoinLeave: true, userLimited: true, subscribe: 'token', publish: true },
      feed: { historySize: 1, historyTtl: 1000, historyMetaTtl: 1000, positioning: true },
      'a.b-c_d': {}
    }
  })
  t.same(channels.namespaces.map((namespace) => namespace.name), ['', 'chat', 'feed', 'a.b-c_d'], 'the default first, then in the order given')
  const [, chat, feed] = channels.namespaces
  t.strictSame({ ...chat }, {
    name: 'chat',
    history: { size: 100, ttl: 300_000, metaTtl: THIRTY_DAYS },
    recovery: true,
    positioning: true,
    presence: true,
    joinLeave: true,
    forcePushJoinLeave: true,
    subscribe: 'token',
    publish: true,
    userLimited: true
  })
  t.strictSame(feed.history, { size: 1, ttl: 1000, metaTtl: 1000 }, 'historyMetaTtl may equal historyTtl')
  t.equal(feed.positioning, true)
  t.equal(feed.recovery, false)
  t.equal(resolveChannels({ default: { historySize: 1, historyTtl: 1000, recovery: true, positioning: true } }).namespaces[0].positioning, true, 'positioning: true beside recovery is accepted')
})

t.test('the limits take other values within their ranges', async (t) => {
  const channels = resolveChannels({ maxChannelLength: 65_535, maxPerConnection: 1, historyMaxLimit: 100_000, recoveryMaxPublications: 1, presenceTtl: 1000 })
  t.match(channels, { maxChannelLength: 65_535, maxPerConnection: 1, historyMaxLimit: 100_000, recoveryMaxPublications: 1, presenceTtl: 1000 })
  t.equal(resolveChannels({ default: { historySize: 100_000, historyTtl: 1 } }).namespaces[0].history?.size, 100_000)
})

t.test('function rules are kept as given', async (t) => {
  const subscribe: AuthorizeSubscribe = (connection, channel) => connection.userId === channel
  const publish: AuthorizePublish = async () => await Promise.resolve(false)
  const channels = resolveChannels({ default: { subscribe, publish }, namespaces: { open: { subscribe: 'user', publish: true } } })
  t.equal(channels.namespaces[0].subscribe, subscribe)
  t.equal(channels.namespaces[0].publish, publish)
  t.equal(channels.namespaces[1].subscribe, 'user')
  t.equal(channels.namespaces[1].publish, true)
})

t.test('default: false refuses channels without a namespace, and only those', async (t) => {
  const channels = resolveChannels({ default: false, namespaces: { chat: {} } })
  t.same(channels.namespaces.map((namespace) => namespace.name), ['chat'], 'no default namespace to resolve to')
  for (const channel of ['news', ':news', '$news', '#42']) {
    t.strictSame(channels.lookup(channel), { ok: false, code: 102, reason: 'channels without a namespace are refused (channels.default is false)' }, channel)
  }
  t.equal(found(channels.lookup('chat:room')).namespace.name, 'chat')
})

t.test('everything resolved is frozen, and two resolutions share nothing', async (t) => {
  const channels = resolveChannels({ default: { historySize: 5, historyTtl: 1000, userLimited: true } })
  const other = resolveChannels({ default: false })
  t.ok(Object.isFrozen(channels))
  t.ok(Object.isFrozen(channels.namespaces))
  t.ok(Object.isFrozen(channels.namespaces[0]))
  t.ok(Object.isFrozen(channels.namespaces[0].history))
  const result = found(channels.lookup('dialog#1,2'))
  t.ok(Object.isFrozen(result))
  t.ok(Object.isFrozen(result.users))
  t.ok(Object.isFrozen(channels.lookup('')))
  t.ok(Object.isFrozen(channels.lookup('x:y')))
  t.equal(other.lookup('news').ok, false, 'the second instance refuses what the first allows')
  t.equal(channels.lookup('news').ok, true)
})

t.test('bad options throw FST_FANOUT_INVALID_OPTION naming the full option path and what to fix', async (t) => {
  const history = { historySize: 10, historyTtl: 1000 }
  const cases: Array<[string, unknown, RegExp]> = [
    // The option and its names
    ['channels not an object', 'chat', /option `channels` must be an object: \{ default, namespaces, maxChannelLength, /],
    ['channels null', null, /option `channels` must be an object/],
    ['typo namespace', { namespace: {} }, /option `channels.namespace` is unknown; did you mean `channels.namespaces`\?/],
    ['typo maxChannelLenght', { maxChannelLenght: 10 }, /option `channels.maxChannelLenght` is unknown; did you mean `channels.maxChannelLength`\?/],
    ['wrong case', { PresenceTtl: 1000 }, /did you mean `channels.presenceTtl`\?/],
    ['unknown, nothing close', { redis: 'redis://x' }, /option `channels.redis` is unknown; the options are default, namespaces, maxChannelLength, maxPerConnection, historyMaxLimit, recoveryMaxPublications, presenceTtl/],
    ['typo in a namespace', { namespaces: { chat: { histroySize: 10 } } }, /option `channels.namespaces.chat.histroySize` is unknown; did you mean `channels.namespaces.chat.historySize`\?/],
    ['Centrifugo\'s name in a namespace', { namespaces: { chat: { history_size: 10 } } }, /option `channels.namespaces.chat.history_size` is unknown; did you mean `channels.namespaces.chat.historySize`\?/],
    ['unknown in a namespace, nothing close', { namespaces: { chat: { channelRegex: '.*' } } }, /option `channels.namespaces.chat.channelRegex` is unknown; the options are historySize, historyTtl, historyMetaTtl, recovery, positioning, presence, joinLeave, forcePushJoinLeave, subscribe, publish, userLimited/],
    ['typo in default', { default: { presense: true } }, /option `channels.default.presense` is unknown; did you mean `channels.default.presence`\?/],
    ['default a string', { default: 'public' }, /option `channels.default` must be an object of namespace options, e.g. .*, or false to refuse channels without a namespace/],
    ['default true', { default: true }, /option `channels.default` must be an object of namespace options/],
    ['namespace not an object', { namespaces: { chat: true } }, /option `channels.namespaces.chat` must be an object of namespace options, e.g. \{ historySize: 100, historyTtl: 300000, recovery: true \}$/],
    ['namespaces an array', { namespaces: [{ name: 'chat' }] }, /option `channels.namespaces` must be an object of namespace options by name, e.g. .*, got \[\{"name":"chat"\}\]/],
    ['namespaces a string', { namespaces: 'chat' }, /option `channels.namespaces` must be an object of namespace options by name.*, got "chat"/],

    // Namespace names (Centrifugo's ^[-a-zA-Z0-9_.]{2,}$)
    ['one-letter name', { namespaces: { a: {} } }, /option `channels.namespaces.a` has an invalid namespace name: use 2 or more letters, digits, '-', '_' or '.' \(Centrifugo's rule, \/\^\[-a-zA-Z0-9_.\]\{2,\}\$\/\), got "a"/],
    ['empty name', { namespaces: { '': {} } }, /option `channels.namespaces.` has an invalid namespace name.*got ""/],
    ['name with the boundary', { namespaces: { 'chat:room': {} } }, /`channels.namespaces.chat:room` has an invalid namespace name/],
    ['name with the private prefix', { namespaces: { $chat: {} } }, /`channels.namespaces.\$chat` has an invalid namespace name/],
    ['name with #', { namespaces: { 'chat#1': {} } }, /`channels.namespaces.chat#1` has an invalid namespace name/],
    ['name with a space', { namespaces: { 'my chat': {} } }, /`channels.namespaces.my chat` has an invalid namespace name/],
    ['name not ASCII', { namespaces: { über: {} } }, /`channels.namespaces.über` has an invalid namespace name/],
    ['name too long for any channel', { maxChannelLength: 5, namespaces: { abcde: {} } }, /option `channels.namespaces.abcde` has a name too long for any of its channels \(`abcde:...`\) to fit in channels.maxChannelLength \(5 bytes\): shorten it or raise maxChannelLength/],

    // History
    ['negative historySize', { default: { historySize: -1 } }, /option `channels.default.historySize` must be an integer number of publications from 0 to 100000, got -1/],
    ['huge historySize', { namespaces: { chat: { historySize: 100_001, historyTtl: 1000 } } }, /option `channels.namespaces.chat.historySize` must be an integer number of publications from 0 to 100000, got 100001/],
    ['fractional historySize', { default: { historySize: 1.5 } }, /`channels.default.historySize` must be an integer/],
    ['historySize a string', { default: { historySize: '10' } }, /`channels.default.historySize` must be an integer.*got "10"/],
    ['historySize without historyTtl', { namespaces: { chat: { historySize: 10 } } }, /option `channels.namespaces.chat.historyTtl` is required with historySize: set how many milliseconds/],
    ['zero historyTtl', { namespaces: { chat: { historySize: 10, historyTtl: 0 } } }, /option `channels.namespaces.chat.historyTtl` must be an integer number of milliseconds from 1 to 315360000000, got 0/],
    ['historyTtl over ten years', { default: { historySize: 10, historyTtl: 315_360_000_001 } }, /`channels.default.historyTtl` must be an integer number of milliseconds from 1 to 315360000000/],
    ['historyTtl in seconds as a string', { default: { historySize: 10, historyTtl: '30s' } }, /`channels.default.historyTtl` must be an integer.*got "30s"/],
    ['historyTtl without historySize', { namespaces: { chat: { historyTtl: 1000 } } }, /option `channels.namespaces.chat.historyTtl` has no effect without history: set historySize too \(publications kept per channel\), or remove it/],
    ['historyTtl with historySize 0', { namespaces: { chat: { historySize: 0, historyTtl: 1000 } } }, /`channels.namespaces.chat.historyTtl` has no effect without history/],
    ['historyMetaTtl without history', { default: { historyMetaTtl: 1000 } }, /option `channels.default.historyMetaTtl` has no effect without history/],
    ['historyMetaTtl below historyTtl', { namespaces: { chat: { ...history, historyMetaTtl: 999 } } }, /option `channels.namespaces.chat.historyMetaTtl` must be at least historyTtl \(1000\), got 999: the stream position must outlive the publications/],
    ['historyTtl beyond the default historyMetaTtl', { namespaces: { chat: { historySize: 10, historyTtl: THIRTY_DAYS + 1 } } }, /option `channels.namespaces.chat.historyMetaTtl` must be at least historyTtl \(2592000001\), got 2592000000 \(its default, 30 days\)/],
    ['zero historyMetaTtl', { default: { ...history, historyMetaTtl: 0 } }, /`channels.default.historyMetaTtl` must be an integer number of milliseconds from 1/],

    // Contradictions
    ['recovery without history', { namespaces: { chat: { recovery: true } } }, /option `channels.namespaces.chat.recovery` needs history: set historySize and historyTtl too/],
    ['positioning without history', { default: { positioning: true } }, /option `channels.default.positioning` needs history: set historySize and historyTtl too/],
    ['positioning false beside recovery', { default: { ...history, recovery: true, positioning: false } }, /option `channels.default.positioning` cannot be false when recovery is true \(a recoverable subscription is positioned\): remove it/],
    ['forcePushJoinLeave without joinLeave', { namespaces: { chat: { forcePushJoinLeave: true } } }, /option `channels.namespaces.chat.forcePushJoinLeave` needs joinLeave: true/],
    ['forcePushJoinLeave with joinLeave false', { namespaces: { chat: { joinLeave: false, forcePushJoinLeave: true } } }, /`channels.namespaces.chat.forcePushJoinLeave` needs joinLeave/],

    // Booleans and rules
    ['recovery a string', { default: { ...history, recovery: 'yes' } }, /option `channels.default.recovery` must be true or false, got "yes"/],
    ['positioning a number', { default: { ...history, positioning: 1 } }, /`channels.default.positioning` must be true or false, got 1/],
    ['presence a number', { default: { presence: 1 } }, /option `channels.default.presence` must be true or false, got 1/],
    ['joinLeave a string', { default: { joinLeave: 'true' } }, /`channels.default.joinLeave` must be true or false, got "true"/],
    ['forcePushJoinLeave a string', { default: { joinLeave: true, forcePushJoinLeave: 'on' } }, /`channels.default.forcePushJoinLeave` must be true or false/],
    ['userLimited a string', { namespaces: { dialog: { userLimited: 'true' } } }, /option `channels.namespaces.dialog.userLimited` must be true or false, got "true"/],
    ['subscribe users', { namespaces: { chat: { subscribe: 'users' } } }, /option `channels.namespaces.chat.subscribe` must be 'user', 'token' or a function \(connection, channel\) => boolean, got "users"/],
    ['subscribe true', { default: { subscribe: true } }, /`channels.default.subscribe` must be 'user', 'token' or a function.*got true/],
    ['subscribe a bigint', { default: { subscribe: 1n } }, /`channels.default.subscribe` must be .*got 1$/],
    ['subscribe a symbol', { default: { subscribe: Symbol('user') } }, /`channels.default.subscribe` must be .*got Symbol\(user\)$/],
    ['publish a string', { namespaces: { chat: { publish: 'yes' } } }, /option `channels.namespaces.chat.publish` must be true, false or a function \(connection, channel, data\) => boolean, got "yes"/],
    ['publish an object', { default: { publish: {} } }, /`channels.default.publish` must be true, false or a function.*got \{\}/],

    // Limits
    ['zero maxChannelLength', { maxChannelLength: 0 }, /option `channels.maxChannelLength` must be an integer number of bytes from 1 to 65535, got 0/],
    ['huge maxChannelLength', { maxChannelLength: 65_536 }, /`channels.maxChannelLength` must be an integer number of bytes from 1 to 65535, got 65536/],
    ['fractional maxChannelLength', { maxChannelLength: 25.5 }, /`channels.maxChannelLength` must be an integer/],
    ['zero maxPerConnection', { maxPerConnection: 0 }, /option `channels.maxPerConnection` must be an integer number of subscriptions from 1 to 2147483647, got 0/],
    ['Infinity maxPerConnection', { maxPerConnection: Infinity }, /`channels.maxPerConnection` must be an integer/],
    ['zero historyMaxLimit', { historyMaxLimit: 0 }, /option `channels.historyMaxLimit` must be an integer number of publications from 1 to 100000, got 0/],
    ['-1 historyMaxLimit', { historyMaxLimit: -1 }, /`channels.historyMaxLimit` must be an integer number of publications from 1/],
    ['huge historyMaxLimit', { historyMaxLimit: 100_001 }, /`channels.historyMaxLimit` must be an integer number of publications from 1 to 100000/],
    ['zero recoveryMaxPublications', { recoveryMaxPublications: 0 }, /option `channels.recoveryMaxPublications` must be an integer number of publications from 1 to 100000, got 0/],
    ['presenceTtl in seconds', { presenceTtl: 60 }, /option `channels.presenceTtl` must be an integer number of milliseconds from 1000 to 2147483647, got 60/],
    ['presenceTtl a string', { presenceTtl: '60s' }, /`channels.presenceTtl` must be an integer.*got "60s"/]
  ]
  for (const [name, options, message] of cases) {
    const error = thrown(options)
    t.match(error, { code: 'FST_FANOUT_INVALID_OPTION', message }, name)
    t.ok(error instanceof TypeError, `${name}: a TypeError`)
  }
})

t.test('namespace names: Centrifugo\'s rule, dots included', async (t) => {
  const names = ['ab', 'a.b', 'chat-2', 'snake_case', 'UPPER', '42', '--', '..']
  const channels = resolveChannels({ namespaces: Object.fromEntries([...names, 'x'.repeat(254)].map((name) => [name, {}])) })
  for (const name of names) t.equal(found(channels.lookup(`${name}:room`)).namespace.name, name, name)
  t.equal(found(channels.lookup('x'.repeat(254) + ':')).namespace.name, 'x'.repeat(254), 'a name one byte shorter than maxChannelLength fits')
})

t.test('lookup: default and namespaced channels, split at the first colon', async (t) => {
  const channels = resolveChannels({ namespaces: { chat: { presence: true }, 'a.b': {} } })
  const [defaults, chat, dotted] = channels.namespaces
  const cases: Array<[string, unknown]> = [
    ['news', defaults],
    ['news#42', defaults],
    [':news', defaults], // Centrifugo reads an empty namespace name as no namespace
    ['chat:room1', chat],
    ['chat:', chat],
    ['chat:a:b', chat],
    ['chat::', chat],
    ['a.b:c', dotted],
    ['café', defaults],
    ['😀', defaults],
    ['/users/mario', defaults]
  ]
  for (const [channel, namespace] of cases) {
    t.strictSame(channels.lookup(channel), { ok: true, namespace, users: undefined, private: false }, channel)
    t.equal(found(channels.lookup(channel)).namespace, namespace, `${channel}: the resolved namespace itself`)
  }
})

t.test('lookup: a namespace that is not configured is 102 unknown channel', async (t) => {
  const channels = resolveChannels({ namespaces: { chat: {} } })
  const cases: Array<[string, string]> = [
    ['xxx:hello', 'xxx'],
    ['Chat:room', 'Chat'],
    ['chat#1:room', 'chat#1'],
    ['c:room', 'c'],
    ['constructor:x', 'constructor'],
    ['__proto__:x', '__proto__'],
    ['toString:x', 'toString'],
    ['hasOwnProperty:x', 'hasOwnProperty'],
    ['$$chat:x', '$chat']
  ]
  for (const [channel, name] of cases) {
    t.strictSame(channels.lookup(channel), { ok: false, code: 102, reason: `namespace ${JSON.stringify(name)} is not configured (channels.namespaces)` }, channel)
  }
})

t.test('a namespace may be named like an Object.prototype property', async (t) => {
  const channels = resolveChannels({ namespaces: JSON.parse('{"__proto__": {"presence": true}, "constructor": {}}') })
  t.equal(found(channels.lookup('__proto__:x')).namespace.presence, true)
  t.equal(found(channels.lookup('constructor:x')).namespace.name, 'constructor')
  t.equal(channels.lookup('toString:x').ok, false)
})

t.test('lookup: the $ private prefix is not part of the namespace name, and is reported', async (t) => {
  const channels = resolveChannels({ namespaces: { chat: {} } })
  const [defaults, chat] = channels.namespaces
  const cases: Array<[string, unknown]> = [['$news', defaults], ['$chat:room', chat], ['$', defaults], ['$:x', defaults], ['news$', defaults]]
  for (const [channel, namespace] of cases) {
    t.strictSame(channels.lookup(channel), { ok: true, namespace, users: undefined, private: channel.startsWith('$') }, channel)
  }
})

t.test('lookup: user-limited channels list the users after the last #', async (t) => {
  const channels = resolveChannels({ default: { userLimited: true }, namespaces: { dialog: { userLimited: true }, chat: {} } })
  const cases: Array<[string, string, string[] | undefined]> = [
    ['dialog:#42,43', 'dialog', ['42', '43']],
    ['dialog:room#42', 'dialog', ['42']],
    ['dialog:a#b#42', 'dialog', ['42']],
    ['dialog:x#42,,43,', 'dialog', ['42', '43']],
    ['dialog:x#', 'dialog', []],
    ['dialog:x#,', 'dialog', []],
    ['dialog:x#a:b', 'dialog', ['a:b']],
    ['dialog:x#Émile,😀', 'dialog', ['Émile', '😀']],
    ['dialog:room', 'dialog', undefined],
    ['#42', '', ['42']],
    ['news#42,43', '', ['42', '43']],
    ['$#42', '', ['42']],
    ['news', '', undefined],
    // Not user-limited: # is just a character of the name
    ['chat:room#42', 'chat', undefined]
  ]
  for (const [channel, namespace, users] of cases) {
    const result = found(channels.lookup(channel))
    t.equal(result.namespace.name, namespace, `${channel}: namespace`)
    t.strictSame(result.users, users, `${channel}: users`)
  }
})

t.test('lookup: empty and too long names are 107 bad request; length counts UTF-8 bytes', async (t) => {
  const channels = resolveChannels({})
  t.strictSame(channels.lookup(''), { ok: false, code: 107, reason: 'channel is empty' })
  const tooLong = { ok: false, code: 107, reason: 'channel is longer than 255 bytes' }
  t.equal(channels.lookup('a'.repeat(255)).ok, true, '255 ASCII characters')
  t.strictSame(channels.lookup('a'.repeat(256)), tooLong, '256 ASCII characters')
  t.strictSame(channels.lookup('a'.repeat(100_000)), tooLong, 'far too long')
  t.equal(channels.lookup('é'.repeat(127)).ok, true, '254 bytes in 127 characters')
  t.strictSame(channels.lookup('é'.repeat(128)), tooLong, '256 bytes in 128 characters')
  t.equal(channels.lookup('€'.repeat(85)).ok, true, '255 bytes in 85 characters')
  t.strictSame(channels.lookup('€'.repeat(86)), tooLong, '258 bytes in 86 characters')
  t.equal(channels.lookup('😀'.repeat(63)).ok, true, '252 bytes in 63 characters')
  t.strictSame(channels.lookup('😀'.repeat(64)), tooLong, '256 bytes in 64 characters')

  const short = resolveChannels({ maxChannelLength: 10, namespaces: { chat: {} } })
  t.equal(short.lookup('chat:12345').ok, true, 'exactly maxChannelLength')
  t.strictSame(short.lookup('chat:123456'), { ok: false, code: 107, reason: 'channel is longer than 10 bytes' })
  t.strictSame(short.lookup('xxxxx:123456'), { ok: false, code: 107, reason: 'channel is longer than 10 bytes' }, 'length is checked before the namespace')
})

t.test('lookup: control characters and unpaired surrogates are 107 bad request', async (t) => {
  const channels = resolveChannels({})
  const forbidden = { ok: false, code: 107, reason: 'channel has a control character or an unpaired surrogate' }
  for (const channel of ['news\n', 'a\rb', '\u0000', 'tab\there', 'del\u007f', 'c1\u0085', '\u009f', '\ud800', 'a\udc00b', '\ude00\ud83d', 'xxx:\n']) {
    t.strictSame(channels.lookup(channel), forbidden, named(channel))
  }
  for (const channel of ['news feed', 'a\u00a0b', 'zero\u200dwidth', '😀', 'ünïcödé', 'line\u2028sep']) {
    t.equal(channels.lookup(channel).ok, true, `${named(channel)} is allowed`)
  }
})

t.test('lookup: a value that is not a string is 107 bad request, not a throw', async (t) => {
  const channels = resolveChannels({})
  for (const value of [undefined, null, 42, {}, ['news']]) {
    t.strictSame(channels.lookup(value as unknown as string), { ok: false, code: 107, reason: 'channel is not a string' }, String(value))
  }
})

// ---------------------------------------------------------------- properties

// Centrifugo's rules, written out once more as plainly as possible.
function model (channels: ResolvedChannels, defaultAllowed: boolean, channel: string): ChannelLookup | 'ok' {
  if (channel === '') return { ok: false, code: 107, reason: 'channel is empty' }
  if (new TextEncoder().encode(channel).length > channels.maxChannelLength) return { ok: false, code: 107, reason: `channel is longer than ${channels.maxChannelLength} bytes` }
  for (const character of channel) {
    const code = character.codePointAt(0) ?? 0
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f) || (code >= 0xd800 && code <= 0xdfff)) {
      return { ok: false, code: 107, reason: 'channel has a control character or an unpaired surrogate' }
    }
  }
  const rest = channel.startsWith('$') ? channel.slice(1) : channel
  const name = rest.includes(':') ? rest.split(':')[0] : ''
  if (name === '' && !defaultAllowed) return { ok: false, code: 102, reason: 'channels without a namespace are refused (channels.default is false)' }
  if (name !== '' && !channels.namespaces.some((namespace) => namespace.name === name)) {
    return { ok: false, code: 102, reason: `namespace ${JSON.stringify(name)} is not configured (channels.namespaces)` }
  }
  return 'ok'
}

const NAMES = ['chat', 'dialog', 'a.b', 'xx']
const alphabet = fc.constantFrom('c', 'h', 'a', 't', 'd', 'i', 'l', 'o', 'g', '.', 'b', 'x', ':', ':', '#', '#', '$', ',', ',', '4', '2', ' ', '\n', 'é', '€', '😀', '\ud800')
const channelText = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom('', '', '$', '$$'), fc.constantFrom(...NAMES, '', 'Chat', 'c', 'unknown'), fc.constantFrom(':', ':', ''), fc.string({ unit: alphabet, maxLength: 20 })).map((parts) => parts.join('')) },
  { weight: 3, arbitrary: fc.string({ unit: alphabet, maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 60 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code)), maxLength: 30 }) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 0, max: 80 }), fc.constantFrom('a', 'é', '€', '😀', ':')).map(([count, unit]) => 'chat:' + unit.repeat(count)) }
)

t.test('lookup never throws, agrees with the model, and ok results name a configured namespace', async (t) => {
  const configurations: Array<[ChannelsOptions, boolean]> = [
    [{ maxChannelLength: 64, namespaces: { chat: {}, dialog: { userLimited: true }, 'a.b': { presence: true }, xx: { userLimited: true } } }, true],
    [{ maxChannelLength: 64, default: { userLimited: true }, namespaces: { chat: { userLimited: true } } }, true],
    [{ default: false, namespaces: { dialog: { userLimited: true }, xx: {} } }, false]
  ]
  for (const [options, defaultAllowed] of configurations) {
    const channels = resolveChannels(options)
    fc.assert(fc.property(channelText, (channel) => {
      const result = channels.lookup(channel)
      const expected = model(channels, defaultAllowed, channel)
      if (expected !== 'ok') {
        if (JSON.stringify(result) !== JSON.stringify(expected)) throw new Error(`expected ${JSON.stringify(expected)}, got ${JSON.stringify(result)}`)
        return
      }
      if (!result.ok) throw new Error(`expected a namespace, got ${result.code}: ${result.reason}`)
      if (!channels.namespaces.includes(result.namespace)) throw new Error('resolved to a namespace that is not configured')
      const rest = channel.startsWith('$') ? channel.slice(1) : channel
      if (result.namespace.name !== (rest.includes(':') ? rest.split(':')[0] : '')) throw new Error(`resolved to ${JSON.stringify(result.namespace.name)}`)
      if (result.private !== channel.startsWith('$')) throw new Error('private is wrong')
      const users = result.namespace.userLimited && channel.includes('#')
        ? channel.split('#').at(-1)?.split(',').filter((user) => user.length > 0)
        : undefined
      if (JSON.stringify(result.users) !== JSON.stringify(users)) throw new Error(`users ${JSON.stringify(result.users)}, expected ${JSON.stringify(users)}`)
    }), fuzzParameters(2000))
    t.pass(`${JSON.stringify(options)}: holds`)
  }
})
