import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { COMMAND, type MessageShape } from '../lib/protocols/centrifuge/protobuf-codec.js'

// The Protobuf codec is generated (buf.gen.yaml: ts-proto) from our
// client.proto, which declares the fields of Centrifugo's client protocol the
// server reads or writes. Two ways it could go wrong without a failing SDK
// test: the generated code drifts from the .proto, or the .proto from what
// the SDKs speak. Both are checked here.

const root = new URL('..', import.meta.url).pathname
const PROTO = join(root, 'lib/protocols/centrifuge/proto/client.proto')
const GENERATED = 'lib/protocols/centrifuge/proto/client.ts'

t.test('the committed codec is what `npm run generate:proto` generates from client.proto', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'fanout-proto-'))
  t.teardown(() => rm(out, { recursive: true, force: true }))
  await promisify(execFile)(join(root, 'node_modules/.bin/buf'), ['generate', '--output', out], { cwd: root })
  const [fresh, committed] = await Promise.all([readFile(join(out, GENERATED), 'utf8'), readFile(join(root, GENERATED), 'utf8')])
  t.ok(fresh === committed, 'regenerate with `npm run generate:proto` and commit the result')
})

interface Field { readonly name: string, readonly number: number, readonly wireType: number }

/** The fields of every message of a .proto file, with the wire type each is written with. */
function protoFields (text: string): Map<string, Field[]> {
  const messages = new Map<string, Field[]>()
  const withoutComments = text.replace(/\/\/.*$/gm, '')
  for (const [, name, body] of withoutComments.matchAll(/message (\w+) \{([^}]*)\}/g)) {
    const fields: Field[] = []
    for (const [, repeated, type, field, number] of (body as string).matchAll(/(repeated )?(map<[^>]+>|\w+) (\w+) = (\d+);/g)) {
      // Varints: the integer types and bool; everything else here is length-delimited.
      const varint = repeated === undefined && /^(u?int(32|64)|sint64|bool)$/.test(type as string)
      fields.push({ name: field as string, number: Number(number), wireType: varint ? 0 : 2 })
    }
    messages.set(name as string, fields)
  }
  return messages
}

/**
 * The fields the SDK's generated encoder writes for each message: its
 * Protobuf build carries protobufjs's static code, which names each field
 * and tags it with `/* id N, wireType W *\/`.
 */
function sdkFields (bundle: string): Map<string, Field[]> {
  const messages = new Map<string, Field[]>()
  for (const [, name, body] of bundle.matchAll(/\n\s*(\w+)\.encode = function encode\(message, writer\) \{([\s\S]*?)\n\s*return writer;/g)) {
    const fields: Field[] = []
    for (const [, field, number, wireType] of (body as string).matchAll(/if \(message\.(\w+) != null[\s\S]*?\/\* id (\d+), wireType (\d+)/g)) {
      fields.push({ name: field as string, number: Number(number), wireType: Number(wireType) })
    }
    messages.set(name as string, fields)
  }
  return messages
}

t.test('every field of client.proto is the SDK\'s: same message, name, number and wire type', async (t) => {
  const ours = protoFields(await readFile(PROTO, 'utf8'))
  const require = createRequire(import.meta.url)
  const theirs = sdkFields(await readFile(require.resolve('centrifuge/build/protobuf'), 'utf8'))
  t.ok(ours.size >= 30, `${ours.size} messages read from client.proto`)
  t.ok(theirs.size >= 40, `${theirs.size} messages read from the SDK`)
  for (const [message, fields] of ours) {
    const sdk = theirs.get(message)
    if (sdk === undefined) {
      t.fail(`the SDK has no message ${message}`)
      continue
    }
    for (const field of fields) {
      t.same(sdk.find((candidate) => candidate.name === field.name), field, `${message}.${field.name}`)
    }
  }
})

/** Which fields of `name` hold messages, and theirs, from client.proto (map fields: their entry, whose field 2 is the value). */
function shapeOf (proto: string, name: string): MessageShape {
  const body = new RegExp(`message ${name} \\{([^}]*)\\}`).exec(proto.replace(/\/\/.*$/gm, ''))?.[1]
  if (body === undefined) throw new Error(`no message ${name} in client.proto`)
  const shape: Record<number, MessageShape> = {}
  for (const [, type, number] of body.matchAll(/(?:repeated )?(map<\w+, ?\w+>|\w+) \w+ = (\d+);/g)) {
    const map = /^map<\w+, ?(\w+)>$/.exec(type as string)
    const value = map === null ? type as string : map[1] as string
    const nested = /^[A-Z]/.test(value) ? shapeOf(proto, value) : undefined
    if (map !== null) shape[Number(number)] = nested === undefined ? {} : { 2: nested }
    else if (nested !== undefined) shape[Number(number)] = nested
  }
  return shape
}

t.test('the codec\'s table of nested messages in commands is client.proto\'s', async (t) => {
  t.same(COMMAND, shapeOf(await readFile(PROTO, 'utf8'), 'Command'))
})
