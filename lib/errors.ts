import createError from '@fastify/error'

// Every error fastify-fanout raises, with a stable code. Request-time errors
// carry the HTTP status they are answered with; option errors are TypeErrors
// thrown while the plugin registers.

// Request-time errors answer floods of bad clients: skip the stack trace.
const NO_STACK = false

// Options (register time)
export const InvalidOptionError = createError<[string, string]>(
  'FST_FANOUT_INVALID_OPTION', 'fastify-fanout: option `%s` %s', 500, TypeError
)
export const WebSocketAlreadyRegisteredError = createError(
  'FST_FANOUT_WEBSOCKET_REGISTERED',
  'fastify-fanout registers @fastify/websocket itself (it owns compression, frame limits and graceful shutdown): ' +
    'remove your own registration, pass ws settings through fastify-fanout options, and add your own ' +
    'websocket routes after registering fastify-fanout',
  500
)
export const NotClusterPrimaryError = createError(
  'FST_FANOUT_NOT_CLUSTER_PRIMARY',
  'fastify-fanout: clusterMetrics serves the whole machine\'s metrics from the primary process of a node:cluster: ' +
    'register it there (where cluster.isPrimary), and set `metrics: { cluster: true }` in the workers',
  500, TypeError
)

// Admission, before the upgrade
export const TokenMissingError = createError(
  'FST_FANOUT_TOKEN_MISSING',
  'No token: send `Authorization: Bearer <jwt>`, the `token` query parameter, or the `bearer.<jwt>` WebSocket subprotocol',
  401, Error, NO_STACK
)
export const TokenInvalidError = createError<[string]>(
  'FST_FANOUT_TOKEN_INVALID', 'Invalid token: %s', 401, Error, NO_STACK
)
export const TokenExpiredError = createError(
  'FST_FANOUT_TOKEN_EXPIRED', 'Token expired', 401, Error, NO_STACK
)
export const OriginForbiddenError = createError<[string]>(
  'FST_FANOUT_ORIGIN_FORBIDDEN', 'Origin %s is not allowed', 403, Error, NO_STACK
)
export const ScopeForbiddenError = createError<[string]>(
  'FST_FANOUT_SCOPE_FORBIDDEN', 'Token lacks the `%s` scope', 403, Error, NO_STACK
)
export const TooManyConnectionsError = createError(
  'FST_FANOUT_TOO_MANY_CONNECTIONS',
  'This instance is at its connection limit: try another instance or later', 503, Error, NO_STACK
)
export const TooManyUserConnectionsError = createError<[number]>(
  'FST_FANOUT_TOO_MANY_USER_CONNECTIONS',
  'This user already holds %d connections, the most allowed', 429, Error, NO_STACK
)
export const UnsupportedSubprotocolError = createError<[string, string]>(
  'FST_FANOUT_UNSUPPORTED_SUBPROTOCOL',
  'None of the offered WebSocket subprotocols (%s) is spoken here: offer %s, or none', 400, Error, NO_STACK
)
export const ShuttingDownError = createError(
  'FST_FANOUT_SHUTTING_DOWN', 'This instance is shutting down: reconnect to another one', 503, Error, NO_STACK
)

// Broadcast requests
export const InvalidBroadcastError = createError<[string]>(
  'FST_FANOUT_INVALID_BROADCAST', 'Invalid broadcast: %s', 400, Error, NO_STACK
)

// Centrifugo's HTTP server API (serverApi). Refusals of the method itself
// (unknown channel, bad values) are answered in Centrifugo's own
// `{"error":{"code","message"}}` form with HTTP 200, as Centrifugo does.
export const ApiCredentialsMissingError = createError<[string]>(
  'FST_FANOUT_API_CREDENTIALS_MISSING',
  'No credentials: send the API key in `X-API-Key: <key>` (or `Authorization: apikey <key>`), or `Authorization: Bearer <jwt>` with the `%s` scope',
  401, Error, NO_STACK
)
export const ApiKeyInvalidError = createError<[string]>(
  'FST_FANOUT_API_KEY_INVALID', 'Invalid API key: %s', 401, Error, NO_STACK
)
export const InvalidApiRequestError = createError<[string]>(
  'FST_FANOUT_INVALID_API_REQUEST', 'Invalid server API request: %s', 400, Error, NO_STACK
)

// Decorator API misuse
export const InvalidCloseCodeError = createError<[unknown]>(
  'FST_FANOUT_INVALID_CLOSE_CODE',
  'Close code %s is not allowed: use 1000 or an application code in 3000-4999', 500, TypeError
)
export const InvalidCloseReasonError = createError<[number]>(
  'FST_FANOUT_INVALID_CLOSE_REASON', 'A close reason must be a string of at most %d bytes (UTF-8)', 500, TypeError
)
export const InvalidMessageError = createError<[string, { cause: unknown }?]>(
  'FST_FANOUT_INVALID_MESSAGE', 'Message data must be JSON-serializable: %s', 500, TypeError
)
export const InvalidArgumentError = createError<[string, string]>(
  'FST_FANOUT_INVALID_ARGUMENT', 'fastify-fanout: `%s` %s', 500, TypeError
)
export const UpgradeRequiredError = createError<[string]>(
  'FST_FANOUT_UPGRADE_REQUIRED', '%s is a WebSocket endpoint: connect with a WebSocket client', 426, Error, NO_STACK
)

// Backplane
export const RedisUnreachableError = createError<[string, string]>(
  'FST_FANOUT_REDIS_UNREACHABLE', 'fastify-fanout: Redis at %s %s', 500
)
export const BackplaneDownError = createError<[number]>(
  'FST_FANOUT_BACKPLANE_DOWN',
  'Redis is unreachable: delivered on this instance only (%d connections), not to other instances', 503, Error, NO_STACK
)

export const SurveyFailedError = createError<[string]>(
  'FST_FANOUT_SURVEY_FAILED', 'Could not ask every instance: %s', 503, Error, NO_STACK
)

export const HistoryUnavailableError = createError<[string, { cause: unknown }?]>(
  'FST_FANOUT_HISTORY_UNAVAILABLE',
  'Redis is unreachable: channel %s keeps history, and a publication gets its offset there, so nothing was published; retry later', 503, Error, NO_STACK
)
