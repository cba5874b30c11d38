import type { Kysely } from 'kysely';
import type { Database, EpochMs } from '../db/tables.js';

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
