import { type Kysely, type RawBuilder, sql } from 'kysely';
import { type Engine, percentile } from '../db/dialect.js';
import type { Database, EpochMs } from '../db/tables.js';
import type { Attribute } from './schemas.js';
import { type ReadingSelection, selectedReadings } from './selection.js';

/** The aggregates of one value in one bucket. */
export interface BucketValues {
  min: number | null;
  max: number | null;
  sum: number | null;
  median?: number | null;
}

export interface BucketRow {
  /** Index of the bucket in the boundaries given. */
  bucket: number;
  count: number;
  byAttr: Partial<Record<Attribute, BucketValues>>;
}

/**
 * Aggregates per time bucket, in one of two ways, both exact:
 * - fixed-width buckets (minutes, hours) are numbered by arithmetic on the reading time, one index
 *   range scan over the whole span;
 * - calendar buckets (days and weeks, 23 or 25 hours on daylight-saving days) are joined as a list of
 *   [start, end) ranges computed by the caller, each an index range scan, with no SQL date functions
 *   on either engine. CROSS JOIN keeps the buckets as the outer loop on SQLite, whose planner
 *   otherwise may scan a device's readings and look up the bucket of each.
 */
export async function readingSeries(
  db: Kysely<Database>,
  engine: Engine,
  selection: ReadingSelection & { attrs: Attribute[]; withMedian: boolean },
  boundaries: EpochMs[],
): Promise<BucketRow[]> {
  const conditions: RawBuilder<unknown>[] = [];
  if (selection.deviceId !== undefined) conditions.push(sql`data.device_id = ${selection.deviceId}`);
  if (selection.ownerId !== undefined) {
    conditions.push(sql`data.device_id in (select id from devices where user_id = ${selection.ownerId})`);
  }
  if (selection.start !== undefined) conditions.push(sql`data.created_at >= ${selection.start}`);
  if (selection.end !== undefined) conditions.push(sql`data.created_at <= ${selection.end}`);
  // Every requested value in the same pass; column names come from the x, y, z allow-list.
  const aggregates = sql.join([
    sql`count(*) as count`,
    ...selection.attrs.flatMap((attr) => {
      const value = sql.ref<number>(`data.${attr}`);
      return [
        sql`min(${value}) as ${sql.ref(`${attr}_min`)}`,
        sql`max(${value}) as ${sql.ref(`${attr}_max`)}`,
        sql`sum(${value}) as ${sql.ref(`${attr}_sum`)}`,
        ...(selection.withMedian
          ? [sql`${percentile(engine, value, 0.5)} as ${sql.ref(`${attr}_median`)}`]
          : []),
      ];
    }),
  ]);

  const first = boundaries[0] as EpochMs;
  const last = boundaries.at(-1) as EpochMs;
  const width = boundaries.length > 1 ? (boundaries[1] as EpochMs) - first : 0;
  const fixedWidth = boundaries.every((boundary, i) => boundary === first + i * width);
  const query = fixedWidth
    ? sql`
        select cast((data.created_at - ${first}) / ${width} as integer) as bucket, ${aggregates}
        from data
        where ${sql.join([sql`data.created_at >= ${first}`, sql`data.created_at < ${last}`, ...conditions], sql` and `)}
        group by 1
        order by 1`
    : sql`
        select buckets.i - 1 as bucket, ${aggregates}
        from ${calendarBuckets(engine, boundaries)}
        cross join data
        where ${sql.join([sql`data.created_at >= buckets.lo`, sql`data.created_at < buckets.hi`, ...conditions], sql` and `)}
        group by buckets.i
        order by buckets.i`;
  const { rows } = await query.execute(db);
  return rows.map((row) => {
    const columns = row as unknown as Record<string, number | null>;
    const byAttr: BucketRow['byAttr'] = {};
    for (const attr of selection.attrs) {
      byAttr[attr] = {
        min: columns[`${attr}_min`] ?? null,
        max: columns[`${attr}_max`] ?? null,
        sum: columns[`${attr}_sum`] ?? null,
        ...(selection.withMedian ? { median: columns[`${attr}_median`] ?? null } : {}),
      };
    }
    return { bucket: Number(columns.bucket), count: Number(columns.count), byAttr };
  });
}

/** The [start, end) ranges of calendar buckets as a table `buckets(i, lo, hi)`, i counting from 1. */
function calendarBuckets(engine: Engine, boundaries: EpochMs[]): RawBuilder<unknown> {
  const starts = boundaries.slice(0, -1);
  const ends = boundaries.slice(1);
  return engine === 'postgres'
    ? sql`unnest(${starts}::int8[], ${ends}::int8[]) with ordinality as buckets(lo, hi, i)`
    : sql`(select key + 1 as i, value ->> 0 as lo, value ->> 1 as hi
           from json_each(${JSON.stringify(starts.map((start, i) => [start, ends[i]]))})) as buckets`;
}

/** The first and last reading time of a selection, to span a series when no dates are given. */
export async function selectionTimeRange(
  db: Kysely<Database>,
  selection: ReadingSelection,
): Promise<{ first: EpochMs; last: EpochMs } | undefined> {
  const query = selectedReadings(db, selection).select((eb) => [
    eb.fn.min('data.created_at').as('first'),
    eb.fn.max('data.created_at').as('last'),
  ]);
  const row = await query.executeTakeFirst();
  if (row?.first === null || row?.first === undefined || row.last === null) return undefined;
  return { first: Number(row.first), last: Number(row.last) };
}
