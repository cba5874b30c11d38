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
  return toDevice(row);
}

export async function renameDevice(db: Kysely<Database>, id: number, name: string | null): Promise<Device> {
  const row = await db
    .updateTable('devices')
    .set({ name })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
  return toDevice(row);
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

/** The devices among `ids` that exist, with the digest of their ingest token. */
export function deviceIngestDigests(db: Kysely<Database>, ids: number[]) {
  return db.selectFrom('devices').select(['id', 'ingest_token_digest']).where('id', 'in', ids).execute();
}
