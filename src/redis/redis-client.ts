import type { FastifyBaseLogger } from 'fastify';
import { Redis } from 'ioredis';
import { Gauge } from 'prom-client';
import type { RedisSettings } from '../config.js';
import type { Metrics } from '../metrics/metrics.js';

/** A command Redis has not answered by then fails, and the caller falls back (rate limits: to memory). */
const COMMAND_TIMEOUT_MS = 1000;
const CONNECT_TIMEOUT_MS = 2000;
/** The longest pause between two attempts to reach a lost Redis. */
const MAX_RECONNECT_DELAY_MS = 2000;

/**
 * The connection the API processes share their state through. It never queues commands while
 * disconnected (ioredis would hold them until Redis is back, and a login would wait with them): a
 * command fails at once, or after COMMAND_TIMEOUT_MS, and its caller has an answer without Redis.
 * It reconnects by itself; losing and regaining Redis is logged once each, and shown by
 * `statistics_redis_up` and `/ready`.
 */
export function connectRedis(settings: RedisSettings, metrics: Metrics, log: FastifyBaseLogger): Redis {
  const redis = new Redis(settings.url, {
    enableOfflineQueue: false,
    commandTimeout: COMMAND_TIMEOUT_MS,
    connectTimeout: CONNECT_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    retryStrategy: (attempt) => Math.min(attempt * 100, MAX_RECONNECT_DELAY_MS),
  });
  let lost = false;
  redis.on('ready', () => {
    if (lost) log.info('Redis answers again: rate-limit counts are shared again');
    lost = false;
  });
  redis.on('error', (error) => {
    if (lost) return;
    lost = true;
    log.warn(
      { err: error },
      'Redis does not answer: each process counts rate limits on its own until it is back',
    );
  });
  new Gauge({
    name: 'statistics_redis_up',
    help: 'Whether the connection to REDIS_URL is ready (1) or not (0); rate limits count per process while 0',
    registers: [metrics.registry],
    collect() {
      this.set(redisReady(redis) ? 1 : 0);
    },
  });
  return redis;
}

/**
 * Waits (at most the connect timeout) for the first connection, so that the first requests already
 * count in Redis; a Redis that does not answer by then delays the start no further.
 */
export async function firstConnection(redis: Redis): Promise<void> {
  if (redisReady(redis)) return;
  let done = () => {};
  const connected = new Promise<void>((resolve) => {
    done = resolve;
  });
  const timer = setTimeout(done, CONNECT_TIMEOUT_MS);
  redis.once('ready', done);
  await connected;
  clearTimeout(timer);
  redis.off('ready', done);
}

export function redisReady(redis: Redis): boolean {
  return redis.status === 'ready';
}

/** Closes the connection, waiting for the commands in flight (or drops it when Redis is gone). */
export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
  else redis.disconnect();
}
