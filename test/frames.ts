import { randomFillSync } from 'node:crypto'

/**
 * Reads the complete WebSocket frames (server to client: unmasked) at the
 * start of `buffer`, calling `onFrame` for each, and returns the bytes of an
 * incomplete frame left over. Shared by the test client and the benchmark's
 * load generator.
 */
export function readFrames (buffer: Buffer, onFrame: (firstByte: number, payload: Buffer) => void): Buffer {
  while (buffer.length >= 2) {
    let length = (buffer[1] as number) & 0x7f
    let offset = 2
    if (length === 126) {
      if (buffer.length < 4) break
      length = buffer.readUInt16BE(2)
      offset = 4
    } else if (length === 127) {
      if (buffer.length < 10) break
      length = Number(buffer.readBigUInt64BE(2))
      offset = 10
    }
    if (buffer.length < offset + length) break
    onFrame(buffer[0] as number, buffer.subarray(offset, offset + length))
    buffer = buffer.subarray(offset + length)
  }
  return buffer
}

/**
 * A masked client frame (clients must mask), as a raw client writes it.
 * `announced` claims a longer payload than is sent, for frames left unfinished.
 */
export function clientFrame (payload: Buffer | string, opcode = 0x1, fin = true, announced?: number): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload
  const length = announced ?? data.length
  const extended = length < 126 ? 0 : length < 65536 ? 2 : 8
  const frame = Buffer.alloc(2 + extended + 4 + data.length)
  frame[0] = (fin ? 0x80 : 0) | opcode
  if (extended === 0) frame[1] = 0x80 | length
  else if (extended === 2) { frame[1] = 0x80 | 126; frame.writeUInt16BE(length, 2) } else { frame[1] = 0x80 | 127; frame.writeBigUInt64BE(BigInt(length), 2) }
  const maskAt = 2 + extended
  randomFillSync(frame, maskAt, 4)
  for (let i = 0; i < data.length; i++) frame[maskAt + 4 + i] = (data[i] as number) ^ (frame[maskAt + (i & 3)] as number)
  return frame
}
