import type { ExpressionBuilder, Kysely, Selectable } from 'kysely';
import type { Database, DevicesTable, EpochMs } from '../db/tables.js';
import { toIsoString } from '../http/dates.js';
import type { Device } from './schemas.js';

/** How much a device has sent: its readings and the time of the latest one. */
interface Activity {
  readings: number | string | null;
  last_reading_at: EpochMs | string | null;
}

const toDevice = (row: Selectable<DevicesTable>, activity: Activity): Device => ({
  id: row.id,
  name: row.name,
  user_id: row.user_id,
  created_at: toIsoString(row.created_at),
  readings: Number(activity.readings ?? 0),
  last_reading_at: activity.last_reading_at === null ? null : toIsoString(Number(activity.last_reading_at)),
});

/**
 * The activity of the device in each row: the count summed over its per-minute rollups (a month is
 * ~43,000 of them, not every reading) and its latest reading time, one lookup in data_device_time.
 */
const activity = (eb: ExpressionBuilder<Database, 'devices'>) => [
  eb
    .selectFrom('reading_minutes')
    .select((sub) => sub.fn.sum<number>('reading_minutes.readings').as('readings'))
    .whereRef('reading_minutes.device_id', '=', 'devices.id')
    .as('readings'),
  eb
    .selectFrom('data')
    .select((sub) => sub.fn.max('data.created_at').as('last'))
    .whereRef('data.device_id', '=', 'devices.id')
    .as('last_reading_at'),
];

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
  return toDevice(row, { readings: 0, last_reading_at: null });
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
  const row = await db
    .selectFrom('devices')
    .selectAll('devices')
    .select(activity)
    .where('id', '=', id)
    .executeTakeFirst();
  return row && toDevice(row, row);
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
    .selectAll('devices')
    .select(activity)
    .orderBy('id')
    .limit(page.limit + 1)
    .offset(page.offset);
  if (page.afterId !== undefined) query = query.where('id', '>', page.afterId);
  if (page.ownerId !== undefined) query = query.where('user_id', '=', page.ownerId);
  return (await query.execute()).map((row) => toDevice(row, row));
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
