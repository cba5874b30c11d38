/**
 * The SQLite checkpointer's thread (see checkpointer.ts): its own read-write connection copies the
 * write-ahead log into the database file, and neither the copy nor its fsync runs on the event loop.
 *
 * PASSIVE (every second) never waits for, nor blocks, the writer or the readers. RESTART (once the
 * log holds more than its limit, while the server holds its writes back) also waits for the readers
 * of old frames, so that the next commit starts the log over; TRUNCATE (once writes stopped) then
 * empties the file too. Each of their waits gives up after TRUNCATE_WAIT_MS.
 */
import { statSync } from 'node:fs';
import SQLite from 'better-sqlite3';

/** How long RESTART and TRUNCATE wait on each lock (the write lock, each reader of old frames) before giving up. */
const TRUNCATE_WAIT_MS = 250;

export type CheckpointMode = 'PASSIVE' | 'RESTART' | 'TRUNCATE';

/** `PRAGMA wal_checkpoint`'s answer, and the log file's size afterwards. */
export interface Checkpointed {
  /** 1 when a lock or a reader kept the checkpoint from finishing (RESTART, TRUNCATE: the log was not reset). */
  busy: number;
  /** Frames in the log, and those copied into the database. */
  log: number;
  checkpointed: number;
  /** The log's frames in bytes: what it holds, however large its file (a log started over reuses its file). */
  logBytes: number;
  /** The `-wal` file's size. */
  walBytes: number;
}

let connection: SQLite.Database | undefined;
/** A frame: a page and its 24-byte header. */
let frameBytes = 0;

export default function checkpoint({ path, mode }: { path: string; mode: CheckpointMode }): Checkpointed {
  if (!connection) {
    connection = new SQLite(path, { fileMustExist: true });
    connection.pragma('wal_autocheckpoint = 0');
    // PASSIVE never calls the busy handler; RESTART and TRUNCATE do, and wait this long.
    connection.pragma(`busy_timeout = ${TRUNCATE_WAIT_MS}`);
    frameBytes = (connection.pragma('page_size', { simple: true }) as number) + 24;
  }
  const [result] = connection.pragma(`wal_checkpoint(${mode})`) as Pick<
    Checkpointed,
    'busy' | 'log' | 'checkpointed'
  >[];
  const answer = result as Pick<Checkpointed, 'busy' | 'log' | 'checkpointed'>;
  return { ...answer, logBytes: Math.max(0, answer.log) * frameBytes, walBytes: walSize(path) };
}

function walSize(path: string): number {
  try {
    return statSync(`${path}-wal`).size;
  } catch {
    return 0;
  }
}
