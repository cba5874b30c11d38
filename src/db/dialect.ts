import { type Expression, type Kysely, PostgresAdapter, type RawBuilder, sql } from 'kysely';
import type { Database } from './tables.js';

/** The few SQL pieces that differ between SQLite and PostgreSQL. Everything else is shared SQL. */
export type Engine = 'sqlite' | 'postgres';

export function engineOf(db: Kysely<unknown>): Engine {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite';
}

/**
 * The exact percentile `fraction` (0 to 1), interpolated linearly between the two nearest values as
 * numpy's default does; 0.5 is the median (the mean of the two middle values for an even count).
 * PostgreSQL sorts once for all the percentiles of one value in a query.
 */
export function percentile(
  engine: Engine,
  value: Expression<number>,
  fraction: number,
): RawBuilder<number | null> {
  return engine === 'postgres'
    ? sql<number | null>`percentile_cont(${sql.lit(fraction)}) within group (order by ${value})`
    : sql<number | null>`percentile_cont(${value}, ${sql.lit(fraction)})`;
}

/**
 * x², as IEEE arithmetic (and SQLite) computes it: PostgreSQL raises instead of rounding a square
 * below the smallest double to 0, or one beyond the largest to Infinity, so it is told both limits.
 */
export function square(engine: Engine, value: Expression<number>): RawBuilder<number> {
  if (engine === 'sqlite') return sql<number>`${value} * ${value}`;
  return sql<number>`case when abs(${value}) < 1e-162 then 0::float8
    when abs(${value}) > 1.3407807929942596e154 then 'Infinity'::float8
    else ${value} * ${value} end`;
}

/** A unique index was violated (a concurrent insert won the race). */
export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}

/** A row pointed at a parent that does not exist (a reading for an unknown device). */
export function isForeignKeyViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '23503' || code === 'SQLITE_CONSTRAINT_FOREIGNKEY';
}

/** PostgreSQL refuses a double that overflows (a sum past 1.8e308); SQLite answers Infinity instead. */
export function isNumericOverflow(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '22003';
}

/**
 * sum(value) with IEEE overflow: a sum beyond the largest double is ±Infinity, as in SQLite, where
 * PostgreSQL would raise. PostgreSQL adds the values up to 2^800 as they are, and the larger ones
 * scaled by 2^-200 (exact for them) so that neither partial sum can overflow; only their final
 * addition meets the limit, and `ieeeAdd` handles it.
 */
export function ieeeSum(engine: Engine, value: Expression<number>): RawBuilder<number | null> {
  if (engine === 'sqlite') return sql<number | null>`sum(${value})`;
  const ordinary = sql<number>`coalesce(sum(${value}) filter (where abs(${value}) <= ${sql.lit(2 ** 800)}::float8), 0)`;
  const scaled = sql<number>`coalesce(sum(${value} * ${sql.lit(2 ** -200)}::float8) filter (where abs(${value}) > ${sql.lit(2 ** 800)}::float8), 0)`;
  const large = sql<number>`case when abs(${scaled}) > ${sql.lit(Number.MAX_VALUE * 2 ** -200)}::float8
    then sign(${scaled}) * 'Infinity'::float8 else ${scaled} * ${sql.lit(2 ** 200)}::float8 end`;
  return sql<
    number | null
  >`case when count(${value}) = 0 then null else ${ieeeAdd(engine, ordinary, large)} end`;
}

/** a + b with IEEE overflow to ±Infinity (PostgreSQL raises when two finite doubles overflow). */
export function ieeeAdd(engine: Engine, a: Expression<number>, b: Expression<number>): RawBuilder<number> {
  if (engine === 'sqlite') return sql<number>`(${a} + ${b})`;
  return sql<number>`case when sign(${a}) = sign(${b}) and abs(${a}) > ${sql.lit(Number.MAX_VALUE)}::float8 - abs(${b})
    then sign(${a}) * 'Infinity'::float8 else ${a} + ${b} end`;
}

/** The smaller and the larger of two values (SQLite's two-argument min and max). */
function lesser(engine: Engine, a: Expression<number>, b: Expression<number>): RawBuilder<number> {
  return engine === 'postgres' ? sql<number>`least(${a}, ${b})` : sql<number>`min(${a}, ${b})`;
}
function greater(engine: Engine, a: Expression<number>, b: Expression<number>): RawBuilder<number> {
  return engine === 'postgres' ? sql<number>`greatest(${a}, ${b})` : sql<number>`max(${a}, ${b})`;
}

/** A reading ready to store: the columns of `data` but its id. */
export interface ReadingRow {
  device_id: number;
  x: number;
  y: number;
  z: number;
  created_at: number;
}

const VALUES = ['x', 'y', 'z'] as const;

/**
 * Stores many readings atomically and answers their ids in input order, keeping the per-minute
 * rollups (`reading_minutes`) up to date in the same transaction, late readings included.
 * One statement with one parameter per column beats a row-per-statement loop on both engines:
 * SQLite reads a JSON array through json_each (doubles round-trip exactly), PostgreSQL unnests
 * arrays and chains the rollup to the insert in one statement.
 */
export async function insertReadingRows(
  db: Kysely<Database>,
  engine: Engine,
  rows: ReadingRow[],
): Promise<number[]> {
  if (rows.length === 0) return [];
  if (engine === 'postgres') {
    const result = await sql<{ id: number }>`
      with inserted as (
        insert into data (device_id, x, y, z, created_at)
        select * from unnest(
          ${rows.map((r) => r.device_id)}::int[], ${rows.map((r) => r.x)}::float8[],
          ${rows.map((r) => r.y)}::float8[], ${rows.map((r) => r.z)}::float8[],
          ${rows.map((r) => r.created_at)}::int8[])
        returning id, device_id, x, y, z, created_at
      ), rolled_up as (${rollUpMinutes(engine, sql`inserted`)})
      select id from inserted`.execute(db);
    // Ids grow in insertion order within one statement, so sorted ids line up with the input rows.
    return result.rows.map((row) => Number(row.id)).sort((a, b) => a - b);
  }
  const json = JSON.stringify(rows.map((r) => [r.device_id, r.x, r.y, r.z, r.created_at]));
  // Values are cast to real as the data columns store them, so sums never take SQLite's integer path.
  const readings = sql`(select value ->> 0 as device_id, cast(value ->> 1 as real) as x,
    cast(value ->> 2 as real) as y, cast(value ->> 3 as real) as z, value ->> 4 as created_at
    from json_each(${json}))`;
  return db.connection().execute(async (connection) => {
    await sql`begin`.execute(connection);
    try {
      const result = await sql`
        insert into data (device_id, x, y, z, created_at)
        select device_id, x, y, z, created_at from ${readings}`.execute(connection);
      await rollUpMinutes(engine, readings).execute(connection);
      await sql`commit`.execute(connection);
      // SQLite has one writer, so one statement's autoincrement ids are consecutive and end at the
      // last insert id; reading them that way is cheaper than RETURNING.
      const last = Number(result.insertId);
      return rows.map((_, i) => last - rows.length + 1 + i);
    } catch (error) {
      // SQLite ends the transaction by itself on some errors (a full disk): the rollback then fails,
      // and that failure must not hide the cause.
      await sql`rollback`.execute(connection).catch((failure: unknown) => {
        if (!String((failure as Error).message).includes('no transaction is active')) throw failure;
      });
      throw error;
    }
  });
}

/** The start of the UTC minute holding `time` (epoch ms), also for times before 1970. */
export function minuteOf(time: Expression<number>): RawBuilder<number> {
  return sql<number>`(${time} - ((${time} % 60000) + 60000) % 60000)`;
}

/**
 * Adds readings (any relation with device_id, x, y, z and created_at) to `reading_minutes`: one row
 * per device and UTC minute with the count, min, max and sum of each value, merged into the row
 * already there. Rows are written in key order so concurrent writers lock them in the same order.
 */
export function rollUpMinutes(engine: Engine, readings: RawBuilder<unknown>): RawBuilder<unknown> {
  const kept = (column: string) => sql.ref<number>(`reading_minutes.${column}`);
  const incoming = (column: string) => sql.ref<number>(`excluded.${column}`);
  return sql`
    insert into reading_minutes (device_id, minute, readings, ${sql.join(
      VALUES.flatMap((v) => [sql.ref(`${v}_min`), sql.ref(`${v}_max`), sql.ref(`${v}_sum`)]),
    )})
    select r.device_id, ${minuteOf(sql.ref('r.created_at'))} as minute, count(*), ${sql.join(
      VALUES.flatMap((v) => {
        const value = sql.ref<number>(`r.${v}`);
        return [sql`min(${value})`, sql`max(${value})`, ieeeSum(engine, value)];
      }),
    )}
    from ${readings} as r
    where true
    group by 1, 2
    order by 1, 2
    on conflict (device_id, minute) do update set
      readings = reading_minutes.readings + excluded.readings, ${sql.join(
        VALUES.flatMap((v) => [
          sql`${sql.ref(`${v}_min`)} = ${lesser(engine, kept(`${v}_min`), incoming(`${v}_min`))}`,
          sql`${sql.ref(`${v}_max`)} = ${greater(engine, kept(`${v}_max`), incoming(`${v}_max`))}`,
          sql`${sql.ref(`${v}_sum`)} = ${ieeeAdd(engine, kept(`${v}_sum`), incoming(`${v}_sum`))}`,
        ]),
      )}`;
}
