import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Kysely, sql } from 'kysely';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { OpenedDatabase } from '../db/database.js';
import type { Database } from '../db/tables.js';
import {
  type Alongside,
  minuteRollupsOf,
  type ReadingRow,
  type StoredReadings,
  upsertMinuteRollups,
} from './reading-store.js';

/**
 * Stores many readings with their minute rollups, atomically; answers their ids in input order.
 * `alongside` gives statements to run in the same transaction (an idempotency key's record).
 */
export type BulkStore = (rows: readonly ReadingRow[], alongside?: Alongside) => Promise<StoredReadings>;

/**
 * From this many readings on, a write goes through COPY on PostgreSQL (imports store chunks of
 * 5,000, batches hold up to 10,000). Below it the one prepared INSERT ... unnest statement is as fast
 * or faster: the temporary table costs statements of its own. `npm run bench:copy` with BENCH_CHUNK,
 * COPY against the statement: 0.78 at 200 readings, 1.02 at 1,000, 1.21 at 2,500, 1.48 at 5,000.
 */
export const COPY_FROM_READINGS = 2000;

const INCOMING = 'incoming_readings';
/** COPY's text format wants a string per field; every field here is a number. */
const LINES_PER_CHUNK = 2000;

/** COPY on PostgreSQL; none on SQLite, whose one prepared statement is its fastest path. */
export function bulkStoreOf({ db, pool }: OpenedDatabase): BulkStore | undefined {
  return pool ? copyReadings(db, pool) : undefined;
}

/**
 * Readings through COPY (pg-copy-streams) into a temporary table, then, in the same transaction,
 * moved into `data` in input order (so the ids, which grow in insertion order within one statement,
 * line up with the input) and rolled up per device and minute into `reading_minutes` from the same
 * table, in SQL. COPY parses text rows far cheaper than a statement binds arrays of parameters.
 * Measured per chunk of 5,000 (shared machine): create 6 ms, COPY 17, insert ... select 103 (the
 * indexes and foreign key of `data`), rollups 26, commit 7. Copying straight into `data` instead
 * (ids reserved with nextval first, rollups from `id = any(ids)`) took 261 ms against these 158.
 */
export function copyReadings(db: Kysely<Database>, pool: pg.Pool): BulkStore {
  const incoming = sql.table(INCOMING);
  const createIncoming = sql`
    create temporary table ${incoming}
      (position int, device_id int, x float8, y float8, z float8, created_at int8)
      on commit drop`.compile(db);
  const moveIntoData = sql`
    insert into data (device_id, x, y, z, created_at)
    select device_id, x, y, z, created_at from ${incoming} order by position
    returning id`.compile(db);
  const rollUp = upsertMinuteRollups('postgres', minuteRollupsOf('postgres', incoming)).compile(db);
  const run = (client: pg.PoolClient, query: { sql: string; parameters: readonly unknown[] }) =>
    client.query(query.sql, [...query.parameters]);

  return async (rows, alongside) => {
    if (rows.length === 0) return { ids: [], minuteRollups: 0 };
    const client = await pool.connect();
    let broken = false;
    try {
      await client.query('begin');
      try {
        await run(client, createIncoming);
        await pipeline(Readable.from(copyText(rows)), client.query(copyFrom(`copy ${INCOMING} from stdin`)));
        const inserted = await run(client, moveIntoData);
        const merged = await run(client, rollUp);
        const ids = inserted.rows.map((row) => Number(row.id)).sort((a, b) => a - b);
        for (const query of alongside?.(ids) ?? []) await run(client, query);
        await client.query('commit');
        return { ids, minuteRollups: merged.rowCount ?? 0 };
      } catch (error) {
        await client.query('rollback').catch(() => {
          broken = true;
        });
        throw error;
      }
    } finally {
      // A connection whose rollback failed is in no known state: it leaves the pool.
      client.release(broken);
    }
  };
}

/** The rows as COPY text lines (tab-separated; numbers need no escaping), a few thousand per chunk. */
function* copyText(rows: readonly ReadingRow[]): Generator<string> {
  for (let start = 0; start < rows.length; start += LINES_PER_CHUNK) {
    let text = '';
    const end = Math.min(rows.length, start + LINES_PER_CHUNK);
    for (let i = start; i < end; i++) {
      const r = rows[i] as ReadingRow;
      text += `${i}\t${r.device_id}\t${r.x}\t${r.y}\t${r.z}\t${r.created_at}\n`;
    }
    yield text;
  }
}
