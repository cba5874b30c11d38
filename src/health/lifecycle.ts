/**
 * Where the process is in its life, for orchestrators: `starting` until the migrations have run,
 * `ready` while it serves, `draining` once a stop has begun. `/ready` answers 200 only when ready
 * and every readiness check (the database, and whatever a feature adds) answers.
 */
export type LifecycleState = 'starting' | 'ready' | 'draining';

/** Answers whether a dependency works; must settle within a couple of seconds. */
export type ReadinessCheck = () => Promise<boolean>;

export class Lifecycle {
  #state: LifecycleState;
  readonly #checks = new Map<string, ReadinessCheck>();
  /** Checks shown by `/ready` that do not make the process unready. */
  readonly #informational = new Set<string>();
  readonly #whenReady: (() => void)[] = [];

  constructor(state: LifecycleState) {
    this.#state = state;
  }

  get state(): LifecycleState {
    return this.#state;
  }

  /** The migrations have run: requests may reach the database. */
  ready(): void {
    if (this.#state !== 'starting') return;
    this.#state = 'ready';
    for (const listener of this.#whenReady.splice(0)) listener();
  }

  /** Runs `listener` once the migrations have run (at once if they have): work that is not a request. */
  whenReady(listener: () => void): void {
    if (this.#state === 'ready') listener();
    else if (this.#state === 'starting') this.#whenReady.push(listener);
  }

  /** A stop has begun: tell load balancers to send no more traffic. */
  drain(): void {
    this.#state = 'draining';
  }

  /**
   * Adds a dependency `/ready` must find working (a feature's broker, a replica...). An informational
   * one is only shown: a dependency that HTTP traffic does not need must not take the API out of rotation.
   */
  addCheck(name: string, check: ReadinessCheck, { informational = false } = {}): void {
    this.#checks.set(name, check);
    if (informational) this.#informational.add(name);
    else this.#informational.delete(name);
  }

  /** Each check's answer, by name (run together), and whether every one that counts is ok. */
  async check(): Promise<{ checks: Record<string, 'ok' | 'unavailable'>; ok: boolean }> {
    const entries = await Promise.all(
      [...this.#checks].map(async ([name, check]) => [name, (await check()) ? 'ok' : 'unavailable'] as const),
    );
    return {
      checks: Object.fromEntries(entries),
      ok: entries.every(([name, answer]) => answer === 'ok' || this.#informational.has(name)),
    };
  }
}
