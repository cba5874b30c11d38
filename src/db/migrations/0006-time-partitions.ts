import { type Kysely, sql } from 'kysely';
import { engineOf } from '../dialect.js';

/**
 * PostgreSQL: readings (`data`) in daily range partitions on `created_at`, their minute rollups
 * (`reading_minutes`) in monthly ones on `minute`, so that retention drops whole partitions
 * (db/maintenance.ts creates them ahead and drops the old ones). SQLite has no partitions: nothing
 * changes there, and retention deletes in batches.
 *
 * Every unique key holds the partition key, and the readings' key leads with `device_id` (Citus
 * distributes by it): (device_id, created_at, id). Ids come from a sequence, not an identity column,
 * and an index on id alone keeps lookups by id.
 *
 * An existing table is not copied: it is renamed and attached as one partition of the new table
 * (everything before a bound), behind a CHECK constraint that states the bound, so attaching scans
 * nothing. An operator may build its indexes and that constraint beforehand without blocking writes
 * (docs/operations.md, Partitions); this migration then only renames and attaches. An empty table is
 * simply dropped. A default partition takes what no partition covers, so no insert ever fails.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  if (engineOf(db) === 'sqlite') return;
  await partitionReadings(db);
  await partitionMinuteRollups(db);
}

export async function down(): Promise<void> {
  throw new Error('0006-time-partitions cannot be undone: restore a backup taken before it');
}

const DAY_MS = 86_400_000;

async function partitionReadings(db: Kysely<unknown>): Promise<void> {
  const legacy = await hasRows(db, 'data');
  // What a new table's indexes need from the old one, so that attaching it builds nothing.
  await sql`create unique index if not exists data_legacy_key on data (device_id, created_at, id)`.execute(
    db,
  );
  // A partitioned primary key takes a partition's index only if a constraint stands on it too.
  await sql`
    do $$ begin
      if not exists (select from pg_constraint where conname = 'data_legacy_key') then
        alter table data add constraint data_legacy_key unique using index data_legacy_key;
      end if;
    end $$`.execute(db);
  await sql`create index if not exists data_legacy_id on data (id)`.execute(db);
  await sql`alter index data_time rename to data_legacy_time`.execute(db);
  await sql`drop index data_device_time`.execute(db);
  const bound = legacy ? await legacyBound(db, 'data', 'created_at', nextDay) : undefined;
  // Ids go on from the old identity column's sequence (its last value, or the largest id if larger).
  const { rows } = await sql<{ next: string }>`
    select greatest(
      (select coalesce(max(id), 0) from data),
      (select coalesce(last_value, 0) from pg_sequences where sequencename = 'data_id_seq')
    ) + 1 as next`.execute(db);
  const next = Number(rows[0]?.next ?? 1);
  await sql`alter table data alter column id drop identity`.execute(db);
  await sql`alter table data rename to data_legacy`.execute(db);
  await sql`alter table data_legacy rename constraint data_pkey to data_legacy_pkey`.execute(db);
  await sql`alter table data_legacy rename constraint data_device_id_fkey to data_legacy_device_id_fkey`.execute(
    db,
  );

  await sql`create sequence data_id_seq as bigint start with ${sql.lit(next)}`.execute(db);
  await sql`
    create table data (
      id bigint not null default nextval('data_id_seq'),
      device_id integer not null references devices (id) on delete cascade,
      x double precision not null,
      y double precision not null,
      z double precision not null,
      created_at bigint not null,
      constraint data_pkey primary key (device_id, created_at, id)
    ) partition by range (created_at)`.execute(db);
  await sql`alter sequence data_id_seq owned by data.id`.execute(db);
  // Listings and statistics over every device read by time; lookups by id alone (ids are unique).
  await sql`create index data_time on data (created_at, id)`.execute(db);
  await sql`create index data_id on data (id)`.execute(db);
  await sql`create table data_default partition of data default`.execute(db);
  if (bound === undefined) {
    await sql`drop table data_legacy`.execute(db);
  } else {
    await sql`alter table data attach partition data_legacy
      for values from (minvalue) to (${sql.lit(bound)})`.execute(db);
    // Its old key on id alone goes (the sequence keeps ids unique, data_legacy_id serves lookups):
    // Citus distributes only tables whose unique keys hold device_id.
    await sql`alter table data_legacy drop constraint data_legacy_pkey`.execute(db);
  }
}

async function partitionMinuteRollups(db: Kysely<unknown>): Promise<void> {
  const legacy = await hasRows(db, 'reading_minutes');
  const bound = legacy ? await legacyBound(db, 'reading_minutes', 'minute', nextMonth) : undefined;
  await sql`alter table reading_minutes rename to reading_minutes_legacy`.execute(db);
  await sql`alter table reading_minutes_legacy
    rename constraint reading_minutes_pkey to reading_minutes_legacy_pkey`.execute(db);
  await sql`alter table reading_minutes_legacy
    rename constraint reading_minutes_device_id_fkey to reading_minutes_legacy_device_id_fkey`.execute(db);
  const sums = ['x', 'y', 'z'].map(
    (v) =>
      sql`${sql.ref(`${v}_min`)} double precision not null, ${sql.ref(`${v}_max`)} double precision not null,
        ${sql.ref(`${v}_sum`)} double precision`,
  );
  await sql`
    create table reading_minutes (
      device_id integer not null references devices (id) on delete cascade,
      minute bigint not null,
      readings integer not null,
      ${sql.join(sums)},
      constraint reading_minutes_pkey primary key (device_id, minute)
    ) partition by range (minute)`.execute(db);
  await sql`create table reading_minutes_default partition of reading_minutes default`.execute(db);
  if (bound === undefined) {
    await sql`drop table reading_minutes_legacy`.execute(db);
  } else {
    await sql`alter table reading_minutes attach partition reading_minutes_legacy
      for values from (minvalue) to (${sql.lit(bound)})`.execute(db);
  }
}

async function hasRows(db: Kysely<unknown>, table: string): Promise<boolean> {
  const { rows } = await sql<{
    any: boolean;
  }>`select exists (select from ${sql.table(table)}) as any`.execute(db);
  return rows[0]?.any === true;
}

/**
 * The old table's upper bound as a partition, and its CHECK constraint `<table>_legacy_range` stating
 * it: taken as it is when an operator made and validated it beforehand, otherwise made here from the
 * next period start after both now and the latest row (the table's time index answers that at once).
 */
async function legacyBound(
  db: Kysely<unknown>,
  table: string,
  column: string,
  after: (time: number) => number,
): Promise<number> {
  const name = `${table}_legacy_range`;
  const { rows: made } = await sql<{ definition: string; validated: boolean }>`
    select pg_get_constraintdef(oid) as definition, convalidated as validated
    from pg_constraint where conname = ${name} and conrelid = ${table}::regclass`.execute(db);
  const existing = made[0];
  if (existing) {
    const bound = /<\s*\(?'?(-?\d+)/.exec(existing.definition)?.[1];
    if (bound === undefined) throw new Error(`${name} is not of the form ${column} < BOUND`);
    if (!existing.validated)
      await sql`alter table ${sql.table(table)} validate constraint ${sql.ref(name)}`.execute(db);
    return Number(bound);
  }
  const { rows } = await sql<{ latest: string }>`
    select max(${sql.ref(column)}) as latest from ${sql.table(table)}`.execute(db);
  const bound = after(Math.max(Date.now(), Number(rows[0]?.latest ?? 0)));
  await sql`alter table ${sql.table(table)} add constraint ${sql.ref(name)}
    check (${sql.ref(column)} < ${sql.lit(bound)}) not valid`.execute(db);
  await sql`alter table ${sql.table(table)} validate constraint ${sql.ref(name)}`.execute(db);
  return bound;
}

/** The start of the UTC day after `time`. */
function nextDay(time: number): number {
  return Math.floor(time / DAY_MS) * DAY_MS + DAY_MS;
}

/** The start of the UTC month after `time`. */
function nextMonth(time: number): number {
  const date = new Date(time);
  return Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1);
}
