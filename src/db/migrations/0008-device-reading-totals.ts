import { type Kysely, sql } from 'kysely';
import { engineOf } from '../dialect.js';

/**
 * SQLite: each device's last minute that has readings, and the count of its readings before that
 * minute, kept by triggers on `reading_minutes`: the device list reads its count as these readings
 * plus those of that last minute (one row each), rather than summing every minute of the device (a
 * month of a busy device is ~43,000 of them: 6-20 ms on the event loop per page, the costliest
 * request of the mixed scenario, issue 17). The last minute itself stays out of the totals so that
 * ingest, which merges into a device's current minute at every commit, writes no totals row then:
 * its trigger only reads one; a new minute, a late reading and a delete write one.
 * Triggers, not the write path: every writer of `reading_minutes` keeps the totals (ingest, imports,
 * the retention's deletes, a device's deletion cascading to its minutes).
 * PostgreSQL sums the minutes as before: its query does not hold the event loop, and Citus runs no
 * triggers on distributed tables.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  if (engineOf(db) === 'postgres') return;
  await sql`
    create table device_reading_totals (
      device_id integer primary key,
      last_minute integer not null,
      readings_before integer not null
    )`.execute(db);
  await sql`
    insert into device_reading_totals (device_id, last_minute, readings_before)
    select device_id, max(minute), 0 from reading_minutes group by device_id`.execute(db);
  await sql`
    update device_reading_totals set readings_before = (
      select coalesce(sum(readings), 0) from reading_minutes
      where device_id = device_reading_totals.device_id and minute < device_reading_totals.last_minute)`.execute(
    db,
  );
  // A new last minute takes the one before into the totals; a new earlier minute (late readings) adds its own.
  await sql`
    create trigger device_reading_totals_insert after insert on reading_minutes
    begin
      insert into device_reading_totals (device_id, last_minute, readings_before)
      values (new.device_id, new.minute, 0)
      on conflict (device_id) do update set
        readings_before = readings_before + case
          when excluded.last_minute > last_minute then coalesce((
            select readings from reading_minutes
            where device_id = excluded.device_id and minute = device_reading_totals.last_minute), 0)
          else new.readings end,
        last_minute = max(last_minute, excluded.last_minute);
    end`.execute(db);
  await sql`
    create trigger device_reading_totals_update after update of readings on reading_minutes
    when new.readings <> old.readings
      and new.minute < (select last_minute from device_reading_totals where device_id = new.device_id)
    begin
      update device_reading_totals set readings_before = readings_before + new.readings - old.readings
      where device_id = new.device_id;
    end`.execute(db);
  // The last minute deleted: the one before it (if any) becomes the last, and leaves the totals.
  await sql`
    create trigger device_reading_totals_delete after delete on reading_minutes
    begin
      update device_reading_totals set readings_before = readings_before - old.readings
      where device_id = old.device_id and old.minute < last_minute;
      update device_reading_totals set
        last_minute = coalesce(
          (select max(minute) from reading_minutes where device_id = old.device_id), last_minute)
      where device_id = old.device_id and old.minute = last_minute;
      update device_reading_totals set readings_before = readings_before - coalesce((
          select readings from reading_minutes
          where device_id = old.device_id and minute = device_reading_totals.last_minute), 0)
      where device_id = old.device_id and old.minute > last_minute;
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
