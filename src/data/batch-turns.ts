import { DomainError } from '../http/errors.js';

/**
 * A body up to this size is one reading (about 60 bytes) or a handful: it goes its way at once, so that
 * single readings keep sharing their group commits (reading-writer.ts). Larger bodies are batches.
 */
export const SMALL_BODY_BYTES = 1024;

/**
 * Batches take turns, in the order they arrived: one batch starts (its body parsed, checked and
 * stored) per turn of the event loop, and the requests that came meanwhile are only put in line.
 *
 * Without it, Node parses and stores a request inside the callback that read its socket, so that one
 * turn of the event loop reads whichever sockets epoll lists first and stores their batches before it
 * reads the next: at 100 connections of 1,000-reading batches most sockets were answered in about
 * 150 ms, and some were not read for over 5 s (measured: a bare `node:http` server that spends 2.3 ms
 * on each request shows the same tail, p99 3.3 s and 25 of 3,600 requests past wrk's 5 s timeout;
 * the same server that runs each request's work in a setImmediate queue, p99 0.49 s and none).
 *
 * At most `maxWaiting` batches wait; one more is refused at once with a 503 and `Retry-After`, rather
 * than held in a line that could only grow.
 */
export class BatchTurns {
  readonly #waiting: Array<() => void> = [];
  #scheduled = false;

  constructor(private readonly maxWaiting: number) {}

  /** Resolves when the batch's turn has come; a 503 when the line is full. */
  take(): Promise<void> {
    if (this.#waiting.length >= this.maxWaiting) {
      return Promise.reject(
        new DomainError(
          'INGEST_BUSY',
          `${this.maxWaiting} batches are waiting to be stored (INGEST_BATCH_QUEUE): retry shortly`,
          1,
        ),
      );
    }
    return new Promise((resolve) => {
      this.#waiting.push(resolve);
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    // setImmediate runs after the poll phase: every socket that is ready has been read (and its
    // request put in line) before the next batch is worked on.
    setImmediate(() => {
      this.#scheduled = false;
      const start = this.#waiting.shift();
      if (this.#waiting.length > 0) this.#schedule();
      start?.();
    });
  }
}
