import { type Kysely, sql } from 'kysely';
import { engineOf } from '../dialect.js';
import { minuteRollupsOf, upsertMinuteRollups } from '../reading-store.js';

/**
 * Per-minute rollups of the readings: count, min, max and sum of each value per device and UTC
 * minute, kept by every insert. A chart over a month reads ~43,000 of them instead of every reading.
 * A sum beyond the double range is ±Infinity or NaN, or null on SQLite (which stores NaN as null,
 * and gets its rollups as JSON, which has no Infinity); either way the series answers no mean.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const engine = engineOf(db);
  const postgres = engine === 'postgres';
  let table = db.schema
    .createTable('reading_minutes')
    .addColumn('device_id', 'integer', (c) => c.notNull().references('devices.id').onDelete('cascade'))
    .addColumn('minute', postgres ? 'bigint' : 'integer', (c) => c.notNull())
    .addColumn('readings', 'integer', (c) => c.notNull());
  for (const value of ['x', 'y', 'z']) {
    table = table
      .addColumn(`${value}_min`, 'double precision', (c) => c.notNull())
      .addColumn(`${value}_max`, 'double precision', (c) => c.notNull())
      .addColumn(`${value}_sum`, 'double precision');
  }
  table = table.addPrimaryKeyConstraint('reading_minutes_pkey', ['device_id', 'minute']);
  // SQLite keeps the rows in key order, so a device's minutes are one contiguous range.
  await (postgres ? table : table.modifyEnd(sql`without rowid`)).execute();
  // The readings stored before this migration.
  await upsertMinuteRollups(engine, minuteRollupsOf(engine, sql`data`)).execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('reading_minutes').execute();
}
