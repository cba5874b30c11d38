import { setImmediate as nextTurn } from 'node:timers/promises';
import { type Kysely, sql } from 'kysely';
import type { Engine } from './dialect.js';
import { createAhead, DAYS, dropBefore, MONTHS, type PartitionedTable } from './partitions.js';
import type { Database } from './tables.js';

/** RETENTION_DAYS and ROLLUP_RETENTION_DAYS; undefined keeps forever. */
export interface Retention {
  readonly readingsDays: number | undefined;
  readonly rollupsDays: number | undefined;
}

/** What one maintenance run did; `ran` is false when another process held the lock. */
export interface MaintenanceReport {
  ran: boolean;
  created: string[];
  dropped: string[];
  deletedReadings: number;
  /** Rollup rows deleted: minutes, and the hours, days and months of accuracy=approx. */
  deletedRollups: number;
}

const READINGS: PartitionedTable = { table: 'data', column: 'created_at', period: DAYS, ahead: 7 };
const ROLLUPS: PartitionedTable = { table: 'reading_minutes', column: 'minute', period: MONTHS, ahead: 2 };

/** pg_try_advisory_lock's key: one maintenance run at a time across every process on the database. */
export const MAINTENANCE_LOCK_KEY = 7_301_306;
/** Rows one delete removes; between two, the event loop (SQLite) and other writers get their turn. */
const DELETE_BATCH = 2000;

/**
 * Readings are kept from this time on: the start of the UTC day RETENTION_DAYS before `now` (whole
 * days, as PostgreSQL drops daily partitions). Undefined while readings are kept forever.
 */
export function readingsRetainedFrom(retention: Retention, now: number): number | undefined {
  return retention.readingsDays === undefined
    ? undefined
    : DAYS.start(now - retention.readingsDays * 86_400_000);
}

/**
 * The rollups (minutes, and the hours, days and months the folder keeps) are kept from the start of
 * the UTC month that holds now - ROLLUP_RETENTION_DAYS: a month starts there, so every hour, day and
 * month rollup before it lies wholly before it, and none after it holds anything older.
 */
function rollupsRetainedFrom(retention: Retention, now: number): number | undefined {
  return retention.rollupsDays === undefined
    ? undefined
    : MONTHS.start(now - retention.rollupsDays * 86_400_000);
}

/**
 * The maintenance run (hourly in the server, once at its start, and `statistics maintain`).
 * PostgreSQL: under an advisory lock, so that one process at a time does it, creates the time
 * partitions ahead and drops those wholly past the retention. Both engines then delete, in batches,
 * the readings and rollups past it that no partition drop took (all of them on SQLite; the default and
 * pre-partition tables' on PostgreSQL), and the hour, day and month rollups past ROLLUP_RETENTION_DAYS
 * (never partitioned). Deleting readings leaves their rollups as they are.
 */
export async function maintain(
  db: Kysely<Database>,
  engine: Engine,
  retention: Retention,
  now = Date.now(),
): Promise<MaintenanceReport> {
  const readingsFrom = readingsRetainedFrom(retention, now);
  const rollupsFrom = rollupsRetainedFrom(retention, now);
  if (engine === 'sqlite') {
    return { ran: true, created: [], dropped: [], ...(await deleteExpired(db, readingsFrom, rollupsFrom)) };
  }
  // The advisory lock belongs to a session: everything runs on the one connection that holds it.
  return db.connection().execute(async (connection) => {
    const { rows } = await sql<{ locked: boolean }>`
      select pg_try_advisory_lock(${MAINTENANCE_LOCK_KEY}) as locked`.execute(connection);
    if (!rows[0]?.locked)
      return { ran: false, created: [], dropped: [], deletedReadings: 0, deletedRollups: 0 };
    try {
      const created = [
        ...(await createAhead(connection, READINGS, now)),
        ...(await createAhead(connection, ROLLUPS, now)),
      ];
      const dropped = [
        ...(readingsFrom === undefined ? [] : await dropBefore(connection, READINGS.table, readingsFrom)),
        ...(rollupsFrom === undefined ? [] : await dropBefore(connection, ROLLUPS.table, rollupsFrom)),
      ];
      return { ran: true, created, dropped, ...(await deleteExpired(connection, readingsFrom, rollupsFrom)) };
    } finally {
      await sql`select pg_advisory_unlock(${MAINTENANCE_LOCK_KEY})`.execute(connection);
    }
  });
}

/** Deletes the readings before `readingsFrom` and the rollups before `rollupsFrom`, DELETE_BATCH at a time. */
async function deleteExpired(
  db: Kysely<Database>,
  readingsFrom: number | undefined,
  rollupsFrom: number | undefined,
): Promise<{ deletedReadings: number; deletedRollups: number }> {
  let deletedReadings = 0;
  let deletedRollups = 0;
  if (readingsFrom !== undefined) {
    deletedReadings = await inBatches(() =>
      db
        .deleteFrom('data')
        .where('created_at', '<', readingsFrom)
        .where('id', 'in', (eb) =>
          eb.selectFrom('data').select('id').where('created_at', '<', readingsFrom).limit(DELETE_BATCH),
        )
        .executeTakeFirst(),
    );
  }
  if (rollupsFrom !== undefined) {
    deletedRollups = await inBatches(() =>
      db
        .deleteFrom('reading_minutes')
        .where('minute', '<', rollupsFrom)
        .where(({ eb, refTuple, selectFrom }) =>
          eb(
            refTuple('device_id', 'minute'),
            'in',
            selectFrom('reading_minutes')
              .select(['device_id', 'minute'])
              .where('minute', '<', rollupsFrom)
              .limit(DELETE_BATCH)
              .$asTuple('device_id', 'minute'),
          ),
        )
        .executeTakeFirst(),
    );
    for (const table of ['reading_hours', 'reading_days', 'reading_months'] as const) {
      deletedRollups += await inBatches(() =>
        db
          .deleteFrom(table)
          .where('start', '<', rollupsFrom)
          .where(({ eb, refTuple, selectFrom }) =>
            eb(
              refTuple('device_id', 'start'),
              'in',
              selectFrom(table)
                .select(['device_id', 'start'])
                .where('start', '<', rollupsFrom)
                .limit(DELETE_BATCH)
                .$asTuple('device_id', 'start'),
            ),
          )
          .executeTakeFirst(),
      );
    }
  }
  return { deletedReadings, deletedRollups };
}

async function inBatches(batch: () => Promise<{ numDeletedRows: bigint }>): Promise<number> {
  let total = 0;
  for (;;) {
    const deleted = Number((await batch()).numDeletedRows);
    total += deleted;
    if (deleted < DELETE_BATCH) return total;
    await nextTurn();
  }
}
