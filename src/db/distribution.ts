import { setTimeout as sleep } from 'node:timers/promises';
import { type Kysely, type RawBuilder, sql } from 'kysely';

/**
 * How the tables spread over a Citus cluster. Everything per device is distributed by `device_id`
 * and co-located, so one device's readings, rollups and their joins stay on one shard (a device's
 * statistics and writes are single-shard); the small tables every query joins are reference tables,
 * copied to every node. Idempotency keys are looked up by (scope, key) alone, so they are distributed
 * by scope.
 */
const REFERENCE_TABLES = ['users', 'devices', 'revoked_tokens'] as const;
const BY_DEVICE = ['data', 'reading_minutes', 'reading_hours', 'reading_days', 'reading_months'] as const;
const BY_COLUMN = [['idempotency_keys', 'scope']] as const;

/** pg_advisory_lock's key: one process at a time distributes (several may start at once). */
const DISTRIBUTION_LOCK_KEY = 7_301_307;
/** How many times distribution is tried before the error is the migration's (see withRetries). */
const DISTRIBUTION_TRIES = 3;

/**
 * When the database has the `citus` extension, distributes every table that is not yet distributed
 * (after the migrations: a later migration's new table is distributed by the next run). Nothing to
 * set: a plain PostgreSQL database is left as it is. Answers the tables it distributed.
 */
// biome-ignore lint/suspicious/noExplicitAny: the migrations run on any schema
export async function distributeOnCitus(db: Kysely<any>): Promise<string[]> {
  const { rows: citus } = await sql<{ installed: boolean }>`
    select exists (select from pg_extension where extname = 'citus') as installed`.execute(db);
  if (!citus[0]?.installed) return [];
  // The advisory lock belongs to a session: everything runs on the one connection that holds it.
  return db.connection().execute(async (connection) => {
    await sql`select pg_advisory_lock(${DISTRIBUTION_LOCK_KEY})`.execute(connection);
    try {
      return await withRetries(() => distribute(connection));
    } finally {
      await sql`select pg_advisory_unlock(${DISTRIBUTION_LOCK_KEY})`.execute(connection);
    }
  });
}

/**
 * Distribution tried again, a second apart, after a failure. Each Citus call is its own transaction
 * (a failed one leaves nothing behind) and `distribute` skips what is done, so trying again is safe.
 * Why: Citus (13) once failed `create_reference_table('devices')` while converting the tables whose
 * foreign keys point at it, with `column "oid" of relation "data" does not exist` from
 * `process_owned_by` (the `data` id sequence's owner read wrong), in one of the test suite's Citus
 * passes where the same migrations had gone through on dozens of fresh databases: a transient
 * failure of the cluster's, not of this schema.
 */
async function withRetries<T>(attempt: () => Promise<T>): Promise<T> {
  for (let tries = 1; ; tries++) {
    try {
      return await attempt();
    } catch (error) {
      if (tries >= DISTRIBUTION_TRIES) throw error;
      await sleep(1000);
    }
  }
}

// biome-ignore lint/suspicious/noExplicitAny: the migrations run on any schema
async function distribute(db: Kysely<any>): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`select table_name::text as name from citus_tables`.execute(db);
  const done = new Set(rows.map((row) => row.name));
  const distributed: string[] = [];
  const run = async (table: string, statement: RawBuilder<unknown>) => {
    if (done.has(table)) return;
    await statement.execute(db);
    distributed.push(table);
  };
  // Reference tables first: the distributed tables' foreign keys point at them.
  for (const table of REFERENCE_TABLES) await run(table, sql`select create_reference_table(${table})`);
  const [first] = BY_DEVICE;
  for (const table of BY_DEVICE)
    await run(
      table,
      sql`select create_distributed_table(${table}, 'device_id', colocate_with => ${table === first ? 'default' : first})`,
    );
  for (const [table, column] of BY_COLUMN)
    await run(table, sql`select create_distributed_table(${table}, ${column})`);
  return distributed;
}
