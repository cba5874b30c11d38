import { type Expression, type Kysely, PostgresAdapter, type RawBuilder, sql } from 'kysely';
import { Late } from './prepared.js';
import type { Database } from './tables.js';

/** The few SQL pieces that differ between SQLite and PostgreSQL. Everything else is shared SQL. */
export type Engine = 'sqlite' | 'postgres';

export function engineOf<DB>(db: Kysely<DB>): Engine {
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
 * The exact percentiles `fractions` (0 to 1) of a value from ONE sorted copy of it, however many are
 * asked: on PostgreSQL, percentile_cont with an array of fractions, one sort, answering a float8[].
 */
export function sortedPercentiles(
  value: Expression<number>,
  fractions: readonly number[],
): RawBuilder<number[] | null> {
  const array = sql.join(fractions.map((fraction) => sql.lit(fraction)));
  return sql<number[] | null>`percentile_cont(array[${array}]::float8[]) within group (order by ${value})`;
}

/**
 * Every exact statistic of a value on SQLite from ONE copy of it: the `collect_values` aggregate of a
 * heavy-query worker's connection (db/collected-values.ts) gathers the group's `expected` values into
 * a Float64Array and answers a handle, which the worker's ValueCollector turns into the statistics.
 */
export function collectedValues(value: Expression<number>, expected: Expression<number>): RawBuilder<number> {
  return sql<number>`collect_values(${value}, ${expected})`;
}

/** One row of `rowsAsTable`: a value per column, in the columns' order. */
export type TableRow = ReadonlyArray<number | string | null>;

/**
 * Parallel arrays as a relation with one row per index, in one bound parameter per column (SQLite:
 * one for all): PostgreSQL unnests typed arrays, SQLite reads a JSON array of rows through json_each
 * (doubles round-trip exactly). The columns are named as given; `rows` holds one tuple per row, or is
 * read from a prepared statement's input (db/prepared.ts): the SQL is the same for any number of rows.
 */
export function rowsAsTable<I>(
  engine: Engine,
  columns: ReadonlyArray<readonly [name: string, type: 'int' | 'int8' | 'float8' | 'text']>,
  rows: ReadonlyArray<TableRow> | Late<I, ReadonlyArray<TableRow>>,
): RawBuilder<unknown> {
  if (engine === 'postgres') {
    const column = (i: number) => (all: ReadonlyArray<TableRow>) => all.map((row) => row[i] ?? null);
    const arrays = columns.map(
      ([, type], i) =>
        sql`${rows instanceof Late ? rows.map(column(i)) : column(i)(rows)}::${sql.raw(type)}[]`,
    );
    const names = sql.join(columns.map(([name]) => sql.ref(name)));
    return sql`(select * from unnest(${sql.join(arrays)}) as rows(${names}))`;
  }
  const values = sql.join(columns.map(([name], i) => sql`value ->> ${sql.lit(i)} as ${sql.ref(name)}`));
  const json = rows instanceof Late ? rows.map((all) => JSON.stringify(all)) : JSON.stringify(rows);
  return sql`(select ${values} from json_each(${json}))`;
}

/**
 * `count` rows of `width` bound values each, as a VALUES list read from a prepared statement's input
 * (db/prepared.ts): SQLite binds each value straight into the statement, where json_each would parse
 * it from a JSON text that JavaScript first had to write (1,000 readings: 2.1-2.5 ms against 7.3-9.9 ms
 * for JSON.stringify and json_each, issue 17). The SQL depends on `count`, so a caller prepares one
 * statement per size class (see `sizeClasses`).
 */
export function boundRows<I extends ReadonlyArray<TableRow>>(
  width: number,
  count: number,
  late: <T>(read: (input: I) => T) => Late<I, T>,
): RawBuilder<unknown> {
  // A number beyond the double range binds as null, as it travelled in JSON (a rollup's sum, say).
  const value = (row: number, column: number) =>
    late((rows) => {
      const bound = rows[row]?.[column] ?? null;
      return typeof bound === 'number' && !Number.isFinite(bound) ? null : bound;
    });
  const row = (i: number) => sql`(${sql.join(Array.from({ length: width }, (_, j) => value(i, j)))})`;
  return sql`values ${sql.join(Array.from({ length: count }, (_, i) => row(i)))}`;
}

/**
 * Rows in chunks whose sizes are powers of two up to `largest` (1,000 rows: 512, 256, 128, 64, 32, 8),
 * in order: a statement prepared per size class then takes any number of rows in a few runs.
 */
export function sizeClasses<T>(rows: readonly T[], largest: number): Array<readonly T[]> {
  const chunks: Array<readonly T[]> = [];
  let at = 0;
  for (let size = largest; size >= 1; size /= 2) {
    while (rows.length - at >= size) {
      chunks.push(rows.slice(at, at + size));
      at += size;
    }
  }
  return chunks;
}

/**
 * The percentile of the halved values. Both engines interpolate as a + (b - a) * t, and b - a
 * overflows between values of opposite signs beyond half the double range (-1.5e308 and 1.5e308)
 * where the percentile itself does not: twice this one is then the answer, as exact (halving such
 * values is exact). It sorts again, so it is asked only for a percentile that came back non-finite.
 */
export function halvedPercentile(
  engine: Engine,
  value: Expression<number>,
  fraction: number,
): RawBuilder<number | null> {
  return percentile(engine, sql<number>`(${value} * 0.5)`, fraction);
}

/** A percentile the database answered over at least one reading is finite unless its interpolation overflowed. */
export function percentileOverflowed(readings: number, answered: unknown): boolean {
  return readings > 0 && !Number.isFinite(Number(answered ?? Number.NaN));
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

/**
 * A unique index was violated (a concurrent insert won the race). Citus reports a violation met by the
 * rows an INSERT ... SELECT sends to a shard with the message alone, under the internal error code.
 */
export function isUniqueViolation(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (code === 'XX000' && typeof message === 'string')
    return message.startsWith('duplicate key value violates unique constraint');
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
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
  // CASE rather than FILTER: Citus sums a CASE on each shard, where it fetches every row for a
  // FILTER and computes its argument on all of them (a tiny value times 2^-200 then raises underflow).
  const ordinary = sql<number>`coalesce(sum(case when abs(${value}) <= ${sql.lit(2 ** 800)}::float8 then ${value} end), 0)`;
  const scaled = sql<number>`coalesce(sum(case when abs(${value}) > ${sql.lit(2 ** 800)}::float8 then ${value} * ${sql.lit(2 ** -200)}::float8 end), 0)`;
  const large = sql<number>`case when abs(${scaled}) > ${sql.lit(Number.MAX_VALUE * 2 ** -200)}::float8
    then sign(${scaled}) * 'Infinity'::float8 else ${scaled} * ${sql.lit(2 ** 200)}::float8 end`;
  return sql<
    number | null
  >`case when count(${value}) = 0 then null else ${ieeeAdd(engine, ordinary, large)} end`;
}

/**
 * a + b with IEEE overflow to ±Infinity (PostgreSQL raises when two finite doubles overflow). Same
 * signs overflow exactly when the larger magnitude x is past half the range and the smaller one
 * reaches the rest, (MAX - x), plus half a unit in the last place of MAX (2^970); both are exact
 * there, so the test agrees with IEEE rounding: 0.1 + MAX is MAX, not Infinity.
 */
export function ieeeAdd(engine: Engine, a: Expression<number>, b: Expression<number>): RawBuilder<number> {
  if (engine === 'sqlite') return sql<number>`(${a} + ${b})`;
  const larger = sql`greatest(abs(${a}), abs(${b}))`;
  const smaller = sql`least(abs(${a}), abs(${b}))`;
  return sql<number>`case when sign(${a}) = sign(${b}) and ${larger} > ${sql.lit(Number.MAX_VALUE / 2)}::float8
      and ${smaller} >= ${sql.lit(Number.MAX_VALUE)}::float8 - ${larger} + ${sql.lit(2 ** 970)}::float8
    then sign(${a}) * 'Infinity'::float8 else ${a} + ${b} end`;
}

/** The smaller and the larger of two values (SQLite's two-argument min and max). */
export function lesser(engine: Engine, a: Expression<number>, b: Expression<number>): RawBuilder<number> {
  return engine === 'postgres' ? sql<number>`least(${a}, ${b})` : sql<number>`min(${a}, ${b})`;
}
export function greater(engine: Engine, a: Expression<number>, b: Expression<number>): RawBuilder<number> {
  return engine === 'postgres' ? sql<number>`greatest(${a}, ${b})` : sql<number>`max(${a}, ${b})`;
}

/**
 * After rows were stored under ids of their own (a move from another database), the next generated id
 * must come after them. SQLite's AUTOINCREMENT already remembers the largest id ever stored; a
 * PostgreSQL identity column's sequence is moved past the largest id, never back.
 */
export async function moveIdSequencePast(
  db: Kysely<Database>,
  engine: Engine,
  table: 'users' | 'devices' | 'data',
): Promise<void> {
  if (engine === 'sqlite') return;
  await sql`
    select setval(pg_get_serial_sequence(${table}, 'id'), max(id))
    from ${sql.table(table)}
    having max(id) > (
      select coalesce(last_value, 0) from pg_sequences
      where format('%I.%I', schemaname, sequencename) = pg_get_serial_sequence(${table}, 'id')
    )`.execute(db);
}

/**
 * `table as alias`, read through `index` on SQLite (INDEXED BY): where two indexes serve a condition
 * alike, SQLite's planner, without statistics, may take the larger one (the primary key of all the
 * minutes rather than the partial index of the few unfolded ones: 1.5 s instead of milliseconds over
 * 5M minutes). PostgreSQL's planner chooses by its statistics.
 */
export function throughIndex(
  engine: Engine,
  table: string,
  alias: string,
  index: string,
): RawBuilder<unknown> {
  const from = sql`${sql.table(table)} as ${sql.ref(alias)}`;
  return engine === 'sqlite' ? sql`${from} indexed by ${sql.ref(index)}` : from;
}
