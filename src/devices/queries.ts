import type { Kysely, Selectable } from 'kysely';
import { engineOf } from '../db/dialect.js';
import { type Database, type DevicesTable, type EpochMs, MINUTE_MS } from '../db/tables.js';
import { toIsoString } from '../http/dates.js';
import type { Device } from './schemas.js';

/** How much a device has sent: its readings and the time of the latest one. */
interface Activity {
  readings: number;
  last_reading_at: EpochMs | null;
}

const NO_ACTIVITY: Activity = { readings: 0, last_reading_at: null };

const toDevice = (row: Selectable<DevicesTable>, activity: Activity): Device => ({
  id: row.id,
  name: row.name,
  user_id: row.user_id,
  created_at: toIsoString(row.created_at),
  readings: activity.readings,
  last_reading_at: activity.last_reading_at === null ? null : toIsoString(activity.last_reading_at),
});

/**
 * The activity of the devices `ids`, for a whole page at once: the count of each one's readings as its
 * per-minute rollups add up, and its latest reading looked up within its last minute that has any.
 * SQLite: one statement, the sum from the totals that triggers keep (migration 0008) and the last
 * minute, and the latest reading as one seek of the device's key (two rows and a seek per device).
 * PostgreSQL sums the minutes (a month is ~43,000 of them, not every reading), off the event loop, then
 * seeks each device's latest reading (latestReadings). Both select by device id, not by a subquery
 * correlated with `devices`, which Citus refuses (devices are a reference table there).
 * A device whose readings are past the retention has rollups left: its latest time is then that
 * minute's start.
 */
async function activityOf(db: Kysely<Database>, ids: number[]): Promise<Map<number, Activity>> {
  if (ids.length === 0) return new Map();
  if (engineOf(db) === 'sqlite') {
    const rows = await sqliteActivity(db, ids).execute();
    return new Map(
      rows.map((row) => [
        row.device_id,
        { readings: Number(row.readings), last_reading_at: Number(row.last ?? row.last_minute) },
      ]),
    );
  }
  const minutes = await db
    .selectFrom('reading_minutes')
    .select((eb) => [
      'device_id',
      eb.fn.sum<number | string>('readings').as('readings'),
      eb.fn.max('minute').as('last_minute'),
    ])
    .where('device_id', 'in', ids)
    .groupBy('device_id')
    .execute();
  if (minutes.length === 0) return new Map();
  const latest = await latestReadings(db, minutes);
  const lastOf = new Map(latest.map((row) => [row.device_id, Number(row.last)]));
  return new Map(
    minutes.map((row) => [
      row.device_id,
      {
        readings: Number(row.readings),
        last_reading_at: lastOf.get(row.device_id) ?? Number(row.last_minute),
      },
    ]),
  );
}

/**
 * SQLite's activity of the devices `ids` in one statement: each device's totals and last minute, and
 * its latest reading within that minute as a subquery of the device's key (one index seek, whatever
 * the minute holds). It replaced a union of one seek per device beside the totals' statement: a
 * device list cost the event loop 230 us before (issue 17).
 */
export function sqliteActivity(db: Kysely<Database>, ids: number[]) {
  return db
    .selectFrom('device_reading_totals as totals')
    .innerJoin('reading_minutes as last', (join) =>
      join.onRef('last.device_id', '=', 'totals.device_id').onRef('last.minute', '=', 'totals.last_minute'),
    )
    .select((eb) => [
      'totals.device_id',
      eb('totals.readings_before', '+', eb.ref('last.readings')).as('readings'),
      'totals.last_minute',
      eb
        .selectFrom('data')
        .select('data.created_at')
        .whereRef('data.device_id', '=', 'totals.device_id')
        .whereRef('data.created_at', '>=', 'totals.last_minute')
        .where('data.created_at', '<', eb('totals.last_minute', '+', MINUTE_MS))
        .orderBy('data.created_at', 'desc')
        .limit(1)
        .as('last'),
    ])
    .where('totals.device_id', 'in', ids);
}

/**
 * PostgreSQL: the time of each device's latest reading, looked up from the start of its last minute
 * that has any: one index seek per device (the newest entry of its (device_id, created_at) key),
 * whatever the minute holds. An OR of the devices' ranges, grouped, read every reading of each one's
 * last minute, and a device that keeps sending holds thousands there: 650 ms a page once a device had
 * 600,000 readings in its last minute (batches), which took the mixed scenario down to 19 req/s, its
 * device lists running side by side (issue 17). A statement per device, side by side on the pool, each
 * planned with its own values (its statistics pick the device's key rather than the time index), and
 * each a single-shard query on Citus; a union planned its ~10 partitions per device (1.4 s to plan
 * 1,000 devices), and Citus refuses a lateral join's LIMIT over a distributed table beside a list of
 * ids (citusdata/citus#5753).
 */
async function latestReadings(
  db: Kysely<Database>,
  minutes: { device_id: number; last_minute: unknown }[],
): Promise<{ device_id: number; last: number | string }[]> {
  const found: { device_id: number; last: number | string }[] = [];
  // A few at a time: a page of 1,000 devices must not queue ahead of every other request for the pool.
  for (let at = 0; at < minutes.length; at += SEEKS_SIDE_BY_SIDE) {
    const seeks = minutes
      .slice(at, at + SEEKS_SIDE_BY_SIDE)
      .map(({ device_id, last_minute }) => latestReading(db, device_id, Number(last_minute)).execute());
    found.push(...(await Promise.all(seeks)).flat());
  }
  return found;
}

/**
 * The time of a device's latest reading within the minute that starts at `minute` (its last with
 * readings; none when they are past the retention): one seek of its key. Both bounds let PostgreSQL
 * plan that day's partition and the default one alone, not every partition made ahead.
 */
export function latestReading(db: Kysely<Database>, deviceId: number, minute: EpochMs) {
  return db
    .selectFrom('data')
    .select(['device_id', 'created_at as last'])
    .where('device_id', '=', deviceId)
    .where('created_at', '>=', minute)
    .where('created_at', '<', minute + MINUTE_MS)
    .orderBy('created_at', 'desc')
    .limit(1);
}

/** PostgreSQL seeks in flight at once for one page (the pool holds 10 connections). */
const SEEKS_SIDE_BY_SIDE = 4;

/** The devices of `rows`, with their activity. */
async function withActivity(db: Kysely<Database>, rows: Selectable<DevicesTable>[]): Promise<Device[]> {
  const activity = await activityOf(
    db,
    rows.map((row) => row.id),
  );
  return rows.map((row) => toDevice(row, activity.get(row.id) ?? NO_ACTIVITY));
}

export async function insertDevice(
  db: Kysely<Database>,
  device: { name: string | null; ownerId: number | null; ingestTokenDigest: string | null },
) {
  const row = await db
    .insertInto('devices')
    .values({
      name: device.name,
      user_id: device.ownerId,
      created_at: Date.now(),
      ingest_token_digest: device.ingestTokenDigest,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toDevice(row, NO_ACTIVITY);
}

export async function renameDevice(db: Kysely<Database>, id: number, name: string | null): Promise<Device> {
  await db.updateTable('devices').set({ name }).where('id', '=', id).execute();
  return (await findDevice(db, id)) as Device;
}

export async function setIngestTokenDigest(db: Kysely<Database>, id: number, digest: string): Promise<void> {
  await db.updateTable('devices').set({ ingest_token_digest: digest }).where('id', '=', id).execute();
}

/** Deletes a device and, through the foreign key's cascade, all of its readings. */
export async function deleteDevice(db: Kysely<Database>, id: number): Promise<void> {
  await db.deleteFrom('devices').where('id', '=', id).execute();
}

export async function findDevice(db: Kysely<Database>, id: number): Promise<Device | undefined> {
  const row = await db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
  return row && (await withActivity(db, [row]))[0];
}

/** Who owns a device (null: nobody), or undefined when there is no such device. */
export async function findDeviceOwner(
  db: Kysely<Database>,
  id: number,
): Promise<{ user_id: number | null } | undefined> {
  return db.selectFrom('devices').select('user_id').where('id', '=', id).executeTakeFirst();
}

/**
 * One page of devices in id order, starting after `afterId` and `offset` more; one row more than
 * `limit` tells a next page.
 */
export async function listDevices(
  db: Kysely<Database>,
  page: { limit: number; offset: number; afterId?: number; ownerId?: number },
): Promise<Device[]> {
  let query = db
    .selectFrom('devices')
    .selectAll()
    .orderBy('id')
    .limit(page.limit + 1)
    .offset(page.offset);
  if (page.afterId !== undefined) query = query.where('id', '>', page.afterId);
  if (page.ownerId !== undefined) query = query.where('user_id', '=', page.ownerId);
  return withActivity(db, await query.execute());
}

/** The devices among `ids` that exist, with the digest of their ingest token. */
export function deviceIngestDigests(db: Kysely<Database>, ids: number[]) {
  return db.selectFrom('devices').select(['id', 'ingest_token_digest']).where('id', 'in', ids).execute();
}

/** Whether `digest` is the ingest token digest of some device. */
export async function isIngestTokenDigest(db: Kysely<Database>, digest: string): Promise<boolean> {
  const row = await db
    .selectFrom('devices')
    .select('id')
    .where('ingest_token_digest', '=', digest)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}
