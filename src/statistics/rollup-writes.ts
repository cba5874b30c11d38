import { sql, type Transaction } from 'kysely';
import { type Engine, rowsAsTable } from '../db/dialect.js';
import type { Database, ReadingRollupsTable } from '../db/tables.js';
import { type DeviceRange, inRanges, joinAdjacent, rangeGroups } from './device-ranges.js';
import { HOUR_MS, hourUnit, type RollupTable } from './rollup-periods.js';
import { ROLLUP_VALUES } from './rollup-values.js';

/** One device's period in a rollup table (its start, UTC epoch ms). */
export interface Period {
  device_id: number;
  start: number;
}

/** What one fold step writes: the rows of each level (and the periods they replace), and the minutes to mark. */
export interface FoldPlan {
  levels: Array<{ table: RollupTable; periods: Period[]; rows: ReadingRollupsTable[] }>;
  /** device_id, minute, and the count read: marked folded only if it still holds that count. */
  marks: Array<[number, number, number]>;
  readings: number;
}

/** Writes a plan: each level's rows in place of the periods it replaces, then the marks. */
export async function applyFold(trx: Transaction<Database>, engine: Engine, plan: FoldPlan): Promise<void> {
  for (const level of plan.levels) await replaceRollups(trx, level.table, level.periods, level.rows);
  // The marks' hours as index ranges first: matched against the marks as a table alone, PostgreSQL
  // hashed them and scanned every unfolded minute (30 ms a step over a backlog of 1M).
  // PostgreSQL estimates the ranges' minutes from the table's statistics: where they are missing or
  // stale (minutes ingested since the last analyze, as a backlog always is) it expects one row and
  // loops over the marks for each minute, N x N (a step of 4,567 sparse minutes: 3.7 to 6.3 s, where
  // hashing the marks takes 42 ms). No nested loop, then, for the rest of the fold's transaction (this
  // is its last statement).
  if (engine === 'postgres') await sql`set local enable_nestloop = off`.execute(trx);
  const hours = joinAdjacent(
    plan.marks.map(([deviceId, minute]): DeviceRange => {
      const hour = hourUnit.floor(minute);
      return [deviceId, hour, hour + HOUR_MS];
    }),
  );
  for (const group of rangeGroups(hours)) {
    await sql`update reading_minutes set folded = 1
      where folded = 0 and ${inRanges(sql.ref('device_id'), sql.ref('minute'), group)}
        and (device_id, minute, readings) in (select device_id, minute, readings from ${rowsAsTable(
          engine,
          [
            ['device_id', 'int'],
            ['minute', 'int8'],
            ['readings', 'int'],
          ],
          plan.marks,
        )} as marks)`.execute(trx);
  }
}

/** Stores the rows of `periods` that have readings and removes those that have none any more. */
async function replaceRollups(
  trx: Transaction<Database>,
  table: RollupTable,
  periods: Period[],
  rows: ReadingRollupsTable[],
): Promise<void> {
  const kept = new Set(rows.map((row) => `${row.device_id}/${row.start}`));
  for (const period of periods) {
    if (kept.has(`${period.device_id}/${period.start}`)) continue;
    await trx
      .deleteFrom(table)
      .where('device_id', '=', period.device_id)
      .where('start', '=', period.start)
      .execute();
  }
  // At most 19 parameters a row: 500 rows stay well under SQLite's 32,766.
  for (let i = 0; i < rows.length; i += 500) {
    // A plan made in a worker thread arrives with its sketches as plain Uint8Arrays; the drivers bind Buffers.
    const chunk = rows.slice(i, i + 500).map((row) => ({
      ...row,
      x_sketch: asBuffer(row.x_sketch),
      y_sketch: asBuffer(row.y_sketch),
      z_sketch: asBuffer(row.z_sketch),
    }));
    await trx
      .insertInto(table)
      .values(chunk)
      .onConflict((conflict) =>
        conflict.columns(['device_id', 'start']).doUpdateSet((eb) => {
          const set: Record<string, unknown> = { readings: eb.ref('excluded.readings') };
          for (const value of ROLLUP_VALUES) {
            for (const part of ['min', 'max', 'sum', 'm2', 'sketch'] as const) {
              const column = `${value}_${part}` as const;
              set[column] = eb.ref(`excluded.${column}`);
            }
          }
          return set;
        }),
      )
      .execute();
  }
}

const asBuffer = (bytes: Uint8Array) =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
