import { type Kysely, type RawBuilder, sql } from 'kysely';
import { type ReadingSelection, selectedReadings, selectionFilter } from '../data/selection.js';
import {
  type Engine,
  halvedPercentile,
  ieeeSum,
  percentile,
  percentileOverflowed,
  rowsAsTable,
} from '../db/dialect.js';
import type { Database, EpochMs } from '../db/tables.js';
import { inRanges } from './device-ranges.js';
import type { Attribute } from './schemas.js';
import type { BucketRow, BucketValues, SeriesSelection } from './series-rows.js';
import { sketchSeries } from './series-sketches.js';
import { type Part, seriesParts } from './series-sources.js';

/**
 * Aggregates per time bucket, exact for count, min and max (sums are added in another order).
 * seriesParts (series-sources.ts) splits the range into what the hourly rollups, the minute rollups
 * and the readings each answer; the parts are merged per bucket. Exact medians read every reading;
 * with `accuracy: 'approx'` they come from the hours' sketches (series-sketches.ts) where the buckets
 * are whole hours.
 * - Fixed-width buckets (minutes, hours) are numbered by arithmetic on the time, one index range scan.
 * - Calendar buckets (days and weeks, 23 or 25 hours on daylight-saving days) are joined as a list of
 *   [start, end) ranges computed by the caller, each an index range scan, with no SQL date functions
 *   on either engine. CROSS JOIN keeps the buckets as the outer loop on SQLite, whose planner
 *   otherwise may scan a device's rows and look up the bucket of each.
 */
export async function readingSeries(
  db: Kysely<Database>,
  engine: Engine,
  selection: SeriesSelection,
  boundaries: EpochMs[],
): Promise<BucketRow[]> {
  const first = boundaries[0] as EpochMs;
  const last = boundaries.at(-1) as EpochMs;
  // The selection's dates are inclusive and in whole milliseconds: [start, end + 1).
  const from = Math.max(first, selection.start ?? first);
  const to = Math.min(last, selection.end === undefined ? last : selection.end + 1);
  if (from >= to) return [];
  const everyReading: Part = { source: 'readings', from, to };
  if (selection.withMedian) {
    if (selection.accuracy === 'approx') {
      const parts = await seriesParts(db, engine, selection, boundaries, from, to);
      const sketched = await sketchSeries(db, selection, boundaries, parts);
      if (sketched) return sketched;
    }
    const rows = await bucketAggregates(db, engine, selection, boundaries, everyReading);
    await recomputeOverflowedMedians(db, engine, selection, boundaries, everyReading, rows);
    return rows;
  }
  const parts = await seriesParts(db, engine, selection, boundaries, from, to);
  const rows: BucketRow[] = [];
  for (const part of parts) rows.push(...(await bucketAggregates(db, engine, selection, boundaries, part)));
  return parts.length === 1 ? rows : mergeBuckets(rows);
}

/** A median between -1.5e308 and 1.5e308 overflows in the database: computed again from the halved values. */
async function recomputeOverflowedMedians(
  db: Kysely<Database>,
  engine: Engine,
  selection: SeriesSelection,
  boundaries: EpochMs[],
  part: Part,
  rows: BucketRow[],
): Promise<void> {
  const overflowed = (row: BucketRow) =>
    selection.attrs.filter((attr) => percentileOverflowed(row.count, row.byAttr[attr]?.median));
  const affected = rows.filter((row) => overflowed(row).length > 0);
  if (affected.length === 0) return;
  const halves = await bucketAggregates(db, engine, { ...selection, halvedMedians: true }, boundaries, part);
  for (const row of affected) {
    const half = halves.find((h) => h.bucket === row.bucket);
    for (const attr of overflowed(row)) {
      const values = row.byAttr[attr];
      if (values) values.median = 2 * Number(half?.byAttr[attr]?.median);
    }
  }
}

async function bucketAggregates(
  db: Kysely<Database>,
  engine: Engine,
  selection: SeriesSelection,
  boundaries: EpochMs[],
  { source, from, to, only, except }: Part,
): Promise<BucketRow[]> {
  const { table, time: timeColumn } = SOURCES[source];
  const time = sql.ref<number>(`r.${timeColumn}`);
  const rollup = source !== 'readings';
  // [from, to) in whole milliseconds, as the selection's inclusive bounds.
  const filter = sql.join(
    [
      selectionFilter(
        { deviceId: selection.deviceId, ownerId: selection.ownerId, start: from, end: to - 1 },
        'r',
        timeColumn,
      ),
      ...(only ? [inRanges(sql.ref('r.device_id'), time, only)] : []),
      ...(except?.length ? [sql`not ${inRanges(sql.ref('r.device_id'), time, except)}`] : []),
    ],
    sql` and `,
  );
  // Every requested value in the same pass; column names come from the x, y, z allow-list.
  const aggregates = sql.join([
    rollup ? sql`sum(r.readings) as count` : sql`count(*) as count`,
    ...selection.attrs.flatMap((attr) => {
      // A rollup has its own columns for each aggregate; a reading has the value itself.
      const column = (suffix: string) => sql.ref<number>(rollup ? `r.${attr}${suffix}` : `r.${attr}`);
      const sum = column('_sum');
      return [
        sql`min(${column('_min')}) as ${sql.ref(`${attr}_min`)}`,
        sql`max(${column('_max')}) as ${sql.ref(`${attr}_max`)}`,
        rollup
          ? // A rollup sum that is null (beyond the double range, on SQLite) leaves its bucket's sum unknown.
            sql`case when count(${sum}) = count(*) then ${ieeeSum(engine, sum)} end as ${sql.ref(`${attr}_sum`)}`
          : sql`${ieeeSum(engine, sum)} as ${sql.ref(`${attr}_sum`)}`,
        ...(selection.withMedian
          ? [
              sql`${(selection.halvedMedians ? halvedPercentile : percentile)(engine, sql.ref<number>(`r.${attr}`), 0.5)} as ${sql.ref(`${attr}_median`)}`,
            ]
          : []),
      ];
    }),
  ]);

  const first = boundaries[0] as EpochMs;
  const width = boundaries.length > 1 ? (boundaries[1] as EpochMs) - first : 0;
  const fixedWidth = boundaries.every((boundary, i) => boundary === first + i * width);
  const query = fixedWidth
    ? sql<BucketAggregateRow>`
        select cast((${time} - ${first}) / ${width} as integer) as bucket, ${aggregates}
        from ${sql.table(table)} as r
        where ${filter}
        group by 1
        order by 1`
    : sql<BucketAggregateRow>`
        select buckets.i - 1 as bucket, ${aggregates}
        from ${calendarBuckets(engine, boundaries)}
        cross join ${sql.table(table)} as r
        where ${time} >= buckets.lo and ${time} < buckets.hi and ${filter}
        group by buckets.i
        order by buckets.i`;
  const { rows } = await query.execute(db);
  return rows.map((row) => {
    const byAttr: BucketRow['byAttr'] = {};
    for (const attr of selection.attrs) {
      byAttr[attr] = {
        min: row[`${attr}_min`] ?? null,
        max: row[`${attr}_max`] ?? null,
        sum: row[`${attr}_sum`] ?? null,
        ...(selection.withMedian ? { median: row[`${attr}_median`] ?? null } : {}),
      };
    }
    return { bucket: Number(row.bucket), count: Number(row.count), byAttr };
  });
}

/** Each source's table and the column of its time (a rollup's: the start of its minute or hour). */
const SOURCES = {
  readings: { table: 'data', time: 'created_at' },
  minutes: { table: 'reading_minutes', time: 'minute' },
  hours: { table: 'reading_hours', time: 'start' },
} as const;

/** One row of a bucket query: its index and count, then `x_min`, `x_max`, `x_sum` (`x_median`) per value. */
type BucketAggregateRow = { bucket: number; count: number } & Partial<
  Record<`${Attribute}_${'min' | 'max' | 'sum' | 'median'}`, number | null>
>;

/** Rows of the same bucket from different parts of the range, combined, in bucket order. */
function mergeBuckets(rows: BucketRow[]): BucketRow[] {
  const merged = new Map<number, BucketRow>();
  for (const row of rows) {
    const seen = merged.get(row.bucket);
    if (!seen) {
      merged.set(row.bucket, { ...row, byAttr: { ...row.byAttr } });
      continue;
    }
    seen.count += row.count;
    for (const [attr, values] of Object.entries(row.byAttr) as [Attribute, BucketValues][]) {
      const kept = seen.byAttr[attr];
      seen.byAttr[attr] = kept
        ? {
            min: either(kept.min, values.min, Math.min),
            max: either(kept.max, values.max, Math.max),
            sum: kept.sum === null || values.sum === null ? null : kept.sum + values.sum,
          }
        : values;
    }
  }
  return [...merged.values()].sort((a, b) => a.bucket - b.bucket);
}

/** The two values combined by `pick`, or the one that is not null. */
function either(a: number | null, b: number | null, pick: (a: number, b: number) => number): number | null {
  return a === null ? b : b === null ? a : pick(a, b);
}

/** The [start, end) ranges of calendar buckets as a table `buckets(i, lo, hi)`, i counting from 1. */
function calendarBuckets(engine: Engine, boundaries: EpochMs[]): RawBuilder<unknown> {
  const buckets = boundaries.slice(0, -1).map((start, i) => [i + 1, start, boundaries[i + 1] as EpochMs]);
  const columns = [
    ['i', 'int'],
    ['lo', 'int8'],
    ['hi', 'int8'],
  ] as const;
  return sql`${rowsAsTable(engine, columns, buckets)} as buckets`;
}

/**
 * The first or last reading time of a selection, to span a series when no dates are given. One
 * min() or max() alone is a single index lookup on both engines; asked together, SQLite scans.
 */
export async function selectedReadingTime(
  db: Kysely<Database>,
  selection: ReadingSelection,
  which: 'first' | 'last',
): Promise<EpochMs | undefined> {
  const row = await selectedReadings(db, selection)
    .select((eb) =>
      (which === 'first' ? eb.fn.min('data.created_at') : eb.fn.max('data.created_at')).as('time'),
    )
    .executeTakeFirst();
  return row?.time === null || row?.time === undefined ? undefined : Number(row.time);
}
