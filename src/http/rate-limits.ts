import type { Redis } from 'ioredis';
import {
  type IRateLimiterOptions,
  type RateLimiterAbstract,
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
} from 'rate-limiter-flexible';
import { DomainError } from './errors.js';

/** Makes the counter of one limit. */
export type CountsStore = (options: IRateLimiterOptions) => RateLimiterAbstract;

/**
 * Where the counts live, chosen here and nowhere else. Without Redis, in this process's memory: the
 * memory store keeps every key until its window ends and evicts nothing early, so a flood of made-up
 * keys costs memory, never a victim's count; the per-address limits, checked first, bound how many
 * keys one address can make. With Redis, in Redis, so that every API process sees one count; while
 * Redis does not answer, each process counts in its own memory (rate-limiter-flexible's insurance
 * limiter): the limits then hold per process, which is looser by the number of processes but neither
 * refuses every login (closing on failure) nor lets every attempt through (opening on failure).
 */
export function countsStore(redis?: { client: Redis; keyPrefix: string }): CountsStore {
  if (!redis) return (options) => new RateLimiterMemory(options);
  return (options) =>
    new RateLimiterRedis({
      ...options,
      storeClient: redis.client,
      keyPrefix: `${redis.keyPrefix}rate-limit:${options.keyPrefix}`,
      rejectIfRedisNotReady: true,
      insuranceLimiter: new RateLimiterMemory(options),
    });
}

/** Counts attempts per key (an account, a client address) in fixed windows; 0 turns a limit off. */
export class AttemptLimit {
  readonly #counts: RateLimiterAbstract | undefined;

  constructor(
    readonly name: string,
    private readonly limit: number,
    private readonly windowSeconds: number,
    store: CountsStore,
  ) {
    this.#counts = limit > 0 ? store({ keyPrefix: name, points: limit, duration: windowSeconds }) : undefined;
  }

  /**
   * Counts an attempt at once (before any slow work, so parallel attempts cannot all slip in), and
   * throws a 429 naming this limit when the key has used up its window.
   */
  async hit(key: string): Promise<void> {
    try {
      await this.#counts?.consume(key);
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      const retryAfter = Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
      throw new DomainError(
        'TOO_MANY_REQUESTS',
        `Too many attempts: the ${this.name} limit allows ${this.limit} per ${this.windowSeconds} s; retry in ${retryAfter} s`,
        retryAfter,
      );
    }
  }

  /** Forgets the key's count (a successful login). */
  async reset(key: string): Promise<void> {
    await this.#counts?.delete(key);
  }
}
