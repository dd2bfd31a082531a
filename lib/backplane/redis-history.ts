import { readFileSync } from 'node:fs'
import type { Cluster, Redis } from 'ioredis'
import { checkQuery, newEpoch } from '../channels/history.js'
import type { ClientInfo, HistoryLimits, HistoryPage, HistoryQuery, Publication, StreamPosition } from '../channels/types.js'
import { slotTag } from './slot.js'

/**
 * A stream entry as XRANGE returns it: id `<offset>-0`, fields `d` (data as
 * JSON text; `x` instead for bytes that are not JSON, in base64) then `i`
 * (info JSON, '' for none).
 */
type Entry = [id: string, fields: string[]]

/** The scripts, as ioredis adds them to a client once defined. */
interface HistoryCommands {
  fanoutHistoryPublish: (stream: string, meta: string, ...args: string[]) => Promise<[offset: string, epoch: string, receivers: number]>
  fanoutHistoryRead: (stream: string, meta: string, ...args: string[]) => Promise<[top: string, epoch: string, entries: Entry[]]>
}

/** A publication to keep in a channel's history and publish to its subscribers. */
export interface HistoryPublishRequest {
  readonly channel: string
  /** Where the message goes; on a Cluster, a name in the channel's slot (`slotTag(channel)` as its hash tag). */
  readonly pubsubChannel: string
  /** SPUBLISH instead of PUBLISH. */
  readonly sharded: boolean
  /** A JSON object's text without its closing brace; the script adds `,"o":<offset>,"e":"<epoch>"}`. */
  readonly header: string
  /** The publication's data as JSON text (base64 when `binary`): kept, and sent after the header's line. */
  readonly data: string
  /** The data is bytes that are not JSON (the header says so too, with `"b":1`). */
  readonly binary?: boolean
  readonly info?: ClientInfo
  readonly limits: HistoryLimits
}

export interface HistoryPublishResult {
  /** The new publication's position. */
  readonly position: StreamPosition
  /** What PUBLISH or SPUBLISH returned: subscribers (on a Cluster, of the node or shard) that received it. */
  readonly receivers: number
}

/**
 * Channel history in Redis, with the same semantics as MemoryHistory: per
 * channel a stream (`<prefix>history:{<channel>}`, entry ids `<offset>-0`)
 * and a hash of epoch and top offset (`<prefix>history-meta:{<channel>}`),
 * both expiring on their own. The hash tags put both keys, and a pub/sub
 * channel named `<prefix>channel:{<channel>}`, in one Cluster slot, so that
 * one script can append and publish atomically: offsets on the wire then
 * follow the order of the history, whichever instance published.
 *
 * The scripts are defined on the client it is given (as `fanoutHistory*`).
 * Needs Redis 6.2 (exclusive stream ranges), and 7.0 for sharded publishing.
 */
export class RedisHistory {
  readonly #client: Redis | Cluster
  readonly #commands: HistoryCommands
  readonly #prefix: string

  constructor (client: Redis | Cluster, prefix: string) {
    client.defineCommand('fanoutHistoryPublish', { numberOfKeys: 2, lua: readFileSync(new URL('./history-publish.lua', import.meta.url), 'utf8') })
    client.defineCommand('fanoutHistoryRead', { numberOfKeys: 2, lua: readFileSync(new URL('./history-read.lua', import.meta.url), 'utf8') })
    this.#client = client
    this.#commands = client as unknown as HistoryCommands
    this.#prefix = prefix
  }

  /**
   * Appends the publication and publishes `header,"o":<offset>,"e":"<epoch>"}`,
   * a newline and `data`, in one script.
   */
  async publish (request: HistoryPublishRequest): Promise<HistoryPublishResult> {
    const { channel, limits } = request
    const streamKey = this.#streamKey(channel)
    // On a Cluster, SPUBLISH to another slot fails only after the script has
    // appended (scripts do not roll back): a publication kept but never sent.
    if (request.sharded && hashTag(request.pubsubChannel) !== hashTag(streamKey)) {
      throw new TypeError(`history: pubsubChannel ${request.pubsubChannel} must have the hash tag {${hashTag(streamKey)}}, as the channel's keys do`)
    }
    const [offset, epoch, receivers] = await this.#commands.fanoutHistoryPublish(
      streamKey, this.#metaKey(channel),
      request.pubsubChannel, request.sharded ? '1' : '0', request.header, request.data,
      request.info === undefined ? '' : JSON.stringify(request.info),
      newEpoch(), String(limits.size), String(limits.ttl), String(limits.metaTtl), request.binary === true ? 'x' : 'd')
    return { position: { offset: Number(offset), epoch }, receivers }
  }

  /** The position and the publications asked for; a stream that does not exist gets an epoch. */
  async read (channel: string, query: HistoryQuery, limits: HistoryLimits): Promise<HistoryPage> {
    checkQuery(query)
    const { limit, since, reverse = false } = query
    let direction = ''
    let range = ['', '']
    if (limit !== 0 && !(reverse && since !== undefined && since.offset <= 1)) {
      // Exclusive ids, '(': no arithmetic on an offset that may be 2^53.
      // Reverse with since: the publications before it, newest first.
      direction = reverse ? 'reverse' : 'forward'
      if (reverse) range = [since === undefined ? '+' : `(${since.offset}-0`, '-']
      else range = [since === undefined || since.offset < 1 ? '-' : `(${since.offset}-0`, '+']
    }
    const [top, epoch, entries] = await this.#commands.fanoutHistoryRead(
      this.#streamKey(channel), this.#metaKey(channel),
      newEpoch(), String(limits.metaTtl), since?.epoch ?? '', direction, range[0], range[1], limit > 0 ? String(limit) : '')
    return { position: { offset: Number(top), epoch }, publications: entries.map(toPublication) }
  }

  async position (channel: string, limits: HistoryLimits): Promise<StreamPosition> {
    return (await this.read(channel, { limit: 0 }, limits)).position
  }

  /**
   * Drops the channel's publications; epoch and top offset stay, so clients
   * see they cannot recover. One DEL is atomic by itself: no script needed.
   */
  async remove (channel: string): Promise<void> {
    await this.#client.del(this.#streamKey(channel))
  }

  #streamKey (channel: string): string {
    return `${this.#prefix}history:${slotTag(channel)}`
  }

  #metaKey (channel: string): string {
    return `${this.#prefix}history-meta:${slotTag(channel)}`
  }
}

/** What Redis Cluster hashes to find a key's slot: the text between the first `{` and the next `}`, when not empty. */
function hashTag (key: string): string {
  const open = key.indexOf('{')
  const close = open === -1 ? -1 : key.indexOf('}', open + 1)
  return close > open + 1 ? key.slice(open + 1, close) : key
}

function toPublication ([id, fields]: Entry): Publication {
  // The publish script writes the fields in this order.
  const offset = Number(id.slice(0, id.indexOf('-')))
  const info = fields[3]
  const data = fields[0] === 'x' ? Buffer.from(fields[1] as string, 'base64') : fields[1] as string
  return info === '' ? { offset, data } : { offset, data, info: JSON.parse(info) as ClientInfo }
}
