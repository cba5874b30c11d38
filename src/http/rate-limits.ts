import { type IRateLimiterOptions, RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { DomainError } from './errors.js';

/**
 * Where the counts live, chosen here and nowhere else: in memory, as one process serves the database.
 * (A later move to Redis changes this function.) The memory store keeps every key until its window
 * ends and evicts nothing early, so a flood of made-up keys costs memory, never a victim's count;
 * the per-address limits, checked first, bound how many keys one address can make.
 */
const countsStore = (options: IRateLimiterOptions) => new RateLimiterMemory(options);

/** Counts attempts per key (an account, a client address) in fixed windows; 0 turns a limit off. */
export class AttemptLimit {
  readonly #counts: RateLimiterMemory | undefined;

  constructor(
    readonly name: string,
    private readonly limit: number,
    private readonly windowSeconds: number,
  ) {
    this.#counts =
      limit > 0 ? countsStore({ keyPrefix: name, points: limit, duration: windowSeconds }) : undefined;
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
