import { type Kysely, sql } from 'kysely';
import { engineOf } from '../dialect.js';

/**
 * SQLite: each device's count of readings and its last minute that has any, kept equal to the sum and
 * the maximum over its `reading_minutes` by triggers on that table, so the device list reads one row
 * per device rather than summing every minute of each one (a month of a busy device is ~43,000 of
 * them: 6-20 ms on the event loop per page, the costliest request of the mixed scenario, issue 17).
 * Triggers, not the write path: every writer of `reading_minutes` keeps the totals as they are kept
 * now (ingest, imports, the retention's deletes, a device's deletion cascading to its minutes).
 * PostgreSQL sums the minutes as before: its query does not hold the event loop, and Citus runs no
 * triggers on distributed tables.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  if (engineOf(db) === 'postgres') return;
  await sql`
    create table device_reading_totals (
      device_id integer primary key,
      readings integer not null,
      last_minute integer not null
    )`.execute(db);
  await sql`
    insert into device_reading_totals (device_id, readings, last_minute)
    select device_id, sum(readings), max(minute) from reading_minutes group by device_id`.execute(db);
  await sql`
    create trigger device_reading_totals_insert after insert on reading_minutes
    begin
      insert into device_reading_totals (device_id, readings, last_minute)
      values (new.device_id, new.readings, new.minute)
      on conflict (device_id) do update set
        readings = readings + excluded.readings,
        last_minute = max(last_minute, excluded.last_minute);
    end`.execute(db);
  await sql`
    create trigger device_reading_totals_update after update of readings on reading_minutes
    when new.readings <> old.readings
    begin
      update device_reading_totals set readings = readings + new.readings - old.readings
      where device_id = new.device_id;
    end`.execute(db);
  await sql`
    create trigger device_reading_totals_delete after delete on reading_minutes
    begin
      update device_reading_totals set
        readings = readings - old.readings,
        last_minute = coalesce(
          (select max(minute) from reading_minutes where device_id = old.device_id), last_minute)
      where device_id = old.device_id;
      delete from device_reading_totals
      where device_id = old.device_id
        and not exists (select 1 from reading_minutes where device_id = old.device_id);
    end`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  if (engineOf(db) === 'postgres') return;
  for (const trigger of ['insert', 'update', 'delete'])
    await sql`drop trigger if exists ${sql.raw(`device_reading_totals_${trigger}`)}`.execute(db);
  await sql`drop table device_reading_totals`.execute(db);
}
