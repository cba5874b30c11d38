import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export interface Config {
  readonly environment: 'production' | 'development' | 'test';
  readonly databaseUrl: string;
  readonly dataDir: string;
  readonly host: string;
  readonly port: number;
  readonly logLevel: string;
  readonly jwtSecret: string;
  readonly jwtLifetimeSeconds: number;
  /** Largest request body accepted, in bytes; larger ones get a 413. */
  readonly bodyLimitBytes: number;
  /** Largest body of a reading batch (up to 10,000 readings) on POST /data/. */
  readonly batchBodyLimitBytes: number;
  /** How far ahead of the server's clock a device timestamp may be before it is refused. */
  readonly maxFutureSkewSeconds: number;
  /** The most buckets one time series may have. */
  readonly maxSeriesBuckets: number;
  /** Browser origins allowed to call the API (CORS); none by default. */
  readonly corsOrigins: readonly string[];
  /** Behind a reverse proxy, take the client address from X-Forwarded-For. */
  readonly trustProxy: boolean;
  readonly rateLimits: RateLimits;
  /** `token`: each device gets a secret, and POST /data/ needs it. `open` (default): ingest is open to all. */
  readonly ingestAuth: 'open' | 'token';
}

/** Attempts allowed per window (0 turns a limit off). */
export interface RateLimits {
  readonly windowSeconds: number;
  readonly loginPerAccount: number;
  readonly loginPerAddress: number;
  readonly registerPerAddress: number;
}

export class ConfigError extends Error {}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const MIN_SECRET_BYTES = 32;

type Environment = Record<string, string | undefined>;

/** Reads the environment once, validates it, and returns a frozen Config. Nothing else reads process.env. */
export function loadConfig(env: Environment = process.env): Config {
  const environment = readEnvironment(env.NODE_ENV);
  const dataDir = resolve(env.DATA_DIR ?? './data');
  const databaseUrl = readDatabaseUrl(env.DATABASE_URL, dataDir);
  return Object.freeze({
    environment,
    databaseUrl,
    dataDir,
    host: env.HOST ?? '127.0.0.1',
    port: readInteger('PORT', env.PORT, 8000, 0, 65535),
    logLevel: readLogLevel(env.LOG_LEVEL),
    jwtSecret: readJwtSecret(env.JWT_SECRET, environment, dataDir),
    jwtLifetimeSeconds: readInteger('JWT_LIFETIME_SECONDS', env.JWT_LIFETIME_SECONDS, 3600, 1, 31_536_000),
    bodyLimitBytes: readInteger('BODY_LIMIT_BYTES', env.BODY_LIMIT_BYTES, 1_048_576, 1024, 104_857_600),
    batchBodyLimitBytes: readInteger(
      'BATCH_BODY_LIMIT_BYTES',
      env.BATCH_BODY_LIMIT_BYTES,
      8_388_608,
      1024,
      268_435_456,
    ),
    corsOrigins: readList(env.CORS_ORIGINS),
    trustProxy: readBoolean('TRUST_PROXY', env.TRUST_PROXY),
    rateLimits: Object.freeze({
      windowSeconds: readInteger('RATE_LIMIT_WINDOW_SECONDS', env.RATE_LIMIT_WINDOW_SECONDS, 900, 1, 86_400),
      loginPerAccount: readInteger('LOGIN_LIMIT_PER_ACCOUNT', env.LOGIN_LIMIT_PER_ACCOUNT, 10, 0, 1_000_000),
      loginPerAddress: readInteger('LOGIN_LIMIT_PER_ADDRESS', env.LOGIN_LIMIT_PER_ADDRESS, 100, 0, 1_000_000),
      registerPerAddress: readInteger(
        'REGISTER_LIMIT_PER_ADDRESS',
        env.REGISTER_LIMIT_PER_ADDRESS,
        20,
        0,
        1_000_000,
      ),
    }),
    ingestAuth: readChoice('INGEST_AUTH', env.INGEST_AUTH, ['open', 'token'] as const, 'open'),
    maxSeriesBuckets: readInteger('MAX_SERIES_BUCKETS', env.MAX_SERIES_BUCKETS, 10_000, 1, 1_000_000),
    maxFutureSkewSeconds: readInteger(
      'MAX_FUTURE_SKEW_SECONDS',
      env.MAX_FUTURE_SKEW_SECONDS,
      300,
      0,
      31_536_000,
    ),
  });
}

function readEnvironment(value: string | undefined): Config['environment'] {
  if (value === undefined || value === '' || value === 'development') return 'development';
  if (value === 'production' || value === 'test') return value;
  throw new ConfigError(`NODE_ENV must be production, development or test, not "${value}"`);
}

function readDatabaseUrl(value: string | undefined, dataDir: string): string {
  if (value === undefined || value === '') return `sqlite:${join(dataDir, 'statistics.db')}`;
  if (/^postgres(ql)?:\/\//.test(value)) return value;
  if (value.startsWith('sqlite:') && value.length > 'sqlite:'.length) {
    return `sqlite:${resolve(value.slice('sqlite:'.length))}`;
  }
  throw new ConfigError(
    'DATABASE_URL must be postgres://user@host:port/database, postgresql://... or sqlite:PATH',
  );
}

function readInteger(name: string, value: string | undefined, fallback: number, min: number, max: number) {
  if (value === undefined || value === '') return fallback;
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || parsed < min || parsed > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, not "${value}"`);
  }
  return parsed;
}

function readList(value: string | undefined): readonly string[] {
  return Object.freeze(
    (value ?? '')
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== ''),
  );
}

function readBoolean(name: string, value: string | undefined): boolean {
  if (value === undefined || value === '' || value === 'false' || value === '0') return false;
  if (value === 'true' || value === '1') return true;
  throw new ConfigError(`${name} must be true or false, not "${value}"`);
}

function readChoice<T extends string>(
  name: string,
  value: string | undefined,
  choices: readonly T[],
  fallback: T,
): T {
  if (value === undefined || value === '') return fallback;
  if ((choices as readonly string[]).includes(value)) return value as T;
  throw new ConfigError(`${name} must be one of ${choices.join(', ')}, not "${value}"`);
}

function readLogLevel(value: string | undefined): string {
  if (value === undefined || value === '') return 'info';
  if (LOG_LEVELS.includes(value)) return value;
  throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, not "${value}"`);
}

/**
 * Production must bring its own strong secret. Development generates one and keeps it in the
 * data folder, so tokens survive a restart without anyone choosing a guessable default.
 */
function readJwtSecret(value: string | undefined, environment: Config['environment'], dataDir: string) {
  if (value !== undefined && value !== '') {
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
