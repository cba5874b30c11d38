import { DomainError } from './errors.js';

/** How many keys one limiter remembers at most; past that, the oldest windows are dropped first. */
const MAX_KEYS = 100_000;

/**
 * Counts attempts per key (an account, a client address) in fixed windows, in memory. One process
 * serves the database, so one process's count is the whole count. `now` is the clock (Date.now).
 */
export class RateLimiter {
  readonly #windows = new Map<string, { count: number; resetsAt: number }>();

  constructor(
    readonly name: string,
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly now: () => number,
  ) {}

  /** Counts an attempt; throws a 429 naming this limit when the key has used up its window. */
  hit(key: string): void {
    this.check(key);
    this.record(key);
  }

  /** Throws the 429 if the key has used up its window, without counting (for limits on failures). */
  check(key: string): void {
    if (this.limit === 0) return;
    const now = this.now();
    const window = this.#current(key, now);
    if (window.count < this.limit) return;
    const retryAfter = Math.max(1, Math.ceil((window.resetsAt - now) / 1000));
    throw new DomainError(
      'TOO_MANY_REQUESTS',
      `Too many attempts: the ${this.name} limit allows ${this.limit} per ${this.windowMs / 1000} s; retry in ${retryAfter} s`,
      retryAfter,
    );
  }

  record(key: string): void {
    if (this.limit > 0) this.#current(key, this.now()).count++;
  }

  reset(key: string): void {
    this.#windows.delete(key);
  }

  #current(key: string, now: number) {
    let window = this.#windows.get(key);
    if (!window || window.resetsAt <= now) {
      this.#windows.delete(key);
      if (this.#windows.size >= MAX_KEYS) this.#sweep(now);
      window = { count: 0, resetsAt: now + this.windowMs };
      this.#windows.set(key, window);
    }
    return window;
  }

  #sweep(now: number): void {
    for (const [key, window] of this.#windows) {
      if (window.resetsAt <= now || this.#windows.size >= MAX_KEYS) this.#windows.delete(key);
      else break;
    }
  }
}
