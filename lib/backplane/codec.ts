import { isUtf8 } from 'node:buffer'
import { isApplicationCloseCode, isCloseReason } from '../core/close-codes.js'
import type { Envelope } from './types.js'

// An envelope on Redis: one line of JSON naming the message and its targets,
// a newline, then the frame payload exactly as clients receive it. Receivers
// parse only the short header and write the payload bytes as they are.
//   {"v":1,"id":"…","u":["alice"],"x":["bob"],"c":"conn-id"}\n{"type":"message",…}
// A control envelope (close the targeted connections) has `d`: [code, reason]
// and no payload.

const VERSION = 1
const NEWLINE = 0x0a

interface Header {
  v: number
  id: string
  u?: readonly string[]
  x?: readonly string[]
  c?: string
  d?: [number, string]
}

export function encodeEnvelope (envelope: Envelope): Buffer {
  const header: Header = { v: VERSION, id: envelope.id }
  if (envelope.users !== undefined) header.u = envelope.users
  if (envelope.except !== undefined && envelope.except.length > 0) header.x = envelope.except
  if (envelope.connectionId !== undefined) header.c = envelope.connectionId
  if (envelope.disconnect !== undefined) header.d = [envelope.disconnect.code, envelope.disconnect.reason]
  // JSON.stringify never emits a raw newline, so the first one ends the header.
  return Buffer.concat([Buffer.from(JSON.stringify(header) + '\n'), envelope.payload])
}

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
  const payload = message.subarray(end + 1)
  if (header.d !== undefined) {
    if (payload.length !== 0) return null
    return { id: header.id, payload, users: header.u, connectionId: header.c, disconnect: { code: header.d[0], reason: header.d[1] } }
  }
  // The payload goes to clients as a text frame: it must be a UTF-8 JSON object.
  if (payload.length === 0 || payload[0] !== 0x7b || payload[payload.length - 1] !== 0x7d || !isUtf8(payload)) return null
  return { id: header.id, payload, users: header.u, except: header.x, connectionId: header.c }
}

function isHeader (value: unknown): value is Header {
  if (value === null || typeof value !== 'object') return false
  const header = value as Record<string, unknown>
  return header.v === VERSION &&
    typeof header.id === 'string' &&
    (header.u === undefined || isStringList(header.u)) &&
    (header.x === undefined || isStringList(header.x)) &&
    (header.c === undefined || typeof header.c === 'string') &&
    (header.d === undefined || isDisconnect(header.d))
}

function isDisconnect (value: unknown): boolean {
  return Array.isArray(value) && value.length === 2 && isApplicationCloseCode(value[0]) && isCloseReason(value[1])
}

function isStringList (value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string')
}
