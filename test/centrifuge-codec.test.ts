// The JSON codec of the Centrifugo client protocol v2: what the parser makes
// of every kind of line, what each reply and push looks like on the wire, the
// code tables. What the real centrifuge-js SDK sends and understands is
// checked in centrifuge-sdk.test.ts; random input in fuzz/centrifuge-commands.test.ts.
import t from 'tap'
import {
  CommandParser, DEFAULT_MAX_COMMANDS_PER_FRAME, MAX_COMMAND_ID, METHODS, type ParsedFrame, type ParsedLine
} from '../lib/protocols/centrifuge/commands.js'
import {
  DisconnectCode, ErrorCode, isPlainReason, isTerminalDisconnect, MAX_REASON_BYTES, UnsubscribeCode, type ReplyError
} from '../lib/protocols/centrifuge/codes.js'
import {
  connectResult, disconnectPush, EMPTY_RESULT, errorReply, historyResult, joinPush, leavePush, messagePush, PING,
  presenceResult, presenceStatsResult, pubPush, refreshResult, reply, rpcResult, subRefreshResult, subscribePush,
  subscribeResult, unsubscribePush
} from '../lib/protocols/centrifuge/replies.js'

const parser = new CommandParser()

function lines (frame: string): ParsedLine[] {
  const parsed = parser.parse(frame)
  if (!parsed.ok) throw new Error(`frame refused: ${parsed.reason}`)
  return parsed.lines
}

function line (text: string): ParsedLine {
  const all = lines(text)
  if (all.length !== 1) throw new Error(`${all.length} lines`)
  return all[0] as ParsedLine
}

function refused (frame: string): string {
  const parsed: ParsedFrame = parser.parse(frame)
  if (parsed.ok) throw new Error(`frame accepted: ${JSON.stringify(parsed.lines)}`)
  return parsed.reason
}

// ---------------------------------------------------------------- parser

t.test('each method parses to its command, with the params object as sent', async (t) => {
  const cases: Array<[string, unknown]> = [
    ['{"connect":{"token":"T1","data":{"a":[1,2]},"name":"js","version":"5.8.0","headers":{"x":"y"},"subs":{"news":{"recover":true,"offset":4,"epoch":"NE"}}},"id":1}',
      { id: 1, method: 'connect', params: { token: 'T1', data: { a: [1, 2] }, name: 'js', version: '5.8.0', headers: { x: 'y' }, subs: { news: { recover: true, offset: 4, epoch: 'NE' } } } }],
    ['{"connect":{},"id":1}', { id: 1, method: 'connect', params: {} }],
    ['{"subscribe":{"channel":"chat:1","token":"S","data":null,"positioned":true,"recoverable":true,"join_leave":true,"flag":3,"recover":true,"offset":6,"epoch":"E1","delta":"fossil","tf":{"key":"k","cmp":"eq","val":"v"},"type":0},"id":2}',
      { id: 2, method: 'subscribe', params: { channel: 'chat:1', token: 'S', data: null, positioned: true, recoverable: true, join_leave: true, flag: 3, recover: true, offset: 6, epoch: 'E1', delta: 'fossil', tf: { key: 'k', cmp: 'eq', val: 'v' }, type: 0 } }],
    ['{"unsubscribe":{"channel":"c"},"id":3}', { id: 3, method: 'unsubscribe', params: { channel: 'c' } }],
    ['{"publish":{"channel":"c","data":"text"},"id":4}', { id: 4, method: 'publish', params: { channel: 'c', data: 'text' } }],
    ['{"presence":{"channel":"c"},"id":5}', { id: 5, method: 'presence', params: { channel: 'c' } }],
    ['{"presence_stats":{"channel":"c"},"id":6}', { id: 6, method: 'presence_stats', params: { channel: 'c' } }],
    ['{"history":{"channel":"c","limit":-1,"since":{"offset":0,"epoch":"E"},"reverse":true},"id":7}',
      { id: 7, method: 'history', params: { channel: 'c', limit: -1, since: { offset: 0, epoch: 'E' }, reverse: true } }],
    ['{"ping":{},"id":8}', { id: 8, method: 'ping', params: {} }],
    ['{"send":{"data":{"fire":1}}}', { id: 0, method: 'send', params: { data: { fire: 1 } } }],
    ['{"rpc":{"method":"","data":[1]},"id":9}', { id: 9, method: 'rpc', params: { method: '', data: [1] } }],
    ['{"refresh":{"token":"T2"},"id":10}', { id: 10, method: 'refresh', params: { token: 'T2' } }],
    ['{"sub_refresh":{"channel":"c","token":"S2"},"id":4294967295}', { id: MAX_COMMAND_ID, method: 'sub_refresh', params: { channel: 'c', token: 'S2' } }]
  ]
  t.equal(new Set(cases.map(([, c]) => (c as { method: string }).method)).size, METHODS.length, 'every method is covered')
  for (const [text, command] of cases) t.same(line(text), { kind: 'command', command }, text)
})

t.test('unknown fields are tolerated and kept, at the top and inside params', async (t) => {
  const parsed = line('{"id":1,"subscribe":{"channel":"c","flag":1,"phase":2,"cursor":"x","future":{"deep":[1]}},"extra":true,"method":7}')
  t.same(parsed, { kind: 'command', command: { id: 1, method: 'subscribe', params: { channel: 'c', flag: 1, phase: 2, cursor: 'x', future: { deep: [1] } } } })
  t.same(line('{"id":2,"publish":{"channel":"m","type":1,"key":"k","removed":true}}'),
    { kind: 'command', command: { id: 2, method: 'publish', params: { channel: 'm', type: 1, key: 'k', removed: true } } })
})

t.test('a frame: commands in order, blank lines skipped, CRLF and spaces around a line allowed', async (t) => {
  const parsed = lines('{"connect":{"name":"js"},"id":1}\r\n\n  \t\n {"subscribe":{"channel":"a","flag":1},"id":2} \n{}\n{"send":{}}\n')
  t.same(parsed.map((l) => l.kind === 'command' ? `${l.command.method}:${l.command.id}` : l.kind),
    ['connect:1', 'subscribe:2', 'pong', 'send:0'])
})

t.test('pong: an object with neither id nor method (extra keys ignored)', async (t) => {
  t.same(line('{}'), { kind: 'pong' })
  t.same(line(' { } '), { kind: 'pong' })
  t.same(line('{"foo":1}'), { kind: 'pong' })
})

t.test('a valid id without a known method: 104; with two methods: 107', async (t) => {
  t.same(line('{"id":3}'), { kind: 'invalid', id: 3, code: 104, message: 'method not found', detail: 'no known method' })
  t.same(line('{"id":3,"subscribe_v9":{"channel":"c"}}'), { kind: 'invalid', id: 3, code: 104, message: 'method not found', detail: 'no known method' })
  t.same(line('{"id":3,"Subscribe":{"channel":"c"}}'), { kind: 'invalid', id: 3, code: 104, message: 'method not found', detail: 'no known method' }, 'keys are case-sensitive')
  t.same(line('{"id":4,"connect":{},"subscribe":{"channel":"c"}}'), { kind: 'invalid', id: 4, code: 107, message: 'bad request', detail: 'more than one method' })
  t.same(line('{"id":4,"publish":{"channel":"c"},"send":{}}'), { kind: 'invalid', id: 4, code: 107, message: 'bad request', detail: 'more than one method' })
  t.same(line('{"id":4,"connect":{},"subscribe":null}'), { kind: 'invalid', id: 4, code: 107, message: 'bad request', detail: 'more than one method' }, 'null is not absent')
})

t.test('params of the wrong shape: 107 for that id, naming the method and the field', async (t) => {
  const cases: Array<[string, string]> = [
    ['{"id":1,"subscribe":null}', 'subscribe must be an object'],
    ['{"id":1,"subscribe":[]}', 'subscribe must be an object'],
    ['{"id":1,"subscribe":"chat"}', 'subscribe must be an object'],
    ['{"id":1,"subscribe":{}}', "subscribe must have required property 'channel'"],
    ['{"id":1,"subscribe":{"channel":""}}', 'subscribe/channel must NOT have fewer than 1 characters'],
    ['{"id":1,"subscribe":{"channel":7}}', 'subscribe/channel must be string'],
    ['{"id":1,"subscribe":{"channel":"c","offset":-1}}', 'subscribe/offset must be >= 0'],
    ['{"id":1,"subscribe":{"channel":"c","offset":1.5}}', 'subscribe/offset must be integer'],
    ['{"id":1,"subscribe":{"channel":"c","offset":"5"}}', 'subscribe/offset must be integer'],
    ['{"id":1,"subscribe":{"channel":"c","offset":9007199254740992}}', 'subscribe/offset must be <= 9007199254740991'],
    ['{"id":1,"subscribe":{"channel":"c","offset":1e400}}', 'subscribe/offset must be integer'],
    ['{"id":1,"subscribe":{"channel":"c","recover":"yes"}}', 'subscribe/recover must be boolean'],
    ['{"id":1,"subscribe":{"channel":"c","epoch":null}}', 'subscribe/epoch must be string'],
    ['{"id":1,"subscribe":{"channel":"c","flag":-1}}', 'subscribe/flag must be >= 0'],
    ['{"id":1,"subscribe":{"channel":"c","tf":"k=v"}}', 'subscribe/tf must be object'],
    ['{"id":1,"connect":{"token":5}}', 'connect/token must be string'],
    ['{"id":1,"connect":{"subs":{"news":{"offset":-2}}}}', 'connect/subs/news/offset must be >= 0'],
    ['{"id":1,"connect":{"subs":{"":{}}}}', 'connect/subs must NOT have fewer than 1 characters, connect/subs property name must be valid'],
    ['{"id":1,"connect":{"subs":["news"]}}', 'connect/subs must be object'],
    ['{"id":1,"connect":{"headers":{"x":1}}}', 'connect/headers/x must be string'],
    ['{"id":1,"history":{"channel":"c","limit":2147483648}}', 'history/limit must be <= 2147483647'],
    ['{"id":1,"history":{"channel":"c","since":{"offset":true}}}', 'history/since/offset must be integer'],
    ['{"id":1,"history":{"channel":"c","reverse":1}}', 'history/reverse must be boolean'],
    ['{"id":1,"rpc":{"method":null}}', 'rpc/method must be string'],
    ['{"id":1,"refresh":{}}', "refresh must have required property 'token'"],
    ['{"id":1,"refresh":{"token":""}}', 'refresh/token must NOT have fewer than 1 characters'],
    ['{"id":1,"sub_refresh":{"channel":"c"}}', "sub_refresh must have required property 'token'"],
    ['{"id":1,"presence":{"channel":["c"]}}', 'presence/channel must be string'],
    ['{"id":1,"publish":{"channel":"c","type":1.5}}', 'publish/type must be integer']
  ]
  for (const [text, detail] of cases) {
    const method = Object.keys(JSON.parse(text)).find((k) => k !== 'id')
    t.same(line(text), { kind: 'invalid', id: 1, method, code: 107, message: 'bad request', detail }, text)
  }
})

t.test('a detail holding a client key is cut short', async (t) => {
  const parsed = line(`{"id":1,"connect":{"subs":{"${'x'.repeat(5000)}":{"offset":-1}}}}`)
  t.equal(parsed.kind, 'invalid')
  if (parsed.kind === 'invalid') t.ok(parsed.detail.length <= 201, `${parsed.detail.length} characters`)
})

t.test('lines that break the protocol refuse the whole frame, naming the line', async (t) => {
  const cases: Array<[string, string]> = [
    ['nope', 'line 1: not JSON'],
    ['{"id":1,"connect":{}', 'line 1: not JSON'],
    ['\u00a0{}', 'line 1: not JSON'],
    ['{}\n{"id":2,"ping":{}}\n{"id":3', 'line 3: not JSON'],
    ['[]', 'line 1: not a JSON object'],
    ['null', 'line 1: not a JSON object'],
    ['"{}"', 'line 1: not a JSON object'],
    ['7', 'line 1: not a JSON object'],
    ['{"id":0}', 'line 1: id must be an integer from 1 to 4294967295'],
    ['{"id":0,"send":{}}', 'line 1: id must be an integer from 1 to 4294967295'],
    ['{"id":null,"ping":{}}', 'line 1: id must be an integer from 1 to 4294967295'],
    ['{"id":-1,"ping":{}}', 'line 1: id must be an integer from 1 to 4294967295'],
    ['{"id":1.5,"ping":{}}', 'line 1: id must be an integer from 1 to 4294967295'],
    ['{"id":"1","ping":{}}', 'line 1: id must be an integer from 1 to 4294967295'],
    ['{"id":4294967296,"ping":{}}', 'line 1: id must be an integer from 1 to 4294967295'],
    ['{"id":1e400,"ping":{}}', 'line 1: id must be an integer from 1 to 4294967295'],
    ['{"subscribe":{"channel":"c"}}', 'line 1: subscribe without an id'],
    ['{"connect":{}}', 'line 1: connect without an id'],
    ['{"send":{},"rpc":{}}', 'line 1: more than one method'],
    ['{"send":"hi"}', 'line 1: send must be an object'],
    ['{"send":null}', 'line 1: send must be an object'],
    ['', 'empty frame'],
    ['\n\r\n  ', 'empty frame']
  ]
  for (const [frame, reason] of cases) t.equal(refused(frame), reason, JSON.stringify(frame))
})

t.test('1.0 and 1e0 are the integer 1 (JSON has one number type)', async (t) => {
  t.same(line('{"id":1.0,"ping":{}}'), { kind: 'command', command: { id: 1, method: 'ping', params: {} } })
  t.same(line('{"id":1e0,"ping":{}}'), { kind: 'command', command: { id: 1, method: 'ping', params: {} } })
})

t.test('a send keeps no id: it is never answered', async (t) => {
  t.same(line('{"id":5,"send":{"data":1}}'), { kind: 'command', command: { id: 0, method: 'send', params: { data: 1 } } })
})

t.test('duplicate keys: the last one wins, as JSON.parse reads them', async (t) => {
  t.same(line('{"id":1,"id":2,"subscribe":{"channel":"a"},"subscribe":{"channel":"b"}}'),
    { kind: 'command', command: { id: 2, method: 'subscribe', params: { channel: 'b' } } })
})

t.test('__proto__ keys are plain data, never prototypes', async (t) => {
  const parsed = line('{"id":1,"__proto__":{"connect":{}},"subscribe":{"channel":"c","__proto__":{"polluted":true}}}')
  t.equal(parsed.kind, 'command')
  t.equal(({} as Record<string, unknown>).polluted, undefined)
  if (parsed.kind === 'command') t.equal(parsed.command.method, 'subscribe')
})

t.test('commands per frame: capped (blank lines do not count), the cap is an option', async (t) => {
  const small = new CommandParser({ maxCommandsPerFrame: 3 })
  t.same(small.parse('{}\n\n\n{}\n{}\n'), { ok: true, lines: [{ kind: 'pong' }, { kind: 'pong' }, { kind: 'pong' }] })
  t.same(small.parse('{}\n{}\n{}\n{}'), { ok: false, reason: 'more than 3 commands in a frame' })
  t.same(small.parse('{}\n{}\n{}\nnot json at all'), { ok: false, reason: 'more than 3 commands in a frame' }, 'stops reading at the cap')
  const many = Array.from({ length: DEFAULT_MAX_COMMANDS_PER_FRAME }, (_, i) => `{"subscribe":{"channel":"c${i}"},"id":${i + 1}}`).join('\n')
  t.equal(lines(many).length, DEFAULT_MAX_COMMANDS_PER_FRAME, 'connect plus Centrifugo\'s default 128 channels fit')
  t.same(parser.parse(many + '\n{}'), { ok: false, reason: `more than ${DEFAULT_MAX_COMMANDS_PER_FRAME} commands in a frame` })
  for (const bad of [0, -1, 1.5, Number.NaN]) {
    t.throws(() => new CommandParser({ maxCommandsPerFrame: bad }), TypeError, String(bad))
  }
})

t.test('two parsers share nothing', async (t) => {
  const a = new CommandParser()
  const b = new CommandParser({ maxCommandsPerFrame: 1 })
  t.equal(a.parse('{}\n{}').ok, true)
  t.equal(b.parse('{}\n{}').ok, false)
})

// ---------------------------------------------------------------- replies

/** Parses a message the way centrifuge-js does, checking it is one line of JSON. */
function wire (text: string): unknown {
  if (text.includes('\n')) throw new Error(`a raw newline: ${text}`)
  return JSON.parse(text)
}

t.test('reply: {"id","<method>":{result}}, {} when there is nothing to say', async (t) => {
  t.equal(reply(7, 'publish'), '{"id":7,"publish":{}}')
  t.equal(reply(8, 'unsubscribe', EMPTY_RESULT), '{"id":8,"unsubscribe":{}}')
  t.equal(reply(9, 'ping'), '{"id":9,"ping":{}}')
  t.equal(reply(MAX_COMMAND_ID, 'connect', connectResult({ client: 'c' })), '{"id":4294967295,"connect":{"client":"c"}}')
  // @ts-expect-error a result answers the method it was built for
  t.ok(reply(1, 'connect', subscribeResult({})))
  // @ts-expect-error a result is built, not any string
  t.ok(reply(1, 'publish', '{}'))
  t.throws(() => reply(1.5, 'publish'), TypeError)
  t.throws(() => reply(MAX_COMMAND_ID + 1, 'publish'), TypeError)
})

t.test('errorReply: code and message, temporary only when true', async (t) => {
  t.equal(errorReply(3, ErrorCode.PERMISSION_DENIED), '{"id":3,"error":{"code":103,"message":"permission denied"}}')
  t.equal(errorReply(4, ErrorCode.INTERNAL), '{"id":4,"error":{"code":100,"message":"internal server error","temporary":true}}')
  t.equal(errorReply(5, { code: 4001, message: 'app "said" no', temporary: false }), '{"id":5,"error":{"code":4001,"message":"app \\"said\\" no"}}')
  t.equal(errorReply(6, { code: 400, message: '', temporary: true }), '{"id":6,"error":{"code":400,"temporary":true}}')
})

t.test('connectResult: zero values left out; subs spliced from subscribe results', async (t) => {
  t.same(wire(connectResult({ client: 'c-1' })), { client: 'c-1' })
  const full = connectResult({
    client: 'c-1',
    version: '0.1.0',
    data: { hello: ['x'] },
    subs: {
      news: subscribeResult({ recoverable: true, positioned: true, epoch: 'NE', offset: 3 }),
      'weird "chan"\n': subscribeResult({})
    },
    expires: true,
    ttl: 3600,
    ping: 25,
    pong: true
  })
  t.same(wire(full), {
    client: 'c-1',
    version: '0.1.0',
    data: { hello: ['x'] },
    subs: { news: { recoverable: true, positioned: true, epoch: 'NE', offset: 3 }, 'weird "chan"\n': {} },
    expires: true,
    ttl: 3600,
    ping: 25,
    pong: true
  })
  t.same(wire(connectResult({ client: 'c', version: '', subs: {}, expires: false, ping: 0, pong: false, data: null })), { client: 'c', data: null })
  t.same(wire(connectResult({ client: 'c', expires: true, ttl: 0 })), { client: 'c', expires: true, ttl: 0 }, 'ttl 0 is written: without it the client refreshes at once anyway (NaN delay)')
  t.throws(() => connectResult({ client: 'c', expires: true, ttl: Number.NaN }), TypeError)
  t.throws(() => connectResult({ client: 'c', ping: -1 }), TypeError)
  t.throws(() => connectResult({ client: 'c', ping: 2.5 }), TypeError)
  t.throws(() => connectResult({ client: 'c', data: () => 1 }), TypeError)
  t.throws(() => connectResult({ client: 'c', data: 1n }), TypeError)
})

t.test('subscribeResult: every field, publications with spliced data', async (t) => {
  t.equal(subscribeResult({}), '{}')
  const text = subscribeResult({
    recoverable: true,
    positioned: true,
    epoch: 'E1',
    offset: 5,
    was_recovering: true,
    recovered: true,
    publications: [
      { offset: 6, data: '{"text":"missed-6"}' },
      { offset: 7, data: '[1, 2.50, "\\u00e9"]', info: { user: 'u2', client: 'c-2', conn_info: { name: 'Bob' }, chan_info: 'x' } }
    ],
    expires: true,
    ttl: 60,
    data: 'welcome'
  })
  t.same(wire(text), {
    expires: true,
    ttl: 60,
    recoverable: true,
    positioned: true,
    epoch: 'E1',
    offset: 5,
    was_recovering: true,
    recovered: true,
    publications: [
      { data: { text: 'missed-6' }, offset: 6 },
      { data: [1, 2.5, 'é'], offset: 7, info: { user: 'u2', client: 'c-2', conn_info: { name: 'Bob' }, chan_info: 'x' } }
    ],
    data: 'welcome'
  })
  t.ok(text.includes('{"data":[1, 2.50, "\\u00e9"],"offset":7'), 'data spliced byte for byte')
  t.same(wire(subscribeResult({ recoverable: false, epoch: '', offset: 0, publications: [], was_recovering: false, recovered: false })), {})
  t.throws(() => subscribeResult({ offset: -1 }), TypeError)
  t.throws(() => subscribeResult({ offset: 2 ** 53 }), TypeError)
  t.throws(() => subscribeResult({ publications: [{ offset: 1, data: '' }] }), TypeError)
})

t.test('historyResult, presenceResult (double nesting), presenceStatsResult, refresh, sub_refresh, rpc', async (t) => {
  t.same(wire(reply(1, 'history', historyResult({ publications: [{ offset: 9, data: '"nine"' }], epoch: 'E', offset: 9 }))),
    { id: 1, history: { publications: [{ data: 'nine', offset: 9 }], epoch: 'E', offset: 9 } })
  t.same(wire(historyResult({ publications: [], epoch: 'E', offset: 0 })), { epoch: 'E' })
  t.same(wire(reply(2, 'presence', presenceResult({ 'c-1': { user: 'u1', client: 'c-1', conn_info: { n: 1 } }, 'c-2': { user: '', client: 'c-2' } }))),
    { id: 2, presence: { presence: { 'c-1': { user: 'u1', client: 'c-1', conn_info: { n: 1 } }, 'c-2': { user: '', client: 'c-2' } } } })
  t.same(wire(reply(3, 'presence', presenceResult({}))), { id: 3, presence: { presence: {} } })
  t.same(wire(reply(4, 'presence_stats', presenceStatsResult({ num_clients: 0, num_users: 0 }))), { id: 4, presence_stats: { num_clients: 0, num_users: 0 } })
  t.same(wire(reply(5, 'refresh', refreshResult({ expires: true, ttl: 120 }))), { id: 5, refresh: { expires: true, ttl: 120 } })
  t.same(wire(reply(6, 'refresh', refreshResult({ expires: false }))), { id: 6, refresh: {} })
  t.same(wire(reply(7, 'sub_refresh', subRefreshResult({ expires: true, ttl: 1 }))), { id: 7, sub_refresh: { expires: true, ttl: 1 } })
  t.same(wire(reply(8, 'rpc', rpcResult({ sum: 3 }))), { id: 8, rpc: { data: { sum: 3 } } })
  t.same(wire(reply(9, 'rpc', rpcResult())), { id: 9, rpc: {} })
  t.same(wire(reply(10, 'rpc', rpcResult(null))), { id: 10, rpc: { data: null } })
  t.throws(() => presenceStatsResult({ num_clients: -1, num_users: 0 }), TypeError)
})

t.test('pushes: shapes, never an id; the data is spliced byte for byte', async (t) => {
  const info = { user: 'u"1', client: 'c-1', conn_info: { name: 'Ann' } }
  const data = '{ "text" : "h\\u00e9llo",\t"n": 1.50e1 }'
  const pub = pubPush('chat:1', { data, offset: 6, epoch: 'E1', info, tags: { k: 'v' } })
  t.equal(pub, `{"push":{"channel":"chat:1","pub":{"data":${data},"offset":6,"epoch":"E1","info":{"user":"u\\"1","client":"c-1","conn_info":{"name":"Ann"}},"tags":{"k":"v"}}}}`)
  t.same(wire(pubPush('c', { data: '1' })), { push: { channel: 'c', pub: { data: 1 } } }, 'no offset or epoch when absent')
  t.same(wire(pubPush('c', { data: 'null', offset: 0, epoch: '', tags: {} })), { push: { channel: 'c', pub: { data: null } } })
  t.equal(messagePush(data), `{"push":{"message":{"data":${data}}}}`)
  t.same(wire(joinPush('c', info)), { push: { channel: 'c', join: { info } } })
  t.same(wire(leavePush('c', { user: 'u', client: 'k' })), { push: { channel: 'c', leave: { info: { user: 'u', client: 'k' } } } })
  t.same(wire(unsubscribePush('c', UnsubscribeCode.INSUFFICIENT_STATE)), { push: { channel: 'c', unsubscribe: { code: 2500, reason: 'insufficient state' } } })
  t.same(wire(subscribePush('srv', { recoverable: true, positioned: true, epoch: 'S', offset: 1, data: { x: 1 } })),
    { push: { channel: 'srv', subscribe: { recoverable: true, epoch: 'S', offset: 1, positioned: true, data: { x: 1 } } } })
  t.same(wire(subscribePush('srv')), { push: { channel: 'srv', subscribe: {} } })
  t.same(wire(disconnectPush(DisconnectCode.FORCE_DISCONNECT)), { push: { disconnect: { code: 3503, reason: 'force disconnect' } } })
  for (const text of [pub, messagePush('1'), joinPush('c', info), leavePush('c', info), unsubscribePush('c', UnsubscribeCode.SERVER), subscribePush('c'), disconnectPush(DisconnectCode.SHUTDOWN)]) {
    const value = wire(text) as { id?: unknown, push: { id?: unknown } }
    t.notOk('id' in value || 'id' in value.push, text)
  }
})

t.test('pushes: data with raw line feeds (pretty JSON) stays one line with the same value and length', async (t) => {
  const pretty = JSON.stringify({ a: [1, { b: 'x\ny' }] }, null, 2)
  const text = pubPush('c', { data: pretty })
  t.equal(text.split('\n').length, 1)
  t.same((wire(text) as { push: { pub: { data: unknown } } }).push.pub.data, { a: [1, { b: 'x\ny' }] })
  t.equal(messagePush(pretty).length, messagePush(JSON.stringify(JSON.parse(pretty), null, 2)).length)
  t.throws(() => messagePush(''), TypeError)
})

t.test('PING is the empty object', async (t) => {
  t.equal(PING, '{}')
  t.same(line(PING), { kind: 'pong' }, 'and the pong that answers it parses as one')
})

// ---------------------------------------------------------------- codes

t.test('error codes: Centrifugo\'s numbers and messages; temporary exactly on 100, 111, 113', async (t) => {
  const entries = Object.values(ErrorCode) as ReplyError[]
  t.same(entries.map((e) => e.code), [100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113])
  t.same(entries.filter((e) => e.temporary).map((e) => e.code), [100, 111, 113])
  t.ok(Object.isFrozen(ErrorCode) && entries.every(Object.isFrozen))
  t.equal(ErrorCode.METHOD_NOT_FOUND.message, 'method not found')
  t.equal(ErrorCode.BAD_REQUEST.message, 'bad request')
})

t.test('disconnect codes: plain short reasons; terminal exactly in 3500-3999 and 4500-4999', async (t) => {
  const entries = Object.values(DisconnectCode)
  t.ok(Object.isFrozen(DisconnectCode) && entries.every(Object.isFrozen))
  for (const entry of entries) {
    t.ok(isPlainReason(entry.reason), `${entry.code} ${entry.reason}`)
    t.equal(entry.reconnect, entry.code < 3500, `${entry.code} reconnect`)
  }
  const used = [[3001, 'SHUTDOWN'], [3005, 'EXPIRED'], [3008, 'SLOW'], [3010, 'INSUFFICIENT_STATE'], [3012, 'NO_PONG'], [3500, 'INVALID_TOKEN'],
    [3501, 'BAD_REQUEST'], [3502, 'STALE'], [3503, 'FORCE_DISCONNECT'], [3504, 'CONNECTION_LIMIT'], [3507, 'PERMISSION_DENIED']] as const
  for (const [code, name] of used) t.equal(DisconnectCode[name].code, code, name)
  for (const [code, terminal] of [[2999, false], [3000, false], [3499, false], [3500, true], [3999, true], [4000, false], [4499, false], [4500, true], [4999, true], [5000, false]] as const) {
    t.equal(isTerminalDisconnect(code), terminal, String(code))
  }
})

t.test('unsubscribe codes: 2000 final, 2500 on resubscribe', async (t) => {
  t.same(Object.values(UnsubscribeCode).map((u) => [u.code, u.resubscribe]), [[2000, false], [2500, true], [2501, true], [2502, true]])
  for (const entry of Object.values(UnsubscribeCode)) t.ok(isPlainReason(entry.reason), entry.reason)
})

t.test('isPlainReason: never JSON, never empty, at most 32 bytes', async (t) => {
  for (const reason of ['123', 'true', 'null', '{}', '"x"', ' 1 ', '[]', '', 'é'.repeat(17), 7, null]) t.notOk(isPlainReason(reason), JSON.stringify(reason))
  for (const reason of ['shutdown', 'no pong', 'x'.repeat(MAX_REASON_BYTES), '{', 'é'.repeat(16)]) t.ok(isPlainReason(reason), reason)
})
