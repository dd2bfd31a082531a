import { once } from 'node:events'
import { connect as tcpConnect, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { readFrames } from './frames.js'

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
  #buffer: Buffer = Buffer.alloc(0)

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
    this.#buffer = readFrames(this.#buffer, (first, payload) => {
      this.frames.push({ fin: (first & 0x80) !== 0, rsv1: (first & 0x40) !== 0, opcode: first & 0x0f, payload })
    })
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
