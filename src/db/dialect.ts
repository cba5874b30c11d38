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

/** A reading ready to store: the columns of `data` but its id. */
export interface ReadingRow {
  device_id: number;
  x: number;
  y: number;
  z: number;
  created_at: number;
}

/**
 * Stores many readings in one statement (atomic on its own) and answers their ids in input order.
 * One statement with one parameter per column beats a row-per-statement loop on both engines:
 * SQLite reads a JSON array through json_each (doubles round-trip exactly), PostgreSQL unnests arrays.
 */
export async function insertReadingRows(
  db: Kysely<Database>,
  engine: Engine,
  rows: ReadingRow[],
): Promise<number[]> {
  if (rows.length === 0) return [];
  if (engine === 'postgres') {
    const result = await sql<{ id: number }>`
      insert into data (device_id, x, y, z, created_at)
      select * from unnest(
        ${rows.map((r) => r.device_id)}::int[], ${rows.map((r) => r.x)}::float8[],
        ${rows.map((r) => r.y)}::float8[], ${rows.map((r) => r.z)}::float8[],
        ${rows.map((r) => r.created_at)}::int8[])
      returning id`.execute(db);
    // Ids grow in insertion order within one statement, so sorted ids line up with the input rows.
    return result.rows.map((row) => Number(row.id)).sort((a, b) => a - b);
  }
  const result = await sql`
    insert into data (device_id, x, y, z, created_at)
    select value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4
    from json_each(${JSON.stringify(rows.map((r) => [r.device_id, r.x, r.y, r.z, r.created_at]))})`.execute(
    db,
  );
  // SQLite has one writer, so one statement's autoincrement ids are consecutive and end at the last
  // insert id; reading them that way is cheaper than RETURNING.
  const last = Number(result.insertId);
  return rows.map((_, i) => last - rows.length + 1 + i);
}
