/**
 * The SQLite checkpointer's thread (see checkpointer.ts): its own read-write connection copies the
 * write-ahead log into the database file, and neither the copy nor its fsync runs on the event loop.
 *
 * PASSIVE (every second) never waits for, nor blocks, the writer or the readers. TRUNCATE (once the
 * log has passed its limit, while the server holds its writes back) also waits for the readers of
 * old frames, then empties the log file; each of its waits gives up after TRUNCATE_WAIT_MS.
 */
import { statSync } from 'node:fs';
import SQLite from 'better-sqlite3';

/** How long TRUNCATE waits on each lock (the write lock, each reader of old frames) before it gives up. */
const TRUNCATE_WAIT_MS = 250;

export type CheckpointMode = 'PASSIVE' | 'TRUNCATE';

/** `PRAGMA wal_checkpoint`'s answer, and the log file's size afterwards. */
export interface Checkpointed {
  /** 1 when a lock or a reader kept the checkpoint from finishing (TRUNCATE: the log was not emptied). */
  busy: number;
  /** Frames in the log, and those copied into the database. */
  log: number;
  checkpointed: number;
  walBytes: number;
}

let connection: SQLite.Database | undefined;

export default function checkpoint({ path, mode }: { path: string; mode: CheckpointMode }): Checkpointed {
  if (!connection) {
    connection = new SQLite(path, { fileMustExist: true });
    connection.pragma('wal_autocheckpoint = 0');
    // PASSIVE never calls the busy handler; TRUNCATE does, and waits this long.
    connection.pragma(`busy_timeout = ${TRUNCATE_WAIT_MS}`);
  }
  const [result] = connection.pragma(`wal_checkpoint(${mode})`) as Omit<Checkpointed, 'walBytes'>[];
  return { ...(result as Omit<Checkpointed, 'walBytes'>), walBytes: walSize(path) };
}

function walSize(path: string): number {
  try {
    return statSync(`${path}-wal`).size;
  } catch {
    return 0;
  }
}
