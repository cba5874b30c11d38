/**
 * The SQLite checkpointer's thread (see checkpointer.ts): its own read-write connection copies the
 * write-ahead log into the database file, PASSIVE: it never waits for, nor blocks, the writer or the
 * readers, and neither the copy nor its fsync runs on the event loop.
 */
import SQLite from 'better-sqlite3';

let connection: SQLite.Database | undefined;

export default function checkpoint(path: string): void {
  if (!connection) {
    connection = new SQLite(path, { fileMustExist: true });
    connection.pragma('wal_autocheckpoint = 0');
  }
  connection.pragma('wal_checkpoint(PASSIVE)');
}
