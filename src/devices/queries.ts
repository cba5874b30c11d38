import type { Kysely, Selectable } from 'kysely';
import type { Database, DevicesTable } from '../db/tables.js';
import { toIsoString } from '../http/dates.js';
import type { Device } from './schemas.js';

const toDevice = (row: Selectable<DevicesTable>): Device => ({
  id: row.id,
  name: row.name,
  user_id: row.user_id,
  created_at: toIsoString(row.created_at),
});

export async function insertDevice(db: Kysely<Database>, name: string | null, ownerId: number | null) {
  const row = await db
    .insertInto('devices')
    .values({ name, user_id: ownerId, created_at: Date.now() })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toDevice(row);
}

export async function findDevice(db: Kysely<Database>, id: number): Promise<Device | undefined> {
  const row = await db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
  return row && toDevice(row);
}

/** One page of devices in id order, starting after `afterId`; one row more than `limit` tells a next page. */
export async function listDevices(
  db: Kysely<Database>,
  page: { limit: number; afterId?: number; ownerId?: number },
): Promise<Device[]> {
  let query = db
    .selectFrom('devices')
    .selectAll()
    .orderBy('id')
    .limit(page.limit + 1);
  if (page.afterId !== undefined) query = query.where('id', '>', page.afterId);
  if (page.ownerId !== undefined) query = query.where('user_id', '=', page.ownerId);
  return (await query.execute()).map(toDevice);
}

/** Which of `ids` name a device. */
export async function existingDeviceIds(db: Kysely<Database>, ids: number[]): Promise<number[]> {
  const rows = await db.selectFrom('devices').select('id').where('id', 'in', ids).execute();
  return rows.map((row) => row.id);
}
