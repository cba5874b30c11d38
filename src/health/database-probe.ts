/** How long a database check may take before it counts as no answer. */
export const DATABASE_PROBE_TIMEOUT_MS = 2000;
/** A successful check this recent answers for the database without asking it again. */
export const ANSWER_FRESH_MS = 250;
/** While the answer is asked for, a check runs in the background this often, so it stays fresh. */
export const REFRESH_EVERY_MS = 100;
/** The background checks stop this long after the answer was last asked for: an idle server does not poll. */
export const REFRESH_FOR_MS = 60_000;

/**
 * Owns the answer to "does the database answer" for /health, /ready and the lifecycle's `database`
 * check. On PostgreSQL a `select 1` waits for a pooled connection behind heavy queries and ingest, so
 * each probe asking for its own made /health as slow as the busiest query queue. Instead the last
 * success answers while it is at most ANSWER_FRESH_MS old, and while probes come a background check
 * keeps it fresh. Otherwise one check runs, shared by every caller meanwhile. A failure is never
 * reused, and nothing runs in the background while the database is down: each probe checks again.
 */
export class DatabaseProbe {
  readonly #query: () => Promise<unknown>;
  /** When the last check succeeded; undefined after a failure. */
  #answeredAt: number | undefined;
  #inFlight: Promise<boolean> | undefined;
  #askedAt = 0;
  #refresh: NodeJS.Timeout | undefined;
  #stopped = false;

  /** `query` asks the database something trivial (`select 1`); it answers if the promise fulfils. */
  constructor(query: () => Promise<unknown>) {
    this.#query = query;
  }

  /** Whether the database answers: from a fresh success, or from a check (shared with concurrent callers). */
  async answers(): Promise<boolean> {
    this.#askedAt = Date.now();
    const answered =
      this.#answeredAt !== undefined && this.#askedAt - this.#answeredAt <= ANSWER_FRESH_MS
        ? true
        : await this.#check();
    if (answered) this.#keepFresh();
    return answered;
  }

  /** No more background checks (the app is closing). */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#refresh);
    this.#refresh = undefined;
  }

  #check(): Promise<boolean> {
    this.#inFlight ??= this.#timed().then((answered) => {
      this.#inFlight = undefined;
      this.#answeredAt = answered ? Date.now() : undefined;
      return answered;
    });
    return this.#inFlight;
  }

  async #timed(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), DATABASE_PROBE_TIMEOUT_MS);
    });
    const query = this.#query().then(
      () => true,
      () => false,
    );
    try {
      return await Promise.race([query, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  #keepFresh(): void {
    if (this.#refresh !== undefined || this.#stopped) return;
    this.#refresh = setInterval(() => {
      const idle = Date.now() - this.#askedAt > REFRESH_FOR_MS;
      if (idle || this.#answeredAt === undefined) {
        // Idle, or the database is down: the next probe checks (and starts refreshing) again.
        clearInterval(this.#refresh);
        this.#refresh = undefined;
      } else if (this.#inFlight === undefined) {
        void this.#check();
      }
    }, REFRESH_EVERY_MS);
    this.#refresh.unref();
  }
}
