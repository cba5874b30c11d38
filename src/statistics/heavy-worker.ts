/**
 * A heavy-query worker thread (piscina): its own read-only SQLite connection to the service's file,
 * opened at the first task. WAL lets it read beside the writer on the main thread; each task runs in
 * one read transaction, so all its statements see the same snapshot.
 */
import { sql } from 'kysely';
import { workerData } from 'piscina';
import { ValueCollector } from '../db/collected-values.js';
import { openSqliteReader } from '../db/database.js';
import type { Reader } from '../db/reader.js';
import { type HeavyQueryName, type HeavyTask, runHeavyQuery } from './heavy-queries.js';

type SqliteReader = Reader & { engine: 'sqlite' };

let opened: SqliteReader | undefined;

function reader(): SqliteReader {
  if (!opened) {
    const { db, connection } = openSqliteReader((workerData as { path: string }).path);
    opened = { engine: 'sqlite', db, collector: new ValueCollector(connection) };
  }
  return opened;
}

export default async function run(task: HeavyTask<HeavyQueryName>): Promise<unknown> {
  const read = reader();
  const { db, collector } = read;
  await sql`begin`.execute(db);
  try {
    return await runHeavyQuery(read, task);
  } finally {
    collector.clear();
    await sql`rollback`.execute(db);
  }
}
