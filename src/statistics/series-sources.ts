import { type Kysely, sql } from 'kysely';
import { type ReadingSelection, selectionFilter } from '../data/selection.js';
import { type Engine, throughIndex } from '../db/dialect.js';
import { type Database, type EpochMs, MINUTE_MS } from '../db/tables.js';
import type { DeviceRange } from './device-ranges.js';
import { HOUR_MS } from './rollup-periods.js';

/**
 * Unfolded hours a series leaves out of the hourly rollups at most (adjacent hours of a device count
 * as one range). Past that (a backlog after an upgrade, a large import) the series reads the minutes,
 * as it did before the hourly rollups: never wrong, only slower. One SQL condition holds them all.
 */
const MAX_UNFOLDED_RANGES = 200;

/** Where bucket aggregates are read from: the readings, their per-minute or their hourly rollups. */
export type Source = 'readings' | 'minutes' | 'hours';

/**
 * A stretch of time [from, to) of the selected devices read from one source; `only` keeps just these
 * devices' ranges of it, `except` leaves them out.
 */
export interface Part {
  source: Source;
  from: EpochMs;
  to: EpochMs;
  only?: readonly DeviceRange[];
  except?: readonly DeviceRange[];
}

/**
 * [from, to) as the cheapest sources that answer it exactly, for buckets whose boundaries are all
 * `boundaries`: whole hours from the hourly rollups (`reading_hours`) where every minute of the hour
 * is folded into them, the device's hours with unfolded minutes (late readings, the current hour)
 * and the partial hours at either end from the minute rollups, and the partial minutes at either end
 * from the readings. Before `hoursFrom` (the readings' retention horizon) the minutes answer every
 * hour. Boundaries off whole hours (a zone 30 or 45 minutes off UTC, minute buckets)
 * skip the hours; boundaries off whole minutes read every reading.
 */
export async function seriesParts(
  db: Kysely<Database>,
  engine: Engine,
  selection: ReadingSelection & { hoursFrom?: EpochMs },
  boundaries: readonly EpochMs[],
  from: EpochMs,
  to: EpochMs,
): Promise<Part[]> {
  if (!boundaries.every((boundary) => boundary % MINUTE_MS === 0)) return [{ source: 'readings', from, to }];
  const hourFrom = Math.ceil(Math.max(from, selection.hoursFrom ?? from) / HOUR_MS) * HOUR_MS;
  const hourTo = Math.floor(to / HOUR_MS) * HOUR_MS;
  if (hourFrom >= hourTo || !boundaries.every((boundary) => boundary % HOUR_MS === 0)) {
    return splitAtMinutes(from, to);
  }
  const unfolded = await unfoldedHours(db, engine, selection, hourFrom, hourTo);
  if (unfolded.length > MAX_UNFOLDED_RANGES) return splitAtMinutes(from, to);
  const parts: Part[] = [{ source: 'hours', from: hourFrom, to: hourTo, except: unfolded }];
  if (unfolded.length > 0) parts.push({ source: 'minutes', from: hourFrom, to: hourTo, only: unfolded });
  const edges = [
    ...(from < hourFrom ? splitAtMinutes(from, hourFrom) : []),
    ...(hourTo < to ? splitAtMinutes(hourTo, to) : []),
  ];
  // The minutes are keyed by device, then time: a stretch of every device's minutes is read as one
  // index range per device (without, SQLite scans every minute stored: 150 ms over 30 days of 1M
  // readings, for the hour at either end).
  const devices = edges.some((part) => part.source === 'minutes') ? await selectedDevices(db, selection) : [];
  for (const part of edges) {
    const perDevice = part.source === 'minutes' && devices.length <= MAX_UNFOLDED_RANGES;
    parts.push(
      perDevice ? { ...part, only: devices.map((id): DeviceRange => [id, part.from, part.to]) } : part,
    );
  }
  return parts;
}

/** The ids of the selected devices. */
async function selectedDevices(
  db: Kysely<Database>,
  { deviceId, ownerId }: ReadingSelection,
): Promise<number[]> {
  if (deviceId !== undefined) return [deviceId];
  const owned = ownerId === undefined ? sql`true` : sql`user_id = ${ownerId}`;
  const { rows } = await sql<{ id: number }>`select id from devices where ${owned} order by id`.execute(db);
  return rows.map((row) => row.id);
}

/** [from, to) as its whole minutes (rollups) and the ragged pieces before and after (readings). */
export function splitAtMinutes(from: EpochMs, to: EpochMs): Part[] {
  const wholeFrom = Math.ceil(from / MINUTE_MS) * MINUTE_MS;
  const wholeTo = Math.floor(to / MINUTE_MS) * MINUTE_MS;
  if (wholeFrom >= wholeTo) return [{ source: 'readings', from, to }];
  const parts: Part[] = [{ source: 'minutes', from: wholeFrom, to: wholeTo }];
  if (from < wholeFrom) parts.push({ source: 'readings', from, to: wholeFrom });
  if (wholeTo < to) parts.push({ source: 'readings', from: wholeTo, to });
  return parts;
}

/**
 * The selected devices' hours in [from, to) (whole hours) holding a minute not folded into the hourly
 * rollups yet, adjacent hours of a device joined: their rollup rows may be stale or missing. Read
 * through the partial index of the unfolded minutes, in the heavy query's snapshot, so the minutes
 * read for them afterwards are the ones seen here (a fold meanwhile changes no minute's values).
 */
export async function unfoldedHours(
  db: Kysely<Database>,
  engine: Engine,
  { deviceId, ownerId }: ReadingSelection,
  from: EpochMs,
  to: EpochMs,
): Promise<DeviceRange[]> {
  const filter = selectionFilter({ deviceId, ownerId, start: from, end: to - 1 }, 'r', 'minute');
  const { rows } = await sql<{ device_id: number; hour: number | string }>`
    select distinct r.device_id, r.minute - ((r.minute % ${HOUR_MS}) + ${HOUR_MS}) % ${HOUR_MS} as hour
    from ${throughIndex(engine, 'reading_minutes', 'r', 'reading_minutes_unfolded')}
    where r.folded = 0 and ${filter}
    order by 1, 2`.execute(db);
  const ranges: Array<[number, number, number]> = [];
  for (const row of rows) {
    const hour = Number(row.hour);
    const last = ranges.at(-1);
    if (last && last[0] === row.device_id && last[2] === hour) last[2] = hour + HOUR_MS;
    else ranges.push([row.device_id, hour, hour + HOUR_MS]);
  }
  return ranges;
}
