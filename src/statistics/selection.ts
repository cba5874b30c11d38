import type { Kysely } from 'kysely';
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

/** `from data where <the selection>`, for a statistics query to select its aggregates from. */
export function selectedReadings(db: Kysely<Database>, { deviceId, ownerId, start, end }: ReadingSelection) {
  let query = db.selectFrom('data');
  if (deviceId !== undefined) query = query.where('data.device_id', '=', deviceId);
  if (ownerId !== undefined) {
    query = query.where('data.device_id', 'in', (eb) =>
      eb.selectFrom('devices').select('devices.id').where('devices.user_id', '=', ownerId),
    );
  }
  if (start !== undefined) query = query.where('data.created_at', '>=', start);
  if (end !== undefined) query = query.where('data.created_at', '<=', end);
  return query;
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
