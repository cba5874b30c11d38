import { type Static, type TSchema, Type } from '@sinclair/typebox';

/**
 * Every setting of the service, declared once: its environment variable, type, default and
 * description. The loader (config.ts) parses and checks the environment against these schemas,
 * and `npm run docs:config` writes docs/configuration.md from them.
 *
 * Extra keywords: `x-default` describes a default computed at start (shown in the docs),
 * `x-format` says in words what a string must look like, `x-secret` keeps a value out of messages.
 */

const wholeNumber = (description: string, fallback: number, minimum: number, maximum: number) =>
  Type.Integer({ description, default: fallback, minimum, maximum });

const oneOf = <T extends string>(description: string, fallback: T, choices: readonly T[]) =>
  Type.Union(
    choices.map((choice) => Type.Literal(choice)),
    { description, default: fallback },
  );

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const settings = {
  NODE_ENV: oneOf('`production` makes `JWT_SECRET` mandatory', 'development', [
    'development',
    'production',
    'test',
  ] as const),
  DATA_DIR: Type.String({
    description: 'Where the default SQLite database and the generated development secret live',
    default: './data',
  }),
  DATABASE_URL: Type.String({
    description:
      '`sqlite:PATH` (absolute, or relative to the working directory) or ' +
      '`postgres://user:password@host:5432/database` (`postgresql://` too)',
    pattern: '^(postgres(ql)?://[^/]+.*|sqlite:.+)$',
    'x-format': 'postgres://user@host:port/database, postgresql://... or sqlite:PATH',
    'x-default': 'sqlite:$DATA_DIR/statistics.db',
    'x-secret': true,
  }),
  DATABASE_READ_URL: Type.Array(Type.String({ pattern: '^postgres(ql)?://[^/]+.*$' }), {
    description:
      'PostgreSQL streaming replicas (comma-separated) that answer statistics, series, lists and exports; ' +
      'writes, and reads that must see their own writes, stay on DATABASE_URL. A replica that is down or ' +
      'lags beyond MAX_REPLICA_LAG_MS is skipped, and a query that fails on one is run on the primary',
    'x-format': 'comma-separated postgres://... URLs',
    'x-default': 'none (everything on DATABASE_URL)',
    'x-secret': true,
  }),
  SQLITE_WAL_LIMIT_MB: wholeNumber(
    "SQLite: the size of the write-ahead log (the database's `-wal` file) past which the server pauses writes " +
      'for a moment (requests wait, they are not refused) while a checkpoint copies the log into the database, ' +
      'so that the log starts over at the head of its file (checked once a second: the file may pass it by a ' +
      'second of writes); the file is emptied once writes stop',
    256,
    1,
    1_000_000,
  ),
  MAX_REPLICA_LAG_MS: wholeNumber(
    'How far behind the primary a replica of DATABASE_READ_URL may be and still answer (checked every second)',
    5000,
    0,
    3_600_000,
  ),
  WORKERS: wholeNumber(
    'How many processes `statistics serve` starts on the one port (node:cluster); a process that dies is ' +
      'started again. More than 1 needs PostgreSQL: SQLite serves one process',
    1,
    1,
    256,
  ),
  REDIS_URL: Type.String({
    description:
      'Shares the login and registration rate-limit counts between API processes (WORKERS, or processes ' +
      'on several hosts) through Redis: `redis://[user:password@]host:6379[/db]` or `rediss://...` (TLS). ' +
      'While Redis does not answer, each process counts on its own in memory (the limits then hold per ' +
      'process) and `/ready` shows `redis` unavailable without taking the process out of rotation',
    pattern: '^rediss?://[^/]*(/\\d{1,2})?$',
    'x-format': 'redis://[user:password@]host[:port][/db] or rediss://...',
    'x-default': 'none (the counts live in each process)',
    'x-secret': true,
  }),
  REDIS_KEY_PREFIX: Type.String({
    description:
      'Put before every key this service writes to REDIS_URL, so that several deployments can share one Redis',
    default: 'statistics:',
    minLength: 1,
    maxLength: 100,
  }),
  HOST: Type.String({
    description: 'The address to listen on (`0.0.0.0` in a container)',
    default: '127.0.0.1',
  }),
  PORT: wholeNumber('The port to listen on (0: any free port)', 8000, 0, 65535),
  LOG_LEVEL: oneOf('The least severe log level written', 'info', LOG_LEVELS),
  LOG_FORMAT: oneOf(
    '`json`: one JSON object a line (pino); `pretty`: coloured lines for a person; `auto`: pretty when ' +
      'stdout is a terminal and NODE_ENV is development, JSON otherwise',
    'auto',
    ['auto', 'json', 'pretty'] as const,
  ),
  JWT_SECRET: Type.String({
    description:
      'The HS256 key of the tokens, at least 32 bytes; required when NODE_ENV=production, otherwise ' +
      'generated once and kept in `$DATA_DIR/jwt-secret` so tokens survive restarts. Use the original ' +
      "service's secret to keep its tokens working",
    'x-default': 'generated (development), required (production)',
    'x-secret': true,
  }),
  JWT_LIFETIME_SECONDS: wholeNumber('Token lifetime', 3600, 1, 31_536_000),
  BODY_LIMIT_BYTES: wholeNumber('Largest request body; larger ones get a 413', 1_048_576, 1024, 104_857_600),
  BATCH_BODY_LIMIT_BYTES: wholeNumber(
    'Largest body of `POST /data/` (a batch of 10,000 readings with timestamps is about 1 MB)',
    8_388_608,
    1024,
    268_435_456,
  ),
  BODY_TIMEOUT_MS: wholeNumber(
    'The longest a JSON or form body may take to arrive after its headers (a 408 past it); streamed ' +
      'imports have no total limit, only the 30 s idle timeout',
    120_000,
    1000,
    3_600_000,
  ),
  INGEST_BATCH_QUEUE: wholeNumber(
    'SQLite: how many batches (bodies of `POST /data/` over 1 KB) may wait for their turn to be stored; they are ' +
      'stored in the order they arrived, and one more is answered 503 with `Retry-After` at once',
    256,
    1,
    100_000,
  ),
  MAX_FUTURE_SKEW_SECONDS: wholeNumber(
    "How far ahead of the server's clock a reading's `timestamp` may be",
    300,
    0,
    31_536_000,
  ),
  RETENTION_DAYS: Type.Integer({
    description:
      'Readings older than this many days (whole UTC days) are removed by the hourly maintenance ' +
      '(PostgreSQL: their daily partitions are dropped; SQLite: deleted in batches); their minute ' +
      'rollups stay, so statistics over those days still answer count, min, max and mean',
    minimum: 1,
    maximum: 36_500,
    'x-default': 'none (readings are kept forever)',
  }),
  ROLLUP_RETENTION_DAYS: Type.Integer({
    description:
      'Minute, hour, day and month rollups older than this many days (whole UTC months) are removed by the maintenance; ' +
      'at least RETENTION_DAYS, and needs it set',
    minimum: 1,
    maximum: 36_500,
    'x-default': 'none (rollups are kept forever)',
  }),
  MAX_SERIES_BUCKETS: wholeNumber('The most buckets one time series may have', 10_000, 1, 1_000_000),
  ROLLUP_FOLD_INTERVAL_MS: wholeNumber(
    'How often the hour, day and month rollups behind `accuracy=approx` catch up with the readings ' +
      '(off the ingest path, in short steps); 0 turns the folder off in this process',
    2000,
    0,
    3_600_000,
  ),
  STATISTICS_TIMEOUT_MS: wholeNumber(
    'The longest a statistics or series query may take from its arrival, waiting included; past it the ' +
      'query is stopped (SQLite: its worker thread is ended; PostgreSQL: `statement_timeout`, at most 24 s, ' +
      "under the driver's 25 s limit on any answer) and the answer is a 503",
    30_000,
    1,
    3_600_000,
  ),
  STATISTICS_CONCURRENCY: Type.Integer({
    description:
      'How many statistics and series queries run at once (SQLite: worker threads, each with its own ' +
      "read-only connection, below the server's CPU priority; PostgreSQL: pool connections, each a backend at " +
      "every other query's priority: with PostgreSQL on another machine, about half of its cores)",
    minimum: 1,
    maximum: 64,
    'x-default': 'SQLite: the number of cores, at least 2; PostgreSQL: half the cores, at least 1',
  }),
  STATISTICS_BUSY_SHARE: Type.Integer({
    description:
      'While ingest is busy (readings stored within the last second), the share of the time, in percent, ' +
      'that the heavy statistics and series queries may run: after each, its slot rests for as long again as ' +
      'it ran times (100 / share - 1) before the next one starts, so that ingest and `/health` keep the cores ' +
      'they need; 100: no rest. The light lane never rests',
    minimum: 1,
    maximum: 100,
    'x-default':
      "SQLite: 100 (its heavy threads run below the server's CPU priority instead); PostgreSQL: 50",
  }),
  STATISTICS_THREAD_MEMORY_MB: wholeNumber(
    'The most JavaScript heap (V8 old generation, in MB) each thread that runs statistics, series or rollup ' +
      "folding may use (SQLite: the statistics threads; both engines: the folder's). A query past it ends its " +
      'thread and is answered 422 (narrow the range, or use `accuracy=approx`); the thread is replaced, and a ' +
      'fold step past it is tried again at the next ROLLUP_FOLD_INTERVAL_MS. Exact percentiles hold their values ' +
      'outside this heap (1M readings of x, y and z fit in 16); a series and the folder use it most (10,000 ' +
      "minutes of x, y and z with medians, and the folder's 5,000-reading steps, fit in 32; 43,200 minutes in 64). " +
      'At least 32: below it the folder could not fold ordinary readings at all',
    256,
    32,
    65_536,
  ),
  STATISTICS_QUEUE: wholeNumber(
    'How many statistics and series queries may wait for a slot; beyond that a 503 with `Retry-After` at once',
    16,
    0,
    10_000,
  ),
  STATISTICS_LIGHT_READINGS: wholeNumber(
    'A statistics query that may select at most this many readings (counted from the minute rollups ' +
      'before it runs) takes the light lane: up to `STATISTICS_CONCURRENCY` queries beside the others (SQLite: threads ' +
      "of its own at the server's CPU priority; PostgreSQL: the same pool), with a queue of " +
      '`STATISTICS_QUEUE` of its own, so that it never waits behind a long one; 0 sends every query to ' +
      'the others',
    10_000,
    0,
    1_000_000,
  ),
  STATISTICS_KEYS: oneOf(
    "`original`: `/analyze_statistics/` answers the original service's keys, in its order " +
      '(`минимальное значение`, `максимальное значение`, `количество`, `сумма`, `медиана`); ' +
      '`english`: count, min, max, sum, mean, median and the variances',
    'english',
    ['english', 'original'] as const,
  ),
  INGEST_AUTH: oneOf(
    "`token`: `POST /data/` needs the device's `X-Device-Token`; `open`: ingest is open to everyone",
    'open',
    ['open', 'token'] as const,
  ),
  CORS_ORIGINS: Type.Array(Type.String(), {
    description: 'Browser origins allowed to call the API, comma-separated; none by default',
    default: [],
  }),
  TRUST_PROXY: Type.String({
    description:
      'Behind reverse proxies, which of them to believe about the client address (`X-Forwarded-For`): ' +
      'a hop count (`1`: the one proxy in front; the address it appended is the client) or the ' +
      "proxies' addresses and CIDR ranges, comma-separated (`10.0.0.1, 172.16.0.0/12`). `false` or `0`: " +
      "the connection's address. `true` (trust every hop, so any client could name its own address) is " +
      'refused at start',
    default: 'false',
    pattern: '^(false|true|\\d{1,2}|[0-9A-Fa-f:.]+(/\\d{1,3})?( *, *[0-9A-Fa-f:.]+(/\\d{1,3})?)*)$',
    'x-format': 'false, a hop count, or a comma-separated list of addresses and CIDR ranges',
  }),
  RATE_LIMIT_WINDOW_SECONDS: wholeNumber(
    'The window of the three login and registration limits',
    900,
    1,
    86_400,
  ),
  LOGIN_LIMIT_PER_ACCOUNT: wholeNumber(
    'Login attempts per account and client address that may fail in a window (each is counted before the ' +
      'password is checked; a success resets it, and the owner elsewhere is not locked out); 0 turns the limit off',
    10,
    0,
    1_000_000,
  ),
  LOGIN_LIMIT_PER_ADDRESS: wholeNumber(
    'Login attempts per client address and window; 0: off',
    100,
    0,
    1_000_000,
  ),
  REGISTER_LIMIT_PER_ADDRESS: wholeNumber(
    'Registrations per client address and window; 0: off',
    20,
    0,
    1_000_000,
  ),
  METRICS_TOKEN: Type.String({
    description:
      'Turns on `GET /metrics` (Prometheus) on the API port, for requests with `Authorization: Bearer ' +
      'METRICS_TOKEN` (at least 16 characters); with METRICS_PORT set too, the metrics port asks for it',
    minLength: 16,
    'x-format': 'at least 16 characters',
    'x-default': 'none (metrics off unless METRICS_PORT is set)',
    'x-secret': true,
  }),
  METRICS_PORT: Type.Integer({
    description:
      'Serves `GET /metrics` on a listener of its own at this port (0: any free port), never on the API port',
    minimum: 0,
    maximum: 65535,
    'x-default': 'none',
  }),
  METRICS_HOST: Type.String({
    description: 'The address of the metrics listener',
    'x-default': 'the value of HOST',
  }),
  DATABASE_WAIT_MS: wholeNumber(
    'At start, how long the server waits for a database it cannot reach (down, still starting, out of ' +
      'connections), trying its migrations again with pauses growing from 0.25 to 5 s, before it gives up and ' +
      'exits (each try is logged); meanwhile the process listens and `/ready` answers 503. 0: exit at the first failure',
    60_000,
    0,
    3_600_000,
  ),
  SHUTDOWN_DELAY_MS: wholeNumber(
    'On SIGTERM, how long `/ready` answers 503 while requests are still served, before the server stops ' +
      'taking new connections (lets a load balancer notice first)',
    0,
    0,
    120_000,
  ),
  MQTT_URL: Type.String({
    description:
      'Turns on ingest from an MQTT broker: `mqtt://user:password@host:1883` or `mqtts://...` (TLS). ' +
      'The service subscribes to `MQTT_TOPIC_PREFIX/+/readings` at QoS 1 and acknowledges a message only ' +
      'once its readings are committed (see the README, Devices that speak MQTT)',
    pattern: '^mqtts?://[^/]+/?$',
    'x-format': 'mqtt://[user:password@]host[:port] or mqtts://...',
    'x-default': 'none (MQTT off)',
    'x-secret': true,
  }),
  MQTT_TOPIC_PREFIX: Type.String({
    description:
      'Devices publish to `PREFIX/{device_id}/readings`; refused messages are republished to ' +
      '`PREFIX/{device_id}/errors` when MQTT_ERRORS_TOPIC is on',
    default: 'devices',
    pattern: '^(?!\\$)[^#+\\u0000]*[^#+/\\u0000]$',
    'x-format': 'a topic without wildcards, not starting with $ nor ending with /',
  }),
  MQTT_SHARED_GROUP: Type.String({
    description:
      'Subscribes through the shared subscription `$share/GROUP/...`, so that several API processes split ' +
      "the devices' messages between them (each still needs its own MQTT_CLIENT_ID)",
    pattern: '^[^/#+\\u0000]+$',
    'x-format': 'a name without /, # or +',
    'x-default': 'none (one subscriber gets every message)',
  }),
  MQTT_CLIENT_ID: Type.String({
    description:
      'The stable client id of the persistent session: messages published while the service is down wait ' +
      'in the broker under this id. Give each process its own',
    minLength: 1,
    maxLength: 128,
    'x-format': '1 to 128 characters',
    'x-default': '`statistics-` followed by the host name',
  }),
  MQTT_SESSION_EXPIRY_SECONDS: wholeNumber(
    'How long the broker keeps the session (and the messages for it) while the service is disconnected',
    604_800,
    0,
    4_294_967_295,
  ),
  MQTT_ERRORS_TOPIC: Type.Boolean({
    description: "Republish each refused message's reason (QoS 0) to `PREFIX/{device_id}/errors`",
    default: false,
  }),
  MQTT_DEVICE_AUTH: oneOf(
    '`broker`: the broker authenticates each device (its id as user name, its ingest token as password) and ' +
      'lets it publish only to its own topic (README: the Mosquitto configuration), so the service trusts the ' +
      'topic. Required with INGEST_AUTH=token; `none`: the topic alone names the device',
    'none',
    ['none', 'broker'] as const,
  ),
  MQTT_RECONNECT_MAX_SECONDS: wholeNumber(
    'The longest wait between two attempts to reach a lost broker (the waits double from 1 s, with jitter)',
    30,
    1,
    3600,
  ),
} satisfies Record<string, TSchema>;

export type SettingName = keyof typeof settings;

/** The parsed values, by variable; a setting without a default may be absent. */
export type Settings = { [K in SettingName]: Static<(typeof settings)[K]> };
