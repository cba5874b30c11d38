import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism, hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { parseEnv } from 'node:util';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { type SettingName, type Settings, settings } from './config/settings.js';
import type { Retention } from './db/maintenance.js';
import type { ReadReplicaSettings } from './db/read-replicas.js';

export interface Config {
  readonly environment: Settings['NODE_ENV'];
  readonly databaseUrl: string;
  /** SQLITE_WAL_LIMIT_MB, in bytes (db/checkpointer.ts). */
  readonly sqliteWalLimitBytes: number;
  /** DATABASE_READ_URL and MAX_REPLICA_LAG_MS: replicas for the reads that may lag (PostgreSQL only). */
  readonly readReplicas: ReadReplicaSettings;
  /** WORKERS: how many processes `statistics serve` starts on one port. */
  readonly workers: number;
  readonly dataDir: string;
  readonly host: string;
  readonly port: number;
  readonly logLevel: Settings['LOG_LEVEL'];
  readonly logFormat: Settings['LOG_FORMAT'];
  readonly jwtSecret: string;
  readonly jwtLifetimeSeconds: number;
  readonly bodyLimitBytes: number;
  readonly batchBodyLimitBytes: number;
  /** INGEST_BATCH_QUEUE: batches that may wait for their turn (data/batch-turns.ts). */
  readonly ingestBatchQueue: number;
  readonly bodyTimeoutMs: number;
  readonly maxFutureSkewSeconds: number;
  readonly maxSeriesBuckets: number;
  /** RETENTION_DAYS and ROLLUP_RETENTION_DAYS, applied by the maintenance job (db/maintenance.ts). */
  readonly retention: Retention;
  /** ROLLUP_FOLD_INTERVAL_MS: 0 when this process does not fold. */
  readonly rollupFoldIntervalMs: number;
  readonly heavyQueries: HeavyQuerySettings;
  readonly statisticsKeys: Settings['STATISTICS_KEYS'];
  readonly corsOrigins: readonly string[];
  /** Fastify's `trustProxy`: false, a hop count, or the trusted proxies' addresses and CIDR ranges. */
  readonly trustProxy: false | number | string[];
  readonly rateLimits: RateLimits;
  /** REDIS_URL and REDIS_KEY_PREFIX: where processes share their rate-limit counts; undefined: in memory. */
  readonly redis: RedisSettings | undefined;
  readonly ingestAuth: Settings['INGEST_AUTH'];
  readonly metrics: MetricsSettings;
  /** DATABASE_WAIT_MS: how long a start waits for an unreachable database (db/migrate.ts). */
  readonly databaseWaitMs: number;
  readonly shutdownDelayMs: number;
  /** Ingest from an MQTT broker; undefined unless MQTT_URL is set. */
  readonly mqtt: MqttSettings | undefined;
}

/** STATISTICS_TIMEOUT_MS, _CONCURRENCY, _BUSY_SHARE, _QUEUE, _LIGHT_READINGS and _THREAD_MEMORY_MB. */
export interface HeavyQuerySettings {
  readonly timeoutMs: number;
  readonly concurrency: number;
  /** STATISTICS_BUSY_SHARE, as a fraction (0.01 to 1): how much of the time heavy queries run while ingest is busy. */
  readonly busyShare: number;
  readonly queue: number;
  /** STATISTICS_LIGHT_READINGS: at most this many readings takes the light lane; 0: no light lane. */
  readonly lightReadings: number;
  /** STATISTICS_THREAD_MEMORY_MB: each statistics and folding thread's V8 old generation, in MB. */
  readonly threadMemoryMb: number;
}

/** REDIS_URL and REDIS_KEY_PREFIX. */
export interface RedisSettings {
  readonly url: string;
  /** Put before every key the service writes, so that deployments sharing one Redis stay apart. */
  readonly keyPrefix: string;
}

/** Attempts allowed per window (0 turns a limit off). */
export interface RateLimits {
  readonly windowSeconds: number;
  readonly loginPerAccount: number;
  readonly loginPerAddress: number;
  readonly registerPerAddress: number;
}

/** `GET /metrics` is on when a token or a port of its own is set, off otherwise. */
export interface MetricsSettings {
  readonly enabled: boolean;
  readonly token: string | undefined;
  readonly port: number | undefined;
  readonly host: string;
}

export interface MqttSettings {
  readonly url: string;
  readonly topicPrefix: string;
  readonly sharedGroup: string | undefined;
  readonly clientId: string;
  readonly sessionExpirySeconds: number;
  readonly errorsTopic: boolean;
  readonly deviceAuth: Settings['MQTT_DEVICE_AUTH'];
  readonly reconnectMaxSeconds: number;
}

export class ConfigError extends Error {}

const MIN_SECRET_BYTES = 32;

export type Environment = Record<string, string | undefined>;

/**
 * The process environment over the variables of a `.env` file (in the working directory unless
 * another is named): what the environment sets wins. The only place that reads process.env.
 */
export function processEnvironment(file = resolve('.env')): Environment {
  const fromFile = existsSync(file) ? parseEnv(readFileSync(file, 'utf8')) : {};
  return { ...fromFile, ...process.env };
}

/** Reads the environment once, checks every setting against its schema, and returns a frozen Config. */
export function loadConfig(env: Environment = processEnvironment()): Config {
  const value = readSettings(env);
  const environment = value.NODE_ENV;
  const dataDir = resolve(value.DATA_DIR);
  const url = databaseUrl(value.DATABASE_URL, dataDir);
  checkScaleOut(value, url);
  return deepFreeze({
    environment,
    databaseUrl: url,
    sqliteWalLimitBytes: value.SQLITE_WAL_LIMIT_MB * 1024 * 1024,
    readReplicas: { urls: value.DATABASE_READ_URL ?? [], maxLagMs: value.MAX_REPLICA_LAG_MS },
    workers: value.WORKERS,
    dataDir,
    host: value.HOST,
    port: value.PORT,
    logLevel: value.LOG_LEVEL,
    logFormat: value.LOG_FORMAT,
    jwtSecret: jwtSecret(value.JWT_SECRET, environment, dataDir),
    jwtLifetimeSeconds: value.JWT_LIFETIME_SECONDS,
    bodyLimitBytes: value.BODY_LIMIT_BYTES,
    batchBodyLimitBytes: value.BATCH_BODY_LIMIT_BYTES,
    ingestBatchQueue: value.INGEST_BATCH_QUEUE,
    bodyTimeoutMs: value.BODY_TIMEOUT_MS,
    maxFutureSkewSeconds: value.MAX_FUTURE_SKEW_SECONDS,
    maxSeriesBuckets: value.MAX_SERIES_BUCKETS,
    retention: retention(value),
    rollupFoldIntervalMs: value.ROLLUP_FOLD_INTERVAL_MS,
    heavyQueries: {
      timeoutMs: value.STATISTICS_TIMEOUT_MS,
      concurrency: value.STATISTICS_CONCURRENCY ?? defaultConcurrency(url),
      busyShare: (value.STATISTICS_BUSY_SHARE ?? defaultBusyShare(url)) / 100,
      queue: value.STATISTICS_QUEUE,
      lightReadings: value.STATISTICS_LIGHT_READINGS,
      threadMemoryMb: value.STATISTICS_THREAD_MEMORY_MB,
    },
    statisticsKeys: value.STATISTICS_KEYS,
    corsOrigins: value.CORS_ORIGINS,
    trustProxy: trustProxy(value.TRUST_PROXY),
    rateLimits: {
      windowSeconds: value.RATE_LIMIT_WINDOW_SECONDS,
      loginPerAccount: value.LOGIN_LIMIT_PER_ACCOUNT,
      loginPerAddress: value.LOGIN_LIMIT_PER_ADDRESS,
      registerPerAddress: value.REGISTER_LIMIT_PER_ADDRESS,
    },
    redis:
      value.REDIS_URL === undefined ? undefined : { url: value.REDIS_URL, keyPrefix: value.REDIS_KEY_PREFIX },
    ingestAuth: value.INGEST_AUTH,
    metrics: {
      enabled: value.METRICS_TOKEN !== undefined || value.METRICS_PORT !== undefined,
      token: value.METRICS_TOKEN,
      port: value.METRICS_PORT,
      host: value.METRICS_HOST ?? value.HOST,
    },
    databaseWaitMs: value.DATABASE_WAIT_MS,
    shutdownDelayMs: value.SHUTDOWN_DELAY_MS,
    mqtt: mqttSettings(value),
  });
}

/** Each declared setting from its variable (empty counts as unset), or its default. */
function readSettings(env: Environment): Settings {
  const value: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(settings) as [SettingName, TSchema][]) {
    const text = env[name];
    const parsed = text === undefined || text === '' ? schema.default : parse(name, schema, text);
    if (parsed !== undefined) value[name] = parsed;
  }
  return value as Settings;
}

/** A variable's text as the type its schema declares, or a ConfigError naming the variable. */
function parse(name: string, schema: TSchema, text: string): unknown {
  const shown = schema['x-secret'] ? '' : `, not "${text}"`;
  let value: unknown = text;
  let expected: string;
  if (schema.type === 'integer') {
    expected = `a whole number from ${schema.minimum} to ${schema.maximum}`;
    value = /^\d+$/.test(text) ? Number(text) : undefined;
  } else if (schema.type === 'boolean') {
    expected = 'true or false';
    value = { true: true, 1: true, false: false, 0: false }[text];
  } else if (schema.type === 'array') {
    expected = schema['x-format'] ?? 'a comma-separated list';
    value = text
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');
  } else if (Array.isArray(schema.anyOf)) {
    const choices = schema.anyOf.map((choice: TSchema) => choice.const as string);
    expected = `one of ${choices.join(', ')}`;
  } else {
    expected = schema['x-format'] ?? 'text';
  }
  if (value === undefined || !Value.Check(schema, value)) {
    throw new ConfigError(`${name} must be ${expected}${shown}`);
  }
  return value;
}

/** Several processes and read replicas need PostgreSQL; several processes cannot share one MQTT session. */
function checkScaleOut(value: Settings, url: string): void {
  const sqlite = url.startsWith('sqlite:');
  if (value.WORKERS > 1 && sqlite) {
    throw new ConfigError(
      `WORKERS=${value.WORKERS} (or serve --workers) needs PostgreSQL: SQLite stays single-process ` +
        '(one writer on one file, heavy reads in worker threads). Run one process, or set DATABASE_URL=postgres://...',
    );
  }
  if (value.DATABASE_READ_URL !== undefined && sqlite) {
    throw new ConfigError(
      'DATABASE_READ_URL names PostgreSQL replicas: it needs DATABASE_URL=postgres://... too',
    );
  }
  if (value.WORKERS > 1 && value.MQTT_URL !== undefined) {
    // Every worker would take the one MQTT_CLIENT_ID, and the broker keeps one session per id.
    throw new ConfigError(
      'WORKERS > 1 with MQTT_URL: each process needs a MQTT_CLIENT_ID of its own; run MQTT ingest in a ' +
        'single-process service (WORKERS=1) with MQTT_SHARED_GROUP beside the others',
    );
  }
}

/** Rollups outlive the readings they sum up: statistics over dropped readings answer from them. */
function retention(value: Settings): Retention {
  const readings = value.RETENTION_DAYS;
  const rollups = value.ROLLUP_RETENTION_DAYS;
  if (rollups !== undefined && (readings === undefined || rollups < readings)) {
    throw new ConfigError(
      `ROLLUP_RETENTION_DAYS=${rollups} must be at least RETENTION_DAYS (${readings ?? 'unset: readings kept forever'}): ` +
        'the rollups answer for readings already removed, never the other way round',
    );
  }
  return { readingsDays: readings, rollupsDays: rollups };
}

function mqttSettings(value: Settings): MqttSettings | undefined {
  if (value.MQTT_URL === undefined) return undefined;
  if (value.INGEST_AUTH === 'token' && value.MQTT_DEVICE_AUTH !== 'broker') {
    // The service never sees a publisher's MQTT password: only the broker can hold devices to their topics.
    throw new ConfigError(
      "INGEST_AUTH=token with MQTT_URL needs the broker to check each device's ingest token and topic: " +
        'configure it as the README says (Devices that speak MQTT) and set MQTT_DEVICE_AUTH=broker',
    );
  }
  return {
    url: value.MQTT_URL,
    topicPrefix: value.MQTT_TOPIC_PREFIX,
    sharedGroup: value.MQTT_SHARED_GROUP,
    clientId: value.MQTT_CLIENT_ID ?? `statistics-${hostname()}`,
    sessionExpirySeconds: value.MQTT_SESSION_EXPIRY_SECONDS,
    errorsTopic: value.MQTT_ERRORS_TOPIC,
    deviceAuth: value.MQTT_DEVICE_AUTH,
    reconnectMaxSeconds: value.MQTT_RECONNECT_MAX_SECONDS,
  };
}

/**
 * TRUST_PROXY as Fastify takes it. `true` is refused rather than read as one hop: it used to mean
 * "the left-most X-Forwarded-For address", which any client writes itself, and a silent change of
 * meaning would hide that the setting needs a look.
 */
function trustProxy(text: string): Config['trustProxy'] {
  if (text === 'true') {
    throw new ConfigError(
      'TRUST_PROXY=true would let any client choose its own address (the left-most X-Forwarded-For). ' +
        'Set the number of proxies in front of the service (TRUST_PROXY=1 for one) or their addresses ' +
        '(TRUST_PROXY=10.0.0.1 or a CIDR range such as 172.16.0.0/12)',
    );
  }
  if (text === 'false' || text === '0') return false;
  if (/^\d{1,2}$/.test(text)) return Number(text);
  const proxies = text.split(',').map((item) => item.trim());
  for (const proxy of proxies) {
    const [address = '', prefix] = proxy.split('/');
    const family = isIP(address);
    if (family === 0 || (prefix !== undefined && Number(prefix) > (family === 4 ? 32 : 128))) {
      throw new ConfigError(`TRUST_PROXY: "${proxy}" is not an IPv4 or IPv6 address or CIDR range`);
    }
  }
  return proxies;
}

/**
 * STATISTICS_CONCURRENCY's default. SQLite: a worker thread per core, at least 2, at nice +10, so that
 * ingest and /health get the cores first. PostgreSQL: half the cores, at least 1, since its backends
 * run at the priority of every other query: on 2 cores, while 4 clients repeated exact statistics over
 * 1M readings, single-reading ingest kept 0.52 of its idle rate with 2 at once (/health p99 197 ms),
 * 0.94 with 1 (75 ms): medians of 5 alternating rounds, load average 8-13 (README, Performance).
 */
function defaultConcurrency(url: string): number {
  const cores = availableParallelism();
  return url.startsWith('sqlite:') ? Math.max(2, cores) : Math.max(1, Math.floor(cores / 2));
}

/**
 * STATISTICS_BUSY_SHARE's default, in percent. SQLite: 100, its heavy threads run at nice +10 and ingest
 * kept 0.87 of its rate beside them. PostgreSQL's backends cannot be reniced from here: a heavy query runs
 * at ingest's priority, and one at a time kept 0.42 of it on a quiet machine; at 50, 1.28 times main's share
 * (4 alternating pairs, but at a load average of 11-17: README, Performance).
 */
function defaultBusyShare(url: string): number {
  return url.startsWith('sqlite:') ? 100 : 50;
}

function databaseUrl(value: string | undefined, dataDir: string): string {
  if (value === undefined) return `sqlite:${join(dataDir, 'statistics.db')}`;
  if (value.startsWith('sqlite:')) return `sqlite:${resolve(value.slice('sqlite:'.length))}`;
  return value;
}

/**
 * Production must bring its own strong secret. Development generates one and keeps it in the
 * data folder, so tokens survive a restart without anyone choosing a guessable default.
 */
function jwtSecret(value: string | undefined, environment: Config['environment'], dataDir: string) {
  if (value !== undefined) {
    if (Buffer.byteLength(value) < MIN_SECRET_BYTES) {
      throw new ConfigError(
        `JWT_SECRET must be at least ${MIN_SECRET_BYTES} bytes; generate one with: openssl rand -base64 48`,
      );
    }
    return value;
  }
  if (environment === 'production') {
    throw new ConfigError('JWT_SECRET is required when NODE_ENV=production (at least 32 bytes)');
  }
  const file = join(dataDir, 'jwt-secret');
  if (existsSync(file)) {
    const kept = readFileSync(file, 'utf8').trim();
    if (Buffer.byteLength(kept) < MIN_SECRET_BYTES) {
      throw new ConfigError(
        `${file} holds a secret under ${MIN_SECRET_BYTES} bytes: delete it to have a new one generated`,
      );
    }
    return kept;
  }
  mkdirSync(dataDir, { recursive: true });
  const secret = randomBytes(48).toString('base64url');
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return secret;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
