import { MAX_CHANNELS_PER_REQUEST } from '../broadcast-route.js'
import { MAX_CLOSE_REASON_BYTES } from '../../core/close-codes.js'
import type { ServerApiMethod } from './methods.js'

// JSON Schemas of the server API's routes: requests as Centrifugo's
// api.proto has them (field names, types), replies as Centrifugo writes
// them. Bodies are validated by the API's own Ajv (no type coercion, unknown
// fields refused); replies go out through fast-json-stringify, except
// history and presence, whose publication data and client info are spliced
// in as the JSON text they were stored as. The OpenAPI document is built
// from the same schemas (openapi.ts).

const channel = { type: 'string', description: 'Channel name (its namespace is the part before the first `:`)' } as const
const user = { type: 'string', description: 'User id' } as const
const client = { type: 'string', description: 'Only this connection of the user (the `client` id its SDK reports)' } as const
const data = { description: 'Any JSON value' } as const
const b64data = {
  type: 'string',
  description: 'Base64 of bytes, instead of `data`: JSON text reaches every client; other bytes only Protobuf clients, untouched'
} as const
const unsupported = (what: string): { description: string } => ({ description: `Not supported: ${what}` })

const publishFields = {
  data,
  b64data,
  skip_history: { type: 'boolean', description: 'Publish without an offset and without keeping it in history' },
  tags: { type: 'object', additionalProperties: { type: 'string' }, ...unsupported('answered with 108 unless empty') },
  idempotency_key: { type: 'string', ...unsupported('answered with 108 unless empty') },
  delta: { type: 'boolean', description: 'Ignored: subscribers always get whole publications (delta compression is a hint in Centrifugo too)' },
  version: { type: 'integer', minimum: 0, ...unsupported('answered with 108 unless 0') },
  version_epoch: { type: 'string', ...unsupported('answered with 108 unless empty') }
} as const

const streamPosition = {
  type: 'object',
  description: 'A position in a channel\'s stream',
  additionalProperties: false,
  properties: {
    offset: { type: 'integer', minimum: 0, description: 'Offset of a publication' },
    epoch: { type: 'string', description: 'The stream\'s epoch' }
  }
} as const

const notSupportedObject = (what: string): object => ({ type: 'object', ...unsupported(what) })

function request (description: string, required: readonly string[], properties: Record<string, object>): object {
  // No `required: []`: OpenAPI 3.0 does not allow an empty list.
  return { type: 'object', description, additionalProperties: false, ...(required.length > 0 ? { required } : {}), properties }
}

/** Request bodies, by method. */
export const requestSchemas: Record<ServerApiMethod, object> = {
  publish: request('Publishes `data` to a channel\'s subscribers on every instance', ['channel'], { channel, ...publishFields }),
  broadcast: request('Publishes the same data to each of several channels', ['channels'], {
    channels: { type: 'array', minItems: 1, maxItems: MAX_CHANNELS_PER_REQUEST, items: channel, description: 'Channels to publish to' },
    ...publishFields
  }),
  subscribe: request('Subscribes a user\'s connections to a channel on the server\'s side, on every instance', ['user', 'channel'], {
    user,
    channel,
    client,
    info: unsupported('answered with 108'),
    b64info: { type: 'string', ...unsupported('answered with 108 unless empty') },
    session: { type: 'string', ...unsupported('answered with 108 unless empty') },
    data: unsupported('answered with 108'),
    b64data: { type: 'string', ...unsupported('answered with 108 unless empty') },
    recover_since: { ...streamPosition, ...unsupported('answered with 108') },
    expire_at: { type: 'integer', minimum: 0, ...unsupported('answered with 108 unless 0') },
    override: notSupportedObject('answered with 108 unless empty')
  }),
  unsubscribe: request('Ends a user\'s subscriptions to a channel, on every instance', ['user', 'channel'], {
    user,
    channel,
    client,
    session: { type: 'string', ...unsupported('answered with 108 unless empty') }
  }),
  disconnect: request('Closes a user\'s connections, on every instance', ['user'], {
    user,
    client,
    session: { type: 'string', ...unsupported('answered with 108 unless empty') },
    whitelist: { type: 'array', items: { type: 'string' }, ...unsupported('answered with 108 unless empty') },
    disconnect: {
      type: 'object',
      description: 'Close code and reason; without it each endpoint closes with its own (3503 for Centrifugo\'s SDKs, 4000 on /ws)',
      additionalProperties: false,
      required: ['code', 'reason'],
      properties: {
        code: { type: 'integer', description: '1000, or 3000-4999' },
        reason: { type: 'string', description: `At most ${MAX_CLOSE_REASON_BYTES} bytes (UTF-8)` }
      }
    }
  }),
  history: request('A channel\'s history (publications of every instance)', ['channel'], {
    channel,
    limit: { type: 'integer', minimum: -1, description: 'Most publications to return: 0 (or absent) only the position, -1 as many as `channels.historyMaxLimit`' },
    since: { ...streamPosition, description: 'Only publications after this position' },
    reverse: { type: 'boolean', description: 'Newest first' }
  }),
  history_remove: request('Drops a channel\'s publications; its position stays', ['channel'], { channel }),
  presence: request('Who is subscribed to a channel, across instances', ['channel'], { channel }),
  presence_stats: request('How many clients and distinct users are subscribed to a channel, across instances', ['channel'], { channel }),
  channels: request('Channels with at least one subscriber, across instances', [], {
    pattern: { type: 'string', description: 'Only channels matching this glob: `*` any characters, `?` one, `[abc]`, `[!a-c]`, `{a,b}`, `\\` escapes' }
  }),
  info: request('The instances and their counts', [], {})
}

export const errorSchema = {
  type: 'object',
  description: 'Why the method did not run: Centrifugo\'s error code and a message',
  required: ['code', 'message'],
  properties: {
    code: { type: 'integer', description: '100 internal, 102 unknown channel, 104 not found, 107 bad request, 108 not available, 112 unrecoverable position' },
    message: { type: 'string' }
  }
} as const

const position = {
  offset: { type: 'integer', description: 'Offset of the publication (channels with history)' },
  epoch: { type: 'string', description: 'Epoch of the channel\'s stream (channels with history)' }
} as const

export const publishResult = { type: 'object', description: 'Where the publication stands in the channel\'s stream (empty without history)', properties: position } as const

const clientInfo = {
  type: 'object',
  required: ['user', 'client'],
  properties: { user, client: { type: 'string', description: 'Connection id' }, conn_info: data, chan_info: data }
} as const

const empty = { type: 'object', description: 'Empty', properties: {} } as const

/** The `result` of each method. */
export const results: Record<ServerApiMethod, object> = {
  publish: publishResult,
  broadcast: {
    type: 'object',
    required: ['responses'],
    properties: {
      responses: {
        type: 'array',
        description: 'One per channel, in the order of `channels`: its result or its error',
        items: { type: 'object', properties: { result: publishResult, error: errorSchema } }
      }
    }
  },
  subscribe: empty,
  unsubscribe: empty,
  disconnect: empty,
  history: {
    type: 'object',
    properties: {
      publications: {
        type: 'array',
        items: {
          type: 'object',
          description: 'A publication: `data` (JSON), or `b64data` for bytes that are not JSON',
          properties: { data, b64data: { type: 'string', description: 'A binary publication\'s bytes, in base64' }, offset: position.offset, info: clientInfo }
        }
      },
      ...position
    }
  },
  history_remove: empty,
  presence: {
    type: 'object',
    required: ['presence'],
    properties: { presence: { type: 'object', description: 'Subscribed clients by connection id', additionalProperties: clientInfo } }
  },
  presence_stats: {
    type: 'object',
    required: ['num_clients', 'num_users'],
    properties: { num_clients: { type: 'integer' }, num_users: { type: 'integer' } }
  },
  channels: {
    type: 'object',
    required: ['channels'],
    properties: {
      channels: {
        type: 'object',
        description: 'By channel name',
        additionalProperties: { type: 'object', required: ['num_clients'], properties: { num_clients: { type: 'integer', description: 'Subscriptions to the channel, summed over instances' } } }
      }
    }
  },
  info: {
    type: 'object',
    required: ['nodes'],
    properties: {
      nodes: {
        type: 'array',
        description: 'One per instance',
        items: {
          type: 'object',
          required: ['uid', 'name', 'num_clients', 'num_users', 'num_channels', 'num_subs', 'uptime'],
          properties: {
            uid: { type: 'string', description: 'Instance id' },
            name: { type: 'string', description: 'Host name and process id' },
            num_clients: { type: 'integer', description: 'Open connections (both endpoints)' },
            num_users: { type: 'integer', description: 'Distinct users connected' },
            num_channels: { type: 'integer', description: 'Channels with a subscriber on the instance' },
            num_subs: { type: 'integer', description: 'Channel subscriptions on the instance' },
            uptime: { type: 'integer', description: 'Seconds since the plugin was registered' }
          }
        }
      }
    }
  }
}

/**
 * The schema fast-json-stringify writes a method's 200 reply with. Refusals
 * (400, 401, 403, 413) have none: Fastify's error handler writes them, or
 * the app's own in its own shape, which a schema here would cut down. The
 * OpenAPI document describes every status (openapi.ts).
 */
export function replySchema (method: ServerApiMethod | undefined): object {
  return {
    type: 'object',
    properties: method === undefined ? { error: errorSchema } : { result: results[method], error: errorSchema }
  }
}
