import { isForeignKeyViolation, isUniqueViolation } from '../db/dialect.js';
import { notFound } from '../http/errors.js';
import type { Metrics } from '../metrics/metrics.js';
import type { IdempotencyKeys, KeyUse } from './idempotency.js';
import type { Alongside, ReadingRow, ReadingStore } from './reading-store.js';

/** The idempotency key of a reading's request, and its answer once the reading's id is known. */
export interface KeyedAnswer {
  use: KeyUse;
  answer: (id: number) => unknown;
}

interface Pending {
  row: ReadingRow;
  key: KeyedAnswer | undefined;
  resolve: (id: number) => void;
  reject: (error: unknown) => void;
}

/** Most rows one group commit writes; the rest wait for the next statement. */
const MAX_GROUP = 2000;

/**
 * Group commit for single readings. Readings that arrive while the event loop is busy (or while the
 * previous group is being written) are stored together in one statement, and each caller's promise
 * settles only after that statement has committed: an answered request is a durable reading.
 * The wait is bounded by one turn of the event loop plus one write.
 *
 * The window is the rest of the current turn of the event loop (setImmediate): the readings whose
 * requests were parsed in the same turn share a commit. Measured against the alternatives on SQLite
 * (issue 17, wrk for 4 s, two rounds, a machine at load 13-20): at 10 and 100 connections
 * setImmediate answered 6,100-6,900 and 4,200-7,000 req/s; a commit per reading (process.nextTick)
 * 1,300-2,200 and 370-1,300; a 1 ms timer 3,000-3,800 and 3,000-5,100; nextTick while groups stayed
 * single readings, else setImmediate, 450-500 and 300 (it never left single readings).
 * Measured again at 1, 10 and 100 connections (issue 17; wrk, 3 alternating rounds of 5 s, medians, load
 * average 7-16): setImmediate against a commit per reading answered 1,610 / 1,430 req/s at 1 connection
 * (each group is one reading either way), 5,360 / 2,170 at 10 (p99 53 / 104 ms; 8.3 readings a group)
 * and 13,000 / 4,090 at 100 (p99 57 / 579 ms; 77 a group), for 261 / 271, 79 / 221 and 50 / 202 us of
 * server CPU per reading: a commit costs about 170 us, which a group shares.
 */
export class ReadingWriter {
  #queue: Pending[] = [];
  #writing = false;
  #scheduled = false;

  constructor(
    private readonly store: ReadingStore,
    private readonly metrics: Metrics,
    private readonly keys: IdempotencyKeys,
  ) {}

  /**
   * Stores one reading with the next group; answers its id once committed. Its request's idempotency
   * key, if any, is recorded with its answer in the group's transaction.
   */
  write(row: ReadingRow, key?: KeyedAnswer): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ row, key, resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#writing) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length > 0) {
        await this.#commit(this.#queue.splice(0, MAX_GROUP));
      }
    } finally {
      this.#writing = false;
    }
  }

  async #commit(group: Pending[]): Promise<void> {
    try {
      const { ids, minuteRollups } = await this.store.insert(
        group.map((p) => p.row),
        undefined,
        this.#keysOf(group),
      );
      this.metrics.groupCommitReadings.observe(group.length);
      this.metrics.readingsStored.inc({ path: 'single' }, group.length);
      this.metrics.minuteRollupsMerged.inc(minuteRollups);
      for (const [i, pending] of group.entries()) pending.resolve(ids[i] as number);
    } catch (error) {
      if (group.length > 1 && (isForeignKeyViolation(error) || isUniqueViolation(error))) {
        // A device vanished between the check and the write, or another process recorded an idempotency
        // key of this group first: store the others, refuse only the readings concerned.
        for (const pending of group) await this.#commit([pending]);
        return;
      }
      const failure = isForeignKeyViolation(error)
        ? notFound(`Device ${group[0]?.row.device_id} not found`)
        : error;
      // The database failed or did not answer: the readings queued meanwhile would each wait for the
      // same failure, one group after another (a hung database holds a group for the driver's whole
      // timeout, beyond the request timeout for the groups behind it). They fail with this one.
      const failed =
        isForeignKeyViolation(error) || isUniqueViolation(error)
          ? group
          : [...group, ...this.#queue.splice(0)];
      for (const pending of failed) pending.reject(failure);
    }
  }

  /** The idempotency keys of the group's requests, recorded with their answers alongside the readings. */
  #keysOf(group: Pending[]): Alongside | undefined {
    if (!group.some((pending) => pending.key)) return undefined;
    return (ids) =>
      this.keys.recording(
        group.flatMap(({ key }, i) => (key ? [{ use: key.use, answer: key.answer(ids[i] as number) }] : [])),
      );
  }
}
