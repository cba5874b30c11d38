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

  constructor(state: LifecycleState) {
    this.#state = state;
  }

  get state(): LifecycleState {
    return this.#state;
  }

  /** The migrations have run: requests may reach the database. */
  ready(): void {
    if (this.#state === 'starting') this.#state = 'ready';
  }

  /** A stop has begun: tell load balancers to send no more traffic. */
  drain(): void {
    this.#state = 'draining';
  }

  /** Adds a dependency `/ready` must find working (a feature's broker, a replica...). */
  addCheck(name: string, check: ReadinessCheck): void {
    this.#checks.set(name, check);
  }

  /** Each check's answer, by name; run together. */
  async check(): Promise<Record<string, 'ok' | 'unavailable'>> {
    const entries = await Promise.all(
      [...this.#checks].map(async ([name, check]) => [name, (await check()) ? 'ok' : 'unavailable'] as const),
    );
    return Object.fromEntries(entries);
  }
}
