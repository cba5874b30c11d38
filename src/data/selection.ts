import { type Kysely, type RawBuilder, sql } from 'kysely';
import type { Database, EpochMs } from '../db/tables.js';
import { findDeviceOwner } from '../devices/queries.js';
import { notFound } from '../http/errors.js';
import { findUserById } from '../users/queries.js';

/** Which readings a statistic covers: every filter given applies, together. */
export interface ReadingSelection {
  deviceId?: number;
  /** Only the devices this user owns. */
  ownerId?: number;
  /** Inclusive bounds on the reading time. */
  start?: EpochMs;
  end?: EpochMs;
}

/**
 * The selection as one condition on a relation of readings (`data`, or the rollups: `reading_minutes`
 * with their `minute`, `reading_hours` with their `start`): every filter given, together; `true` when
 * none is. The one place the selection becomes SQL, for statistics, series and listings alike.
 */
export function selectionFilter(
  { deviceId, ownerId, start, end }: ReadingSelection,
  table: 'data' | 'r' = 'data',
  time: 'created_at' | 'minute' | 'start' = 'created_at',
): RawBuilder<boolean> {
  const column = (name: string) => sql.ref(`${table}.${name}`);
  const conditions: RawBuilder<unknown>[] = [];
  if (deviceId !== undefined) conditions.push(sql`${column('device_id')} = ${deviceId}`);
  if (ownerId !== undefined) {
    conditions.push(sql`${column('device_id')} in (select id from devices where user_id = ${ownerId})`);
  }
  if (start !== undefined) conditions.push(sql`${column(time)} >= ${start}`);
  if (end !== undefined) conditions.push(sql`${column(time)} <= ${end}`);
  return conditions.length === 0 ? sql<boolean>`true` : sql<boolean>`${sql.join(conditions, sql` and `)}`;
}

/** `from data where <the selection>`, for a query to select from. */
export function selectedReadings(db: Kysely<Database>, selection: ReadingSelection) {
  return db.selectFrom('data').where(selectionFilter(selection));
}

/**
 * A selection must name things that exist: an unknown user or device is a 404, and so is a device
 * the selected owner does not own (rather than a silently empty answer).
 */
export async function requireSelectable(
  db: Kysely<Database>,
  { deviceId, ownerId }: ReadingSelection,
): Promise<void> {
  if (ownerId !== undefined && !(await findUserById(db, ownerId)))
    throw notFound(`User ${ownerId} not found`);
  if (deviceId === undefined) return;
  const device = await findDeviceOwner(db, deviceId);
  if (!device) throw notFound(`Device ${deviceId} not found`);
  if (ownerId !== undefined && device.user_id !== ownerId) {
    throw notFound(`Device ${deviceId} does not belong to user ${ownerId}`);
  }
}
