import { type Expression, type Kysely, PostgresAdapter, type RawBuilder, sql } from 'kysely';

/** The few SQL pieces that differ between SQLite and PostgreSQL. Everything else is shared SQL. */
export type Engine = 'sqlite' | 'postgres';

export function engineOf(db: Kysely<unknown>): Engine {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite';
}

/** The exact median (mean of the two middle values for an even count), as numpy computes it. */
export function median(engine: Engine, value: Expression<number>): RawBuilder<number | null> {
  return engine === 'postgres'
    ? sql<number | null>`percentile_cont(0.5) within group (order by ${value})`
    : sql<number | null>`median(${value})`;
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
