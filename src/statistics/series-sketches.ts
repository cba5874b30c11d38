import { type Kysely, sql } from 'kysely';
import { selectionFilter } from '../data/selection.js';
import type { Database, EpochMs } from '../db/tables.js';
import { inRanges } from './device-ranges.js';
import { addReadings, addRollupRow, type RollupRow, type SummariesBy, summaryIn } from './rollup-values.js';
import type { Attribute } from './schemas.js';
import type { BucketRow, SeriesSelection } from './series-rows.js';
import type { Part } from './series-sources.js';
import { sketchQuantile } from './value-sketch.js';

/**
 * Readings an approximate series reads directly at most (the unfolded hours and the partial hours at
 * the range's ends); past that it answers the exact medians instead, as approxStatistics does.
 */
const MAX_DIRECT_READINGS = 200_000;

/**
 * `median=true&accuracy=approx`: each bucket's median from the DDSketches of its folded hours
 * (reading_hours), merged with the readings of the rest of the bucket (unfolded hours, the partial
 * hours at the range's ends), within RELATIVE_ACCURACY; count, min, max and the sum stay exact (the
 * parallel merge of rollup-values.ts). Undefined where the parts hold no whole hours (minute buckets,
 * a zone off UTC's hours, a short range) or too many readings to read directly: the caller answers
 * the exact medians then.
 */
export async function sketchSeries(
  db: Kysely<Database>,
  selection: SeriesSelection,
  boundaries: readonly EpochMs[],
  parts: readonly Part[],
): Promise<BucketRow[] | undefined> {
  const hours = parts.find((part) => part.source === 'hours');
  if (!hours) return undefined;
  const { attrs } = selection;
  const devices = { deviceId: selection.deviceId, ownerId: selection.ownerId };
  const rangeOf = ({ from, to }: Part) => selectionFilter({ ...devices, start: from, end: to - 1 }, 'r');

  // Everything but the folded hours, from the readings: the minute parts' device ranges and times.
  const direct = parts.filter((part) => part !== hours);
  const readings: Array<{ created_at: number } & Record<Attribute, number>> = [];
  for (const part of direct) {
    const only = part.only
      ? sql` and ${inRanges(sql.ref('r.device_id'), sql.ref('r.created_at'), part.only)}`
      : sql``;
    const limit = MAX_DIRECT_READINGS + 1 - readings.length;
    const { rows } = await sql<{ created_at: number } & Record<Attribute, number>>`
      select r.created_at, ${sql.join(attrs.map((attr) => sql.ref(`r.${attr}`)))}
      from data as r
      where ${rangeOf(part)}${only}
      limit ${limit}`.execute(db);
    readings.push(...rows);
    if (readings.length > MAX_DIRECT_READINGS) return undefined;
  }

  const summaries: SummariesBy<number> = new Map();
  const summaryOf = (bucket: number, attr: Attribute) => summaryIn(summaries, bucket, attr);

  const hourFilter = sql.join(
    [
      selectionFilter({ ...devices, start: hours.from, end: hours.to - 1 }, 'r', 'start'),
      ...(hours.except?.length
        ? [sql`not ${inRanges(sql.ref('r.device_id'), sql.ref('r.start'), hours.except)}`]
        : []),
    ],
    sql` and `,
  );
  const columns = attrs.flatMap((attr) =>
    ['min', 'max', 'sum', 'm2', 'sketch'].map((part) => sql.ref(`r.${attr}_${part}`)),
  );
  const { rows: hourRows } = await sql<RollupRow>`
    select r.device_id, r.start, r.readings, ${sql.join(columns)}
    from reading_hours as r
    where ${hourFilter}`.execute(db);
  for (const row of hourRows) {
    const bucket = bucketOf(boundaries, Number(row.start));
    for (const attr of attrs) addRollupRow(summaryOf(bucket, attr), row, attr);
  }

  const values = new Map<number, Record<Attribute, number[]>>();
  for (const reading of readings) {
    const bucket = bucketOf(boundaries, Number(reading.created_at));
    let byAttr = values.get(bucket);
    if (!byAttr) {
      byAttr = { x: [], y: [], z: [] };
      values.set(bucket, byAttr);
    }
    for (const attr of attrs) byAttr[attr].push(Number(reading[attr]));
  }
  for (const [bucket, byAttr] of values) {
    for (const attr of attrs) addReadings(summaryOf(bucket, attr), byAttr[attr]);
  }

  const rows: BucketRow[] = [];
  for (const [bucket, byAttr] of summaries) {
    const row: BucketRow = { bucket, count: 0, byAttr: {}, approximate: true };
    for (const attr of attrs) {
      const moments = byAttr[attr]?.moments;
      const sketch = byAttr[attr]?.sketch;
      if (!moments || !sketch) continue;
      row.count = moments.count;
      row.byAttr[attr] = {
        min: moments.min,
        max: moments.max,
        sum: moments.sum,
        median: sketchQuantile(sketch, 0.5, moments.min, moments.max),
      };
    }
    if (row.count > 0) rows.push(row);
  }
  return rows.sort((a, b) => a.bucket - b.bucket);
}

/** The index of the bucket holding `time`: the last boundary at or before it. */
function bucketOf(boundaries: readonly EpochMs[], time: EpochMs): number {
  let low = 0;
  let high = boundaries.length - 2;
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if ((boundaries[middle] as EpochMs) <= time) low = middle;
    else high = middle - 1;
  }
  return low;
}
