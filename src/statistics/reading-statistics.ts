import { type Kysely, sql } from 'kysely';
import { type Engine, isNumericOverflow, median } from '../db/dialect.js';
import type { Database, EpochMs } from '../db/tables.js';
import type { Attribute, Statistics } from './schemas.js';

export interface ReadingSelection {
  attr: Attribute;
  deviceId?: number;
  ownerId?: number;
  start?: EpochMs;
  end?: EpochMs;
}

/** count, min, max, sum, mean and the exact median of one value, aggregated in the database. */
export async function readingStatistics(
  db: Kysely<Database>,
  engine: Engine,
  selection: ReadingSelection,
): Promise<Statistics> {
  try {
    return await aggregate(db, engine, selection, true);
  } catch (error) {
    // Only a sum beyond the double range overflows (PostgreSQL raises, SQLite answers Infinity);
    // min, max, count and median are still exact, so they are answered without it.
    if (!isNumericOverflow(error)) throw error;
    return aggregate(db, engine, selection, false);
  }
}

async function aggregate(
  db: Kysely<Database>,
  engine: Engine,
  selection: ReadingSelection,
  withSum: boolean,
) {
  // `attr` comes from the schema's allow-list (x, y, z); it is never user text reaching SQL.
  const value = sql.ref<number>(`data.${selection.attr}`);
  let query = db
    .selectFrom('data')
    .select((eb) => [
      eb.fn.countAll<number>().as('count'),
      eb.fn.min(value).as('min'),
      eb.fn.max(value).as('max'),
      (withSum ? eb.fn.sum<number | null>(value) : sql<null>`null`).as('sum'),
      median(engine, value).as('median'),
    ]);
  if (selection.deviceId !== undefined) query = query.where('data.device_id', '=', selection.deviceId);
  if (selection.ownerId !== undefined) {
    const ownerId = selection.ownerId;
    query = query.where('data.device_id', 'in', (eb) =>
      eb.selectFrom('devices').select('devices.id').where('devices.user_id', '=', ownerId),
    );
  }
  if (selection.start !== undefined) query = query.where('data.created_at', '>=', selection.start);
  if (selection.end !== undefined) query = query.where('data.created_at', '<=', selection.end);
  const row = await query.executeTakeFirstOrThrow();
  const count = Number(row.count);
  return {
    count,
    min: finiteOrNull(row.min),
    max: finiteOrNull(row.max),
    sum: count === 0 ? 0 : finiteOrNull(row.sum),
    // What avg() computes on both engines, without PostgreSQL's avg overflowing on its sum of squares.
    mean: count === 0 || row.sum === null ? null : finiteOrNull(Number(row.sum) / count),
    median: finiteOrNull(row.median),
  };
}

/** JSON has no Infinity: a sum that overflowed is reported as null rather than as broken JSON. */
function finiteOrNull(value: unknown): number | null {
  if (value === null || value === undefined) return null;
  const number = Number(value);
  return Number.isFinite(number) ? number : null;
}
