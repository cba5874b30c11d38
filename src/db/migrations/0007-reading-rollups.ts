import { type Kysely, sql } from 'kysely';
import { engineOf } from '../dialect.js';

/**
 * Hour, day and month rollups for approximate statistics (issue 10), kept OFF the ingest path.
 *
 * Ingest only marks what changed: `reading_minutes.folded` is 0 for a new minute and is set back to 0
 * by every merge into it (data/reading-store.ts), and a partial index lists the unfolded minutes.
 * The folder (statistics/rollup-folder.ts) recomputes each changed hour from its readings, re-merges
 * its day and month, and sets `folded` to 1 only where the minute still holds the count it read.
 *
 * Each rollup row holds, per value: count (`readings`), min, max, sum, the sum of squared deviations
 * from the mean (`m2`, merged with the parallel-variance formula) and a DDSketch of the values
 * (statistics/value-sketch.ts), in binary. Times are UTC epoch ms of the period's start.
 *
 * After 0006, which rebuilds `reading_minutes` partitioned on PostgreSQL: the column and the partial
 * index are added to the partitioned table, so every partition (made later too) has them.
 *
 * No backfill is written here: the minutes stored before this migration start unfolded (the column's
 * default), so the folder catches up on them in the background, and the migration is two DDL
 * statements whatever the size of the database. Until then approximate answers read those hours from
 * the readings (or fall back to the exact path), so they are never wrong, only slower.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const postgres = engineOf(db) === 'postgres';
  await db.schema
    .alterTable('reading_minutes')
    .addColumn('folded', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .createIndex('reading_minutes_unfolded')
    .on('reading_minutes')
    .columns(['device_id', 'minute'])
    .where(sql.ref('folded'), '=', 0)
    .execute();
  for (const table of TABLES) {
    let create = db.schema
      .createTable(table)
      .addColumn('device_id', 'integer', (c) => c.notNull().references('devices.id').onDelete('cascade'))
      .addColumn('start', postgres ? 'bigint' : 'integer', (c) => c.notNull())
      .addColumn('readings', 'integer', (c) => c.notNull());
    for (const value of ['x', 'y', 'z']) {
      create = create
        .addColumn(`${value}_min`, 'double precision', (c) => c.notNull())
        .addColumn(`${value}_max`, 'double precision', (c) => c.notNull())
        .addColumn(`${value}_sum`, 'double precision')
        .addColumn(`${value}_m2`, 'double precision')
        .addColumn(`${value}_sketch`, postgres ? 'bytea' : 'blob', (c) => c.notNull());
    }
    await create.addPrimaryKeyConstraint(`${table}_pkey`, ['device_id', 'start']).execute();
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of TABLES) await db.schema.dropTable(table).execute();
  await db.schema.dropIndex('reading_minutes_unfolded').execute();
  await db.schema.alterTable('reading_minutes').dropColumn('folded').execute();
}

const TABLES = ['reading_hours', 'reading_days', 'reading_months'] as const;
