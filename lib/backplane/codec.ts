import { isUtf8 } from 'node:buffer'
import { isApplicationCloseCode, isCloseReason } from '../core/close-codes.js'
import type { ClientInfo } from '../channels/types.js'
import type { Envelope } from './types.js'

// An envelope on Redis: one line of JSON naming the message and its targets,
// a newline, then the message's data as JSON text, exactly as it was
// serialized once by the publishing instance. Receivers parse only the short
// header; each protocol splices the data bytes into its own frame.
//   {"v":2,"id":"…","u":["alice"],"x":["bob"],"c":"conn-id"}\n{"any":"json"}
// A control envelope has no data: `d`: [code, reason] closes the targeted
// connections, `s`: [channel, 1 | 0] subscribes them to a channel or ends it. A channel publication has `ch`, and, from the history script
// that appends them, `o` and `e` (offset and epoch); `i` is who published;
// a join/leave notice has `p` ('join' | 'leave'), `i` and no data. A
// publication of bytes that are not JSON has `b`: 1 and its data in base64
// (the line must stay one line, and history keeps it as text).

const VERSION = 2
/**
 * Binary publications carry version 3, so that an instance of a version
 * before them drops them (as it drops any version it does not know) instead
 * of splicing their base64 into JSON frames.
 */
const BINARY_VERSION = 3
const NEWLINE = 0x0a

interface Header {
  v: number
  id: string
  u?: readonly string[]
  x?: readonly string[]
  c?: string
  d?: [number, string]
  ch?: string
  o?: number
  e?: string
  i?: ClientInfo
  p?: 'join' | 'leave'
  s?: [string, 0 | 1]
  b?: 1
}

/** The header's JSON text, without its closing brace when `open` (the history script appends offset and epoch). */
export function encodeHeader (envelope: Envelope, open = false): string {
  const header: Header = { v: envelope.binary === true ? BINARY_VERSION : VERSION, id: envelope.id }
  if (envelope.users !== undefined) header.u = envelope.users
  if (envelope.except !== undefined && envelope.except.length > 0) header.x = envelope.except
  if (envelope.connectionId !== undefined) header.c = envelope.connectionId
  if (envelope.disconnect !== undefined) header.d = [envelope.disconnect.code, envelope.disconnect.reason]
  if (envelope.channel !== undefined) header.ch = envelope.channel
  if (envelope.offset !== undefined) header.o = envelope.offset
  if (envelope.epoch !== undefined) header.e = envelope.epoch
  if (envelope.info !== undefined) header.i = envelope.info
  if (envelope.presence !== undefined) header.p = envelope.presence
  if (envelope.subscription !== undefined) header.s = [envelope.subscription.channel, envelope.subscription.subscribe ? 1 : 0]
  if (envelope.binary === true) header.b = 1
  // JSON.stringify never emits a raw newline, so the first one ends the header.
  const json = JSON.stringify(header)
  return open ? json.slice(0, -1) : json
}

export function encodeEnvelope (envelope: Envelope): Buffer {
  return Buffer.concat([Buffer.from(encodeHeader(envelope) + '\n'), dataOnRedis(envelope)])
}

/** The data as it travels and is kept on Redis: JSON text as it is, bytes in base64. */
export function dataOnRedis (envelope: Envelope): Buffer {
  return envelope.binary === true ? Buffer.from(envelope.data.toString('base64')) : envelope.data
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

/** Reads an envelope; null for anything that is not one of ours (counted and dropped by the caller). */
export function decodeEnvelope (message: Buffer): Envelope | null {
  const end = message.indexOf(NEWLINE)
  if (end <= 0) return null
  let header: unknown
  try {
    header = JSON.parse(message.subarray(0, end).toString())
  } catch {
    return null // not JSON: a foreign publisher on our channel
  }
  if (!isHeader(header)) return null
  let data = message.subarray(end + 1)
  if (header.b === 1) {
    const text = data.toString()
    if (header.ch === undefined || text.length === 0 || text.length % 4 !== 0 || !BASE64.test(text)) return null
    data = Buffer.from(text, 'base64')
  }
  const withoutData = header.d !== undefined || header.p !== undefined || header.s !== undefined
  if (withoutData) {
    if (data.length !== 0) return null
  } else if (header.b !== 1 && (data.length === 0 || data.indexOf(NEWLINE) !== -1 || !isUtf8(data))) {
    // The data is spliced into text frames and newline-delimited replies.
    return null
  }
  return {
    id: header.id,
    data,
    binary: header.b === 1 ? true : undefined,
    users: header.u,
    except: header.x,
    connectionId: header.c,
    disconnect: header.d === undefined ? undefined : { code: header.d[0], reason: header.d[1] },
    channel: header.ch,
    offset: header.o,
    epoch: header.e,
    info: header.i,
    presence: header.p,
    subscription: header.s === undefined ? undefined : { channel: header.s[0], subscribe: header.s[1] === 1 }
  }
}

function isHeader (value: unknown): value is Header {
  if (value === null || typeof value !== 'object') return false
  const header = value as Record<string, unknown>
  return ((header.v === VERSION && header.b === undefined) || (header.v === BINARY_VERSION && header.b === 1)) &&
    typeof header.id === 'string' &&
    (header.u === undefined || isStringList(header.u)) &&
    (header.x === undefined || isStringList(header.x)) &&
    (header.c === undefined || typeof header.c === 'string') &&
    (header.d === undefined || isDisconnect(header.d)) &&
    (header.ch === undefined || typeof header.ch === 'string') &&
    (header.o === undefined || (Number.isSafeInteger(header.o) && (header.o as number) >= 1)) &&
    (header.e === undefined || typeof header.e === 'string') &&
    (header.i === undefined || isClientInfo(header.i)) &&
    (header.p === undefined || ((header.p === 'join' || header.p === 'leave') && typeof header.ch === 'string' && header.i !== undefined)) &&
    (header.s === undefined || (Array.isArray(header.s) && header.s.length === 2 && typeof header.s[0] === 'string' && (header.s[1] === 0 || header.s[1] === 1)))
}

function isClientInfo (value: unknown): value is ClientInfo {
  if (value === null || typeof value !== 'object') return false
  const info = value as Record<string, unknown>
  return typeof info.user === 'string' && typeof info.client === 'string'
}

function isDisconnect (value: unknown): boolean {
  return Array.isArray(value) && value.length === 2 && (value[0] === 0 || isApplicationCloseCode(value[0])) && isCloseReason(value[1])
}

function isStringList (value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string')
}
