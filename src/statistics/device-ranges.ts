import { type RawBuilder, sql } from 'kysely';

/** One device's times from `from` (inclusive) to `to` (exclusive), epoch ms. */
export type DeviceRange = readonly [deviceId: number, from: number, to: number];

/**
 * `(device = d and time >= from and time < to) or ...`, one term per range: both engines plan it as
 * one index range scan per term. Joined with the ranges as a table instead (unnest / json_each),
 * PostgreSQL plans from default estimates and scans every reading (0.5 s a fold step over 1M).
 */
export function inRanges(
  device: RawBuilder<unknown>,
  time: RawBuilder<unknown>,
  ranges: readonly DeviceRange[],
): RawBuilder<boolean> {
  if (ranges.length === 0) return sql<boolean>`false`;
  return sql<boolean>`(${sql.join(
    ranges.map(
      ([deviceId, from, to]) => sql`(${device} = ${deviceId} and ${time} >= ${from} and ${time} < ${to})`,
    ),
    sql` or `,
  )})`;
}

/** Ranges in groups short enough for one statement (SQLite parses a list of ORs 1,000 deep at most). */
export function rangeGroups(ranges: readonly DeviceRange[], size = 200): DeviceRange[][] {
  const groups: DeviceRange[][] = [];
  for (let i = 0; i < ranges.length; i += size) groups.push(ranges.slice(i, i + size));
  return groups;
}

/**
 * The ranges with each run of adjacent or overlapping ones of a device made one:
 * a sparse device's hundred consecutive hours are one index range scan, not a hundred terms (which
 * PostgreSQL plans for every partition of the readings). Sorted by device and start.
 */
export function joinAdjacent(ranges: readonly DeviceRange[]): DeviceRange[] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const joined: Array<[number, number, number]> = [];
  for (const [deviceId, from, to] of sorted) {
    const last = joined.at(-1);
    if (last && last[0] === deviceId && from <= last[2]) last[2] = Math.max(last[2], to);
    else joined.push([deviceId, from, to]);
  }
  return joined;
}
