import type { Kysely, Selectable } from 'kysely';
import type { Database, EpochMs, ReadingsTable } from '../db/tables.js';
import { toIsoString } from '../http/dates.js';
import type { Reading } from './schemas.js';
import { selectionFilter } from './selection.js';

const toReading = (row: Selectable<ReadingsTable>): Reading => ({
  id: row.id,
  device_id: row.device_id,
  x: row.x,
  y: row.y,
  z: row.z,
  timestamp: toIsoString(row.created_at),
});

export interface ReadingPage {
  limit: number;
  /** Readings skipped (after `after`). */
  offset?: number;
  after?: { createdAt: EpochMs; id: number };
  deviceId?: number;
  start?: EpochMs;
  end?: EpochMs;
}

/** A page of readings in time order (ties by id), served by the (device_id, created_at, id) index. */
export async function listReadings(db: Kysely<Database>, page: ReadingPage): Promise<Reading[]> {
  let query = db
    .selectFrom('data')
    .selectAll()
    .orderBy('created_at')
    .orderBy('id')
    .limit(page.limit + 1)
    .offset(page.offset ?? 0)
    .where(selectionFilter(page));
  const after = page.after;
  if (after) {
    query = query.where((eb) =>
      eb.or([
        eb('created_at', '>', after.createdAt),
        eb.and([eb('created_at', '=', after.createdAt), eb('id', '>', after.id)]),
      ]),
    );
  }
  return (await query.execute()).map(toReading);
}
