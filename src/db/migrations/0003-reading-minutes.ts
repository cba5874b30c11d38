import { type Kysely, type RawBuilder, sql } from 'kysely';
import { type Engine, engineOf } from '../dialect.js';

/**
 * Per-minute rollups of the readings: count, min, max and sum of each value per device and UTC
 * minute, kept by every insert. A chart over a month reads ~43,000 of them instead of every reading.
 * A sum beyond the double range is ±Infinity or NaN, or null on SQLite (which stores NaN as null,
 * and gets its rollups as JSON, which has no Infinity); either way the series answers no mean.
 *
 * A migration never changes once it has run somewhere, so its backfill is written out here rather
 * than borrowed from the write path (data/reading-store.ts), which moves on with later migrations.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const engine = engineOf(db);
  const postgres = engine === 'postgres';
  let table = db.schema
    .createTable('reading_minutes')
    .addColumn('device_id', 'integer', (c) => c.notNull().references('devices.id').onDelete('cascade'))
    .addColumn('minute', postgres ? 'bigint' : 'integer', (c) => c.notNull())
    .addColumn('readings', 'integer', (c) => c.notNull());
  for (const value of VALUES) {
    table = table
      .addColumn(`${value}_min`, 'double precision', (c) => c.notNull())
      .addColumn(`${value}_max`, 'double precision', (c) => c.notNull())
      .addColumn(`${value}_sum`, 'double precision');
  }
  table = table.addPrimaryKeyConstraint('reading_minutes_pkey', ['device_id', 'minute']);
  // SQLite keeps the rows in key order, so a device's minutes are one contiguous range.
  await (postgres ? table : table.modifyEnd(sql`without rowid`)).execute();
  // The readings stored before this migration, grouped by device and UTC minute.
  await sql`
    insert into reading_minutes (device_id, minute, readings, ${sql.join(
      VALUES.flatMap((v) => [sql.ref(`${v}_min`), sql.ref(`${v}_max`), sql.ref(`${v}_sum`)]),
    )})
    select device_id, created_at - ((created_at % 60000) + 60000) % 60000, count(*), ${sql.join(
      VALUES.flatMap((v) => {
        const value = sql.ref(v);
        return [sql`min(${value})`, sql`max(${value})`, overflowingSum(engine, value)];
      }),
    )}
    from data
    group by 1, 2
    order by 1, 2`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('reading_minutes').execute();
}

const VALUES = ['x', 'y', 'z'] as const;

/**
 * sum(value) that overflows to ±Infinity as SQLite's does, where PostgreSQL would raise: the values up
 * to 2^800 are added as they are, the larger ones scaled by 2^-200, and only the final addition of
 * the two partial sums can overflow, which is tested before it is made.
 */
function overflowingSum(engine: Engine, value: RawBuilder<unknown>): RawBuilder<unknown> {
  if (engine === 'sqlite') return sql`sum(${value})`;
  const ordinary = sql`coalesce(sum(${value}) filter (where abs(${value}) <= ${sql.lit(2 ** 800)}::float8), 0)`;
  const scaled = sql`coalesce(sum(${value} * ${sql.lit(2 ** -200)}::float8) filter (where abs(${value}) > ${sql.lit(2 ** 800)}::float8), 0)`;
  const large = sql`case when abs(${scaled}) > ${sql.lit(Number.MAX_VALUE * 2 ** -200)}::float8
    then sign(${scaled}) * 'Infinity'::float8 else ${scaled} * ${sql.lit(2 ** 200)}::float8 end`;
  const larger = sql`greatest(abs(${ordinary}), abs(${large}))`;
  const smaller = sql`least(abs(${ordinary}), abs(${large}))`;
  return sql`case when sign(${ordinary}) = sign(${large}) and ${larger} > ${sql.lit(Number.MAX_VALUE / 2)}::float8
      and ${smaller} >= ${sql.lit(Number.MAX_VALUE)}::float8 - ${larger} + ${sql.lit(2 ** 970)}::float8
    then sign(${ordinary}) * 'Infinity'::float8 else ${ordinary} + ${large} end`;
}
