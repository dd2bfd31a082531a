import { once } from 'node:events'
import { connect as tcpConnect, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'

/** A frame as a raw client sees it. */
export interface RawFrame {
  fin: boolean
  rsv1: boolean
  opcode: number
  payload: Buffer
}

/**
 * A minimal RFC 6455 client on a raw TCP socket: it does the handshake and
 * parses server frames itself, so a test sees exactly what went over the
 * wire (RSV1 bits, how frames were grouped into TCP reads).
 */
export class RawClient {
  readonly socket: Socket
  readonly frames: RawFrame[] = []
  /** Sizes of the chunks the socket delivered, one per read. */
  readonly chunks: number[] = []
  #buffer = Buffer.alloc(0)

  private constructor (socket: Socket) {
    this.socket = socket
  }

  static async open (host: string, port: number, path: string, headers: Record<string, string> = {}): Promise<RawClient> {
    const socket = tcpConnect({ host, port })
    await once(socket, 'connect')
    const key = randomBytes(16).toString('base64')
    const lines = [
      `GET ${path} HTTP/1.1`, `Host: ${host}:${port}`, 'Upgrade: websocket', 'Connection: Upgrade',
      `Sec-WebSocket-Key: ${key}`, 'Sec-WebSocket-Version: 13',
      ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)
    ]
    socket.write(lines.join('\r\n') + '\r\n\r\n')
    let head = Buffer.alloc(0)
    while (!head.includes('\r\n\r\n')) {
      const [chunk] = await once(socket, 'data') as [Buffer]
      head = Buffer.concat([head, chunk])
    }
    const end = head.indexOf('\r\n\r\n') + 4
    const status = head.subarray(0, head.indexOf('\r\n')).toString()
    if (!status.includes(' 101 ')) throw new Error(`upgrade refused: ${status}`)
    const client = new RawClient(socket)
    socket.on('data', (chunk: Buffer) => client.#receive(chunk))
    if (end < head.length) client.#receive(head.subarray(end))
    return client
  }

  #receive (chunk: Buffer): void {
    this.chunks.push(chunk.length)
    this.#buffer = Buffer.concat([this.#buffer, chunk])
    while (this.#buffer.length >= 2) {
      const first = this.#buffer[0] as number
      const second = this.#buffer[1] as number
      let length = second & 0x7f
      let offset = 2
      if (length === 126) {
        if (this.#buffer.length < 4) return
        length = this.#buffer.readUInt16BE(2)
        offset = 4
      } else if (length === 127) {
        if (this.#buffer.length < 10) return
        length = Number(this.#buffer.readBigUInt64BE(2))
        offset = 10
      }
      if (this.#buffer.length < offset + length) return
      this.frames.push({ fin: (first & 0x80) !== 0, rsv1: (first & 0x40) !== 0, opcode: first & 0x0f, payload: this.#buffer.subarray(offset, offset + length) })
      this.#buffer = this.#buffer.subarray(offset + length)
    }
  }

  /** Resolves once `count` frames have arrived in all. */
  async waitForFrames (count: number, timeout = 5000): Promise<RawFrame[]> {
    const deadline = Date.now() + timeout
    while (this.frames.length < count) {
      if (Date.now() > deadline) throw new Error(`got ${this.frames.length} of ${count} frames`)
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    return this.frames
  }

  close (): void {
    this.socket.destroy()
  }
}
