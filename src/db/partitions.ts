import { type Kysely, sql } from 'kysely';
import type { Database } from './tables.js';

/**
 * The time partitions of a PostgreSQL table (migration 0006): daily for the readings, monthly for
 * their minute rollups. Created ahead of time and dropped once wholly past the retention, by the
 * maintenance job (db/maintenance.ts); what no partition covers lands in `<table>_default`.
 */
export interface PartitionedTable {
  table: 'data' | 'reading_minutes';
  column: 'created_at' | 'minute';
  period: Period;
  /** How many periods after the current one get their partition ahead of time. */
  ahead: number;
}

export interface Period {
  /** The start of the period that holds `time` (UTC, epoch ms). */
  start(time: number): number;
  /** The start of the period after the one that starts at `start`. */
  next(start: number): number;
  /** The partition's name suffix for the period that starts at `start`. */
  suffix(start: number): string;
}

const DAY_MS = 86_400_000;

export const DAYS: Period = {
  start: (time) => Math.floor(time / DAY_MS) * DAY_MS,
  next: (start) => start + DAY_MS,
  suffix: (start) => new Date(start).toISOString().slice(0, 10).replaceAll('-', ''),
};

export const MONTHS: Period = {
  start: (time) => {
    const date = new Date(time);
    return Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1);
  },
  next: (start) => {
    const date = new Date(start);
    return Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1);
  },
  suffix: (start) => new Date(start).toISOString().slice(0, 7).replace('-', ''),
};

/** One partition's name and range, [from, to); the default partition has none. */
export interface Partition {
  name: string;
  from: number;
  to: number;
  isDefault: boolean;
}

/** A lock waited for longer than this fails the step, which the next run tries again, rather than queueing writes behind it. */
const LOCK_TIMEOUT = '5s';

export async function listPartitions(db: Kysely<Database>, table: string): Promise<Partition[]> {
  const { rows } = await sql<{ name: string; bound: string }>`
    select c.relname as name, pg_get_expr(c.relpartbound, c.oid) as bound
    from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = ${table}::regclass`.execute(db);
  return rows.map(({ name, bound }) => {
    const range = /FROM \((?:MINVALUE|'?(-?\d+)'?)\) TO \((?:MAXVALUE|'?(-?\d+)'?)\)/.exec(bound);
    return {
      name,
      from: range?.[1] === undefined ? Number.NEGATIVE_INFINITY : Number(range[1]),
      to: range?.[2] === undefined ? Number.POSITIVE_INFINITY : Number(range[2]),
      isDefault: bound === 'DEFAULT',
    };
  });
}

/**
 * Makes the partitions of the current period and of `ahead` periods after it that no partition covers
 * yet; answers their names. Each is made beside the table, given the rows the default partition holds
 * for its range (a reading far ahead in time landed there before its partition existed), and
 * attached, while writes wait (reads go on).
 */
export async function createAhead(
  db: Kysely<Database>,
  spec: PartitionedTable,
  now: number,
): Promise<string[]> {
  const existing = await listPartitions(db, spec.table);
  const created: string[] = [];
  let start = spec.period.start(now);
  for (let i = 0; i <= spec.ahead; i++, start = spec.period.next(start)) {
    const end = spec.period.next(start);
    if (existing.some((p) => !p.isDefault && p.from < end && p.to > start)) continue;
    const name = `${spec.table}_${spec.period.suffix(start)}`;
    const table = sql.table(spec.table);
    const partition = sql.table(name);
    const fallback = sql.table(`${spec.table}_default`);
    const column = sql.ref(spec.column);
    await db.transaction().execute(async (trx) => {
      await sql`set local lock_timeout = ${sql.lit(LOCK_TIMEOUT)}`.execute(trx);
      // Citus runs DDL and writes beside a reference table's foreign key in one transaction only over
      // one connection per node (plain PostgreSQL takes the setting as a placeholder and ignores it).
      await sql`set local citus.multi_shard_modify_mode = 'sequential'`.execute(trx);
      // Writes wait the few milliseconds this takes. Locking the default partition alone would not do:
      // an insert routes its row there before it waits for the lock, and then breaks the new bound.
      await sql`lock table ${table} in share row exclusive mode`.execute(trx);
      await sql`create table ${partition} (like ${table} including defaults)`.execute(trx);
      await sql`
        with moved as (
          delete from ${fallback} where ${column} >= ${sql.lit(start)} and ${column} < ${sql.lit(end)} returning *
        )
        insert into ${partition} select * from moved`.execute(trx);
      await sql`alter table ${table} attach partition ${partition}
        for values from (${sql.lit(start)}) to (${sql.lit(end)})`.execute(trx);
    });
    created.push(name);
  }
  return created;
}

/**
 * Drops the partitions wholly before `horizon` (the default one never); answers their names.
 * DETACH ... CONCURRENTLY is not allowed beside a default partition, so each is dropped in a short
 * transaction of its own that waits at most LOCK_TIMEOUT for its lock.
 */
export async function dropBefore(db: Kysely<Database>, table: string, horizon: number): Promise<string[]> {
  const old = (await listPartitions(db, table)).filter((p) => !p.isDefault && p.to <= horizon);
  for (const partition of old) {
    await db.transaction().execute(async (trx) => {
      await sql`set local lock_timeout = ${sql.lit(LOCK_TIMEOUT)}`.execute(trx);
      await sql`drop table ${sql.table(partition.name)}`.execute(trx);
    });
  }
  return old.map((p) => p.name);
}
