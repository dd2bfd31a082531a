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
