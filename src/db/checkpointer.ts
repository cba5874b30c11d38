import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';

/** How often the checkpointer copies the write-ahead log into the database file. */
const CHECKPOINT_EVERY_MS = 1000;

/**
 * Checkpoints of the server's SQLite database, off the event loop. By default the connection that
 * commits runs a checkpoint whenever the write-ahead log passes 1,000 pages: it copies the log into
 * the database and fsyncs it inside that commit, on the event loop. Measured here (15 s of 5-reading
 * commits): the commits that checkpointed took up to 157-185 ms (41-43 of them over 20 ms, nearly all
 * at the 4 MB threshold); a busy disk makes that fsync hold the whole server for 0.3-0.7 s. The
 * server's writer therefore runs with wal_autocheckpoint=0, and one thread checkpoints every second.
 */
export class Checkpointer {
  readonly #pool: Piscina;
  readonly #timer: NodeJS.Timeout;
  #running: Promise<void> | undefined;

  constructor(path: string) {
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
      this.#running ??= this.#pool
        .run(path)
        .catch(() => {}) // a busy or failing disk: the next turn tries again
        .finally(() => {
          this.#running = undefined;
        });
    }, CHECKPOINT_EVERY_MS);
    this.#timer.unref();
  }

  /** Ends the thread (and its connection) before the writer closes, so that the writer's close removes the log. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
    await this.#pool.destroy();
  }
}
