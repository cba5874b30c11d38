import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, PostgresDialect, type SqliteDatabase } from 'kysely';
import type { Pool } from 'pg';
import { Checkpointer } from './checkpointer.js';
import type { Engine } from './dialect.js';
import { openPostgresPool } from './postgres-pool.js';
import { ServiceSqliteDialect } from './sqlite-compiler.js';
import type { Database } from './tables.js';

export interface OpenedDatabase {
  db: Kysely<Database>;
  engine: Engine;
  /** PostgreSQL's connection pool (for its metrics); SQLite has one connection. */
  pool?: Pool;
  /** The SQLite file, which heavy-query workers open read-only beside this connection. */
  sqlitePath?: string;
  /** Closes the database handle (and, for a server on SQLite, its checkpointer first). */
  close(): Promise<void>;
}

/**
 * How long a SQLite write waits for another process to release the write lock before it fails.
 * SQLite's wait is synchronous: in the server it holds the event loop, every request with it (5 s for
 * each write froze the service), so the server waits briefly and answers 503. A command line tool,
 * which serves nobody meanwhile, waits as long as a busy server may take.
 */
export const SQLITE_LOCK_WAIT_MS = { server: 50, tool: 5000 } as const;

/** Who opens the database: the server, or a command line tool (see SQLITE_LOCK_WAIT_MS and Checkpointer). */
export type DatabaseRole = keyof typeof SQLITE_LOCK_WAIT_MS;

/**
 * Opens `sqlite:PATH` or `postgres://...` as a Kysely handle; the caller owns it and closes it. A server
 * on SQLite empties the write-ahead log once its file passes `sqliteWalLimitBytes` (see Checkpointer).
 */
export function openDatabase(
  url: string,
  role: DatabaseRole = 'tool',
  sqliteWalLimitBytes = Number.POSITIVE_INFINITY,
): OpenedDatabase {
  if (url.startsWith('sqlite:')) {
    const sqlitePath = url.slice('sqlite:'.length);
    // A tool keeps SQLite's own checkpoints in its commits; the server checkpoints in a thread of its own.
    const checkpointed = role === 'server' && sqlitePath !== ':memory:';
    const db = openSqlite(sqlitePath, SQLITE_LOCK_WAIT_MS[role], !checkpointed);
    const checkpointer = checkpointed ? new Checkpointer(sqlitePath, db, sqliteWalLimitBytes) : undefined;
    const close = async () => {
      await checkpointer?.stop();
      await db.destroy();
    };
    return { db, engine: 'sqlite', sqlitePath, close };
  }
  const pool = openPostgresPool(url);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return { db, engine: 'postgres', pool, close: () => db.destroy() };
}

function openSqlite(path: string, lockWaitMs: number, autoCheckpoint: boolean): Kysely<Database> {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const connection = new SQLite(path);
  // WAL lets statistics read while readings are written. synchronous=NORMAL in WAL mode keeps every
  // committed transaction through a process crash (only a power loss can drop the last commits).
  connection.pragma('journal_mode = WAL');
  connection.pragma('synchronous = NORMAL');
  connection.pragma('foreign_keys = ON');
  connection.pragma(`busy_timeout = ${lockWaitMs}`);
  // The writer's page cache (8 MiB): ingest touches the last pages of the tables and indexes, which fit
  // many times over, and whatever else it reads is in the OS's file cache a system call away. At 64 MiB
  // the cache filled during the ingest runs and stayed in the server's memory (1,000-reading batches,
  // 10 connections, peak RSS 320-381 MB against 269-287 MB at 8 MiB; the rates were within the noise of
  // a machine at load 7-10).
  connection.pragma('cache_size = -8192');
  if (!autoCheckpoint) connection.pragma('wal_autocheckpoint = 0');
  return sqliteKysely(connection);
}

/** A read-only SQLite connection and its Kysely handle: each heavy-query worker has one (WAL readers never wait for the writer). */
export interface SqliteReadConnection {
  db: Kysely<Database>;
  connection: SQLite.Database;
}

export function openSqliteReader(path: string): SqliteReadConnection {
  // SQLite's default page cache (2 MB): a scan reads through the OS's file cache anyway, and each
  // worker's cache would add to the server's memory.
  const connection = new SQLite(path, { readonly: true, fileMustExist: true });
  connection.pragma('busy_timeout = 1000');
  return { db: sqliteKysely(connection), connection };
}

function sqliteKysely(connection: SQLite.Database): Kysely<Database> {
  return new Kysely<Database>({
    dialect: new ServiceSqliteDialect({ database: withStatementCache(connection) }),
  });
}

const STATEMENT_CACHE_SIZE = 256;

/**
 * Kysely prepares every query anew; the service runs the same few statements over and over, and
 * preparing was a tenth of the ingest profile. A small LRU keeps the prepared statements.
 */
function withStatementCache(connection: SQLite.Database): SqliteDatabase {
  const cache = new Map<string, SQLite.Statement>();
  return {
    close: () => connection.close(),
    prepare(text: string) {
      let statement = cache.get(text);
      if (statement) {
        cache.delete(text);
      } else {
        statement = connection.prepare(text);
        if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
      }
      cache.set(text, statement);
      return statement;
    },
  };
}
