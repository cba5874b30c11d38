import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Kysely } from 'kysely';
import { Piscina } from 'piscina';
import type { Checkpointed, CheckpointMode } from './checkpoint-worker.js';
import type { Database } from './tables.js';

/** How often the checkpointer copies the write-ahead log into the database file. */
const CHECKPOINT_EVERY_MS = 1000;

/** After a RESTART or TRUNCATE that readers kept from finishing, writes run this long before the next try. */
const HOLD_RETRY_MS = 5000;

/** Before a held RESTART, PASSIVE passes (at most this many) until one takes less than CATCH_UP_MS. */
const CATCH_UP_PASSES = 4;
const CATCH_UP_MS = 10;

/**
 * Checkpoints of the server's SQLite database, off the event loop. By default the connection that
 * commits runs a checkpoint whenever the write-ahead log passes 1,000 pages: it copies the log into
 * the database and fsyncs it inside that commit, on the event loop. Measured here (15 s of 5-reading
 * commits): the commits that checkpointed took up to 157-185 ms (41-43 of them over 20 ms, nearly all
 * at the 4 MB threshold); a busy disk makes that fsync hold the whole server for 0.3-0.7 s. The
 * server's writer therefore runs with wal_autocheckpoint=0, and one thread checkpoints every second.
 *
 * A PASSIVE checkpoint alone lets the log grow without bound under continuous ingest (779-1,162 MB in
 * 20 s of 10,000-reading batches with statistics alongside): SQLite starts the log over only when a
 * writer begins after a checkpoint has copied every frame and no reader still uses one, and the writer
 * always appends first, while long statistics readers hold old frames. So once the log holds more than
 * `walLimitBytes`, the checkpointer holds the writer's connection (Kysely's: every query on it waits
 * its turn, without blocking the event loop) and runs a RESTART checkpoint in its thread, which
 * copies the last frames and waits (boundedly) for the readers of old frames, so that the next commit
 * starts the log over; then it lets the queries go. Once writes stop, a TRUNCATE empties the file.
 * Writing meanwhile would have made the writer wait on the lock, synchronously, and answer 503.
 */
export class Checkpointer {
  readonly #pool: Piscina;
  readonly #timer: NodeJS.Timeout;
  #running: Promise<void> | undefined;
  #nextHold = 0;
  /** The log's frame count at the last turn: unchanged means no writes since. */
  #lastLog = -1;

  constructor(
    private readonly path: string,
    private readonly db: Kysely<Database>,
    private readonly walLimitBytes: number,
  ) {
    // TypeScript under tsx (tests, npm run dev), JavaScript once built.
    const here = fileURLToPath(import.meta.url);
    this.#pool = new Piscina({
      filename: new URL(`./checkpoint-worker${extname(here)}`, import.meta.url).href,
      minThreads: 1,
      maxThreads: 1,
      idleTimeout: Number.POSITIVE_INFINITY,
    });
    this.#timer = setInterval(() => {
      // One at a time: a slow disk delays the next checkpoint rather than queueing them.
      this.#running ??= this.#turn()
        .catch(() => {}) // a busy or failing disk: the next turn tries again
        .finally(() => {
          this.#running = undefined;
        });
    }, CHECKPOINT_EVERY_MS);
    this.#timer.unref();
  }

  async #turn(): Promise<void> {
    const passive = await this.#checkpoint('PASSIVE');
    const appended = passive.log !== this.#lastLog;
    this.#lastLog = passive.log;
    if (Date.now() < this.#nextHold) return;
    let held: Checkpointed | undefined;
    if (!appended && passive.walBytes > this.walLimitBytes) {
      // Nothing appended since the last turn: the file (as large as the log ever was) is emptied, and
      // holding the writes back costs no one.
      held = await this.db.connection().execute(() => this.#checkpoint('TRUNCATE'));
    } else if (passive.logBytes > this.walLimitBytes) {
      // Under load, with the writes held back: a RESTART copies the frames appended while that PASSIVE
      // ran and waits (boundedly) for the readers of old frames, so that the writer's next commit starts
      // the log over at the head of its file, which stops growing. It leaves the file's size alone: a
      // TRUNCATE here (cutting a 256 MB file) held the writes 100-175 ms every few seconds, and single
      // readings at 11,700/s had a p99 of 107 ms (5.5 ms without the limit, 4.0 ms with this; 12-20 s
      // of wrk at 10 connections, 2026-12-02).
      await this.#catchUp();
      held = await this.db.connection().execute(() => this.#checkpoint('RESTART'));
    }
    if (held?.busy) this.#nextHold = Date.now() + HOLD_RETRY_MS;
  }

  /**
   * PASSIVE again, writes going on, until a pass is short: the held RESTART then copies and syncs only
   * the frames committed during that pass, not those of the turn's first PASSIVE (tens of milliseconds
   * of commits, whose copy and fsyncs held the writes 36-45 ms on a busy machine).
   */
  async #catchUp(): Promise<void> {
    for (let pass = 0; pass < CATCH_UP_PASSES; pass++) {
      const started = performance.now();
      await this.#checkpoint('PASSIVE');
      if (performance.now() - started < CATCH_UP_MS) return;
    }
  }

  #checkpoint(mode: CheckpointMode): Promise<Checkpointed> {
    return this.#pool.run({ path: this.path, mode });
  }

  /** Ends the thread (and its connection) before the writer closes, so that the writer's close removes the log. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
    await this.#pool.destroy();
  }
}
