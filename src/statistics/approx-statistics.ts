import { sql } from 'kysely';
import { throughIndex } from '../db/dialect.js';
import type { Reader } from '../db/reader.js';
import { type DeviceRange, inRanges, rangeGroups } from './device-ranges.js';
import { readingStatistics, type StatisticsGroup, type StatisticsRequest } from './reading-statistics.js';
import { decompose, HOUR_MS, type Interval, type Pieces, type RollupTable } from './rollup-periods.js';
import {
  addReadings,
  addRollupRow,
  type RollupRow,
  type SummariesBy,
  summaryIn,
  type ValueSummary,
} from './rollup-values.js';
import type { Attribute, Statistics } from './schemas.js';
import { RELATIVE_ACCURACY, sketchQuantile } from './value-sketch.js';

/**
 * Readings not yet folded into the rollups that an approximate answer reads directly at most; past
 * that (a backlog after an upgrade or a large import) it answers the exact statistics instead.
 */
const MAX_UNFOLDED_READINGS = 200_000;

/** A time no reading reaches (about year 287,000): an open end of a range, as a bound parameter. */
const FAR = 9e15;

/**
 * `accuracy=approx`: count, min, max, sum, mean and variance exact, median and percentiles from
 * DDSketches (value-sketch.ts), each within RELATIVE_ACCURACY. The range is read as whole months,
 * days and hours from the rollups (rollup-periods.ts decompose), where they are folded, and the rest
 * (the partial hours at its edges, and the hours with unfolded minutes) from the readings; the parts
 * are merged in JavaScript (parallel variance, sketch bins), here in a heavy-query worker or, on
 * PostgreSQL, in the process. Each level is one query of index range scans (device-ranges.ts).
 */
export async function approxStatistics(
  reader: Reader,
  request: StatisticsRequest,
): Promise<StatisticsGroup[]> {
  const { db, engine } = reader;
  const from = request.start ?? Number.NEGATIVE_INFINITY;
  const to = request.end === undefined ? Number.POSITIVE_INFINITY : request.end + 1;
  const deviceFilter = sql.join(
    [
      sql`true`,
      ...(request.deviceId !== undefined ? [sql`devices.id = ${request.deviceId}`] : []),
      ...(request.ownerId !== undefined ? [sql`devices.user_id = ${request.ownerId}`] : []),
    ],
    sql` and `,
  );
  // The devices and their hours with unfolded minutes in one statement: rows without an hour name a device.
  const { rows: found } = await sql<{ device_id: number; hour: number | null; readings: number | null }>`
    select id as device_id, null as hour, null as readings from devices where ${deviceFilter}
    union all
    select m.device_id, m.minute - ((m.minute % ${HOUR_MS}) + ${HOUR_MS}) % ${HOUR_MS} as hour, sum(m.readings) as readings
    from devices cross join ${throughIndex(engine, 'reading_minutes', 'm', 'reading_minutes_unfolded')}
    where ${deviceFilter} and m.device_id = devices.id and m.folded = 0
      and m.minute >= ${Number.isFinite(from) ? from - HOUR_MS : -FAR} and m.minute < ${Number.isFinite(to) ? to : FAR}
    group by 1, 2`.execute(db);
  const devices = found
    .filter((row) => row.hour === null)
    .map((row) => row.device_id)
    .sort((a, b) => a - b);
  const unfolded = { rows: found.filter((row) => row.hour !== null) };
  if (unfolded.rows.reduce((sum, row) => sum + Number(row.readings), 0) > MAX_UNFOLDED_READINGS) {
    return readingStatistics(reader, request);
  }
  const dirty = new Map<number, Set<number>>();
  for (const row of unfolded.rows) {
    const hours = dirty.get(row.device_id) ?? new Set<number>();
    hours.add(Number(row.hour));
    dirty.set(row.device_id, hours);
  }
  const clean = decompose(from, to, new Set());
  const pieces = devices.map((id) => {
    const hours = dirty.get(id);
    return [id, hours ? decompose(from, to, hours) : clean] as const;
  });
  const groups: SummariesBy<number | null> = new Map();
  const summaryOf = (deviceId: number, attr: Attribute) =>
    summaryIn(groups, request.groupByDevice ? deviceId : null, attr);
  const columns = sql.join(request.attrs.flatMap((attr) => rollupColumns(attr)));
  for (const statement of rollupStatements(pieces)) {
    // Every level in one statement (a round trip each costs more than reading the rows on PostgreSQL).
    const { rows } = await sql<RollupRow>`${sql.join(
      statement.map(
        ({ table, ranges }) => sql`select device_id, readings, ${columns}
          from ${sql.table(table)}
          where ${inRanges(sql.ref('device_id'), sql.ref('start'), ranges)}`,
      ),
      sql` union all `,
    )}`.execute(db);
    for (const row of rows) {
      for (const attr of request.attrs) addRollupRow(summaryOf(row.device_id, attr), row, attr);
    }
  }
  const ranges = rangesOf(pieces, 'readings');
  if (ranges.length > 0) {
    const rows: Array<{ device_id: number } & Record<Attribute, number>> = [];
    const values = sql.join(request.attrs.map((attr) => sql.ref(attr)));
    // One select per range, joined by union all (at most 200, within SQLite's 500 of a compound
    // select): PostgreSQL prunes each to the time partitions of its own range, where a list of ORs
    // planned a bitmap scan of every range in every partition (the readings are partitioned by day).
    for (const group of rangeGroups(ranges)) {
      const read = await sql<{ device_id: number } & Record<Attribute, number>>`${sql.join(
        group.map(
          ([deviceId, start, end]) => sql`select device_id, ${values} from data
            where device_id = ${deviceId} and created_at >= ${start} and created_at < ${end}`,
        ),
        sql` union all `,
      )}`.execute(db);
      rows.push(...read.rows);
    }
    const byDevice = new Map<number, Record<Attribute, number[]>>();
    for (const row of rows) {
      let values = byDevice.get(row.device_id);
      if (!values) {
        values = { x: [], y: [], z: [] };
        byDevice.set(row.device_id, values);
      }
      for (const attr of request.attrs) values[attr].push(Number(row[attr]));
    }
    for (const [deviceId, values] of byDevice) {
      for (const attr of request.attrs) addReadings(summaryOf(deviceId, attr), values[attr]);
    }
  }
  const answers = [...groups.entries()]
    .filter(([, byAttr]) => Object.values(byAttr).some((summary) => summary.moments))
    .sort(([a], [b]) => (a ?? 0) - (b ?? 0))
    .map(([deviceId, byAttr]) => toGroup(deviceId, byAttr, request));
  return request.groupByDevice || answers.length > 0 ? answers : [toGroup(null, {}, request)];
}

/** Each device's intervals of one level, as rows (device_id, from_time, to_time) with open ends made far. */
function rangesOf(
  pieces: ReadonlyArray<readonly [number, Pieces]>,
  level: RollupTable | 'readings',
): DeviceRange[] {
  const bound = (t: number) => Math.max(-FAR, Math.min(FAR, t));
  return pieces.flatMap(([deviceId, of]) =>
    of[level].map(([start, end]: Interval): DeviceRange => [deviceId, bound(start), bound(end)]),
  );
}

/**
 * The ranges of the three rollup tables as statements of one or more `select`s (joined by `union all`),
 * each `select` of at most 200 ranges (SQLite parses a list of ORs 1,000 deep at most) and each
 * statement of at most 600 (three parameters each: well within SQLite's 32,766 variables).
 */
function rollupStatements(
  pieces: ReadonlyArray<readonly [number, Pieces]>,
): Array<Array<{ table: RollupTable; ranges: DeviceRange[] }>> {
  const statements: Array<Array<{ table: RollupTable; ranges: DeviceRange[] }>> = [];
  let current: Array<{ table: RollupTable; ranges: DeviceRange[] }> = [];
  let size = 0;
  for (const table of ['reading_months', 'reading_days', 'reading_hours'] as const) {
    for (const ranges of rangeGroups(rangesOf(pieces, table))) {
      if (size + ranges.length > MAX_STATEMENT_RANGES && current.length > 0) {
        statements.push(current);
        current = [];
        size = 0;
      }
      current.push({ table, ranges });
      size += ranges.length;
    }
  }
  if (current.length > 0) statements.push(current);
  return statements;
}

const MAX_STATEMENT_RANGES = 600;

function rollupColumns(attr: Attribute) {
  return ['min', 'max', 'sum', 'm2', 'sketch'].map((part) => sql.ref(`${attr}_${part}`));
}

function toGroup(
  deviceId: number | null,
  byAttr: Partial<Record<Attribute, ValueSummary>>,
  { attrs, percentiles }: StatisticsRequest,
): StatisticsGroup {
  const answer: StatisticsGroup = { deviceId, byAttr: {} };
  for (const attr of attrs) {
    const summary = byAttr[attr];
    const moments = summary?.moments;
    const count = moments?.count ?? 0;
    const sum = count === 0 ? 0 : finiteOrNull(moments?.sum);
    const m2 = finiteOrNull(moments?.m2);
    const variancePopulation = count > 0 && m2 !== null ? m2 / count : null;
    const varianceSample = count > 1 && m2 !== null ? m2 / (count - 1) : null;
    const quantile = (fraction: number) =>
      summary && moments
        ? finiteOrNull(sketchQuantile(summary.sketch, fraction, moments.min, moments.max))
        : null;
    const statistics: Statistics = {
      count,
      min: finiteOrNull(moments?.min),
      max: finiteOrNull(moments?.max),
      sum,
      mean: count === 0 || sum === null ? null : finiteOrNull(sum / count),
      median: quantile(0.5),
      variance: varianceSample,
      stddev: varianceSample === null ? null : Math.sqrt(varianceSample),
      variance_population: variancePopulation,
      stddev_population: variancePopulation === null ? null : Math.sqrt(variancePopulation),
      ...(percentiles.length > 0
        ? { percentiles: Object.fromEntries(percentiles.map((p) => [String(p), quantile(p / 100)])) }
        : {}),
      approximate: true,
      relative_error: RELATIVE_ACCURACY,
    };
    answer.byAttr[attr] = statistics;
  }
  return answer;
}

function finiteOrNull(value: number | null | undefined): number | null {
  if (value === null || value === undefined) return null;
  return Number.isFinite(value) ? value : null;
}
