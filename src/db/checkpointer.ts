import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Kysely } from 'kysely';
import { Piscina } from 'piscina';
import type { Checkpointed, CheckpointMode } from './checkpoint-worker.js';
import type { Database } from './tables.js';

/** How often the checkpointer copies the write-ahead log into the database file. */
const CHECKPOINT_EVERY_MS = 1000;

/** After a TRUNCATE that readers kept from emptying the log, writes run this long before the next try. */
const TRUNCATE_RETRY_MS = 5000;

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
 * always appends first, while long statistics readers hold old frames. So once the log file passes
 * `walLimitBytes`, the checkpointer holds the writer's connection (Kysely's: every query on it waits
 * its turn, without blocking the event loop) and runs a TRUNCATE checkpoint in its thread, which
 * copies the last frames, waits (boundedly) for the readers of old frames and empties the file; then
 * it lets the queries go. Writing meanwhile would have made the writer wait on the lock, synchronously,
 * and answer 503.
 */
export class Checkpointer {
  readonly #pool: Piscina;
  readonly #timer: NodeJS.Timeout;
  #running: Promise<void> | undefined;
  #nextTruncate = 0;

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
    if (passive.walBytes <= this.walLimitBytes || Date.now() < this.#nextTruncate) return;
    const truncated = await this.db.connection().execute(() => this.#checkpoint('TRUNCATE'));
    if (truncated.busy) this.#nextTruncate = Date.now() + TRUNCATE_RETRY_MS;
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
