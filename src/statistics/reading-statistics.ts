import { type RawBuilder, sql } from 'kysely';
import { type ReadingSelection, selectionFilter } from '../data/selection.js';
import { percentilesOf } from '../db/collected-values.js';
import {
  collectedValues,
  isNumericOverflow,
  percentileOverflowed,
  sortedPercentiles,
} from '../db/dialect.js';
import type { Reader } from '../db/reader.js';
import type { Attribute, Statistics } from './schemas.js';

export interface StatisticsRequest extends ReadingSelection {
  attrs: Attribute[];
  /** Percentiles to compute, from 0 to 100 (the median is always computed). */
  percentiles: number[];
  groupByDevice: boolean;
}

/** The statistics of each requested value, for the whole selection or for each device in it. */
export interface StatisticsGroup {
  deviceId: number | null;
  byAttr: Partial<Record<Attribute, Statistics>>;
}

/** What the database answers for one value of one group. */
interface ValueAggregates {
  count: number;
  min: number | null;
  max: number | null;
  sum: number | null;
  /** The sum of squared deviations from the mean (the variance's second pass). */
  squares: number | null;
  /** The median, then each requested percentile. */
  percentiles: Array<number | null>;
}

interface GroupAggregates {
  deviceId: number | null;
  byAttr: Partial<Record<Attribute, ValueAggregates>>;
}

type Measure = 'count' | 'min' | 'max' | 'sum' | 'variance';

/** One row of the aggregate query: `x_count`, `x_min`, ..., `x_percentiles` for each value asked. */
type AggregateRow = { device_id?: number } & Partial<Record<`${Attribute}_${Measure}`, number | null>> &
  Partial<Record<`${Attribute}_percentiles`, number[] | null>>;

/** Which sums a query computes for a value: with the squared deviations, the sum alone, or none. */
type Sums = 'full' | 'sum';

/**
 * Every statistic of every requested value: count, min, max, sum, the squared deviations from the
 * mean (the numerically stable two-pass variance), and the median and percentiles from one copy of
 * each value, about 8 bytes per selected reading per value asked. SQLite collects each value in one
 * pass and computes the rest from that copy (collectOnSqlite); PostgreSQL aggregates in one pass too.
 */
export async function readingStatistics(
  reader: Reader,
  request: StatisticsRequest,
): Promise<StatisticsGroup[]> {
  const fractions = [0.5, ...request.percentiles.map((p) => p / 100)];
  const groups =
    reader.engine === 'sqlite'
      ? await collectOnSqlite(reader, request, fractions)
      : await aggregateOnPostgres(reader, request, fractions);
  const answers = groups.map((group) => toGroup(group, request));
  // Without a group, an empty selection still has one answer (count 0); with groups, no group at all.
  return request.groupByDevice || answers.length > 0
    ? answers
    : [toGroup({ deviceId: null, byAttr: {} }, request)];
}

type PostgresReader = Reader & { engine: 'postgres' };
type SqliteReader = Reader & { engine: 'sqlite' };

/**
 * SQLite: one pass over the selection, one collect_values per value (see db/collected-values.ts),
 * whose array gives every statistic; each is sized from the selection's count, which a first query
 * reads from an index (per device when grouped, devices as the outer loop: grouping the readings
 * instead made SQLite walk the whole (device_id, created_at) index for a window of one hour).
 * SQLite's sums never raise (they reach ±Infinity), and the interpolation never overflows.
 */
async function collectOnSqlite(
  reader: SqliteReader,
  request: StatisticsRequest,
  fractions: number[],
): Promise<GroupAggregates[]> {
  const { attrs, groupByDevice } = request;
  const filter = selectionFilter(request);
  const expected = sql.ref<number>('counts.readings');
  const columns: RawBuilder<unknown>[] = groupByDevice ? [sql`data.device_id as device_id`] : [];
  // Column names come from the schema's allow-list (x, y, z); values are always bound parameters.
  for (const attr of attrs) {
    const values = collectedValues(sql.ref<number>(`data.${attr}`), expected);
    columns.push(sql`${values} as ${sql.ref(`${attr}_values`)}`);
  }
  const counts = groupByDevice
    ? sql`(select devices.id as device_id, count(*) as readings from devices cross join data
           where data.device_id = devices.id and ${filter} group by devices.id) as counts`
    : sql`(select count(*) as readings from data where ${filter}) as counts`;
  const { rows } = await sql<{ device_id?: number } & Partial<Record<`${Attribute}_values`, number>>>`
    select ${sql.join(columns)}
    from data ${groupByDevice ? sql`join ${counts} on counts.device_id = data.device_id` : sql`cross join ${counts}`}
    where ${filter}
    ${groupByDevice ? sql`group by data.device_id order by data.device_id` : sql``}`.execute(reader.db);
  return rows.map((row) => ({
    deviceId: row.device_id ?? null,
    byAttr: Object.fromEntries(
      attrs.map((attr) => {
        const handle = row[`${attr}_values`];
        if (handle === undefined) return [attr, undefined];
        const { values, ...moments } = reader.collector.take(handle);
        return [attr, { ...moments, percentiles: percentilesOf(values, fractions) }];
      }),
    ),
  }));
}

/**
 * PostgreSQL: one pass (aggregate), with the sums computed again one by one when one overflows,
 * and the percentiles whose interpolation overflowed computed again from the halved values.
 */
async function aggregateOnPostgres(
  reader: PostgresReader,
  request: StatisticsRequest,
  fractions: number[],
): Promise<GroupAggregates[]> {
  let groups: GroupAggregates[];
  try {
    groups = await mayOverflow(reader, () =>
      aggregate(reader, request, fractions, allSums(request.attrs, 'full')),
    );
  } catch (error) {
    if (!isNumericOverflow(error)) throw error;
    groups = await aggregateSumsOneByOne(reader, request, fractions);
  }
  await recomputeOverflowedPercentiles(reader, request, fractions, groups);
  return groups;
}

/**
 * A query whose sums may overflow: PostgreSQL raises, and then refuses every later statement of the
 * transaction heavy queries run in, so it runs under a savepoint that the failure rolls back to.
 */
async function mayOverflow<T>(reader: PostgresReader, query: () => Promise<T>): Promise<T> {
  await sql`savepoint sums`.execute(reader.db);
  try {
    const answer = await query();
    await sql`release savepoint sums`.execute(reader.db);
    return answer;
  } catch (error) {
    await sql`rollback to savepoint sums`.execute(reader.db);
    throw error;
  }
}

const allSums = (attrs: Attribute[], sums: Sums) =>
  Object.fromEntries(attrs.map((attr) => [attr, sums])) as Partial<Record<Attribute, Sums>>;

/**
 * A sum beyond the double range: PostgreSQL raises where SQLite answers Infinity. Everything but
 * the sums is answered first, then each value's sums on their own (per device when grouped), so
 * one overflow blanks only the sums it concerns: another value or device keeps its own.
 */
async function aggregateSumsOneByOne(
  reader: PostgresReader,
  request: StatisticsRequest,
  fractions: number[],
): Promise<GroupAggregates[]> {
  const groups = await aggregate(reader, request, fractions, {});
  for (const attr of request.attrs) {
    for (const group of groups) {
      const deviceId = request.groupByDevice ? (group.deviceId ?? undefined) : request.deviceId;
      const alone = { ...request, attrs: [attr], groupByDevice: false, deviceId };
      const values = group.byAttr[attr];
      for (const sums of ['full', 'sum'] as const) {
        try {
          const [answer] = await mayOverflow(reader, () => aggregate(reader, alone, [], { [attr]: sums }));
          if (values) {
            values.sum = answer?.byAttr[attr]?.sum ?? null;
            values.squares = answer?.byAttr[attr]?.squares ?? null;
          }
          break;
        } catch (error) {
          if (!isNumericOverflow(error)) throw error;
        }
      }
    }
  }
  return groups;
}

/**
 * PostgreSQL interpolates as a + (b - a) * t, and b - a overflows between values of opposite signs
 * beyond half the double range (a median of -1.5e308 and 1.5e308) where the percentile itself does
 * not: such percentiles, and only those, are computed again from the halved values (exact) and
 * doubled. SQLite's collected values are interpolated without the overflow (percentileOfRanked).
 */
async function recomputeOverflowedPercentiles(
  reader: PostgresReader,
  request: StatisticsRequest,
  fractions: number[],
  groups: GroupAggregates[],
): Promise<void> {
  const overflowed = (values: ValueAggregates | undefined) =>
    values ? values.percentiles.some((p) => percentileOverflowed(values.count, p)) : false;
  const affected = groups.filter((group) => request.attrs.some((attr) => overflowed(group.byAttr[attr])));
  if (affected.length === 0) return;
  const halves = await aggregate(reader, request, fractions, {}, true);
  for (const group of affected) {
    const half = halves.find((h) => h.deviceId === group.deviceId);
    for (const attr of request.attrs) {
      const values = group.byAttr[attr];
      if (!values || !overflowed(values)) continue;
      values.percentiles = values.percentiles.map((p, i) => {
        if (!percentileOverflowed(values.count, p)) return p;
        const halved = half?.byAttr[attr]?.percentiles[i];
        return halved === null || halved === undefined ? null : 2 * halved;
      });
    }
  }
}

/**
 * The aggregates of the selection (per device when grouped), in one pass. The squared deviations come
 * from var_pop, whose float8 form (PostgreSQL 12 and later) is the Youngs-Cramer algorithm: as stable
 * as squaring the deviations from a mean computed first, without a second pass over the readings. It
 * raises on an overflow where avg would (both sum and square the values in the same state).
 */
async function aggregate(
  reader: PostgresReader,
  request: StatisticsRequest,
  fractions: number[],
  sumsOf: Partial<Record<Attribute, Sums>>,
  halvedValues = false,
): Promise<GroupAggregates[]> {
  const { db } = reader;
  const { attrs, groupByDevice } = request;
  const column = (name: string) => sql.ref(name);
  const columns: RawBuilder<unknown>[] = groupByDevice ? [sql`data.device_id as device_id`] : [];
  // Column names come from the schema's allow-list (x, y, z); values are always bound parameters.
  for (const attr of attrs) {
    const value = sql.ref<number>(`data.${attr}`);
    columns.push(sql`count(${value}) as ${column(`${attr}_count`)}`);
    columns.push(sql`min(${value}) as ${column(`${attr}_min`)}`);
    columns.push(sql`max(${value}) as ${column(`${attr}_max`)}`);
    if (fractions.length > 0) {
      const sorted = halvedValues ? sql<number>`(${value} * 0.5)` : value;
      columns.push(sql`${sortedPercentiles(sorted, fractions)} as ${column(`${attr}_percentiles`)}`);
    }
    const sums = sumsOf[attr];
    if (sums) columns.push(sql`sum(${value}) as ${column(`${attr}_sum`)}`);
    if (sums === 'full') columns.push(sql`var_pop(${value}) as ${column(`${attr}_variance`)}`);
  }
  const { rows } = await sql<AggregateRow>`
    select ${sql.join(columns)}
    from data
    where ${selectionFilter(request)}
    ${groupByDevice ? sql`group by data.device_id order by data.device_id` : sql``}`.execute(db);
  return rows.map((row) => ({
    deviceId: row.device_id ?? null,
    byAttr: Object.fromEntries(
      attrs.map((attr) => {
        const count = Number(row[`${attr}_count`] ?? 0);
        const variance = row[`${attr}_variance`];
        const aggregates: ValueAggregates = {
          count,
          min: row[`${attr}_min`] ?? null,
          max: row[`${attr}_max`] ?? null,
          sum: row[`${attr}_sum`] ?? null,
          squares: variance === null || variance === undefined ? null : variance * count,
          percentiles: fractions.map((_, i) => row[`${attr}_percentiles`]?.[i] ?? null),
        };
        return [attr, aggregates];
      }),
    ),
  }));
}

function toGroup({ deviceId, byAttr }: GroupAggregates, { attrs, percentiles }: StatisticsRequest) {
  const answer: StatisticsGroup = { deviceId, byAttr: {} };
  for (const attr of attrs) {
    const values = byAttr[attr];
    const count = values?.count ?? 0;
    const sum = count === 0 ? 0 : finiteOrNull(values?.sum);
    const squares = finiteOrNull(values?.squares);
    const variancePopulation = count > 0 && squares !== null ? squares / count : null;
    const varianceSample = count > 1 && squares !== null ? squares / (count - 1) : null;
    const [median, ...requested] = values?.percentiles ?? [];
    answer.byAttr[attr] = {
      count,
      min: finiteOrNull(values?.min),
      max: finiteOrNull(values?.max),
      sum,
      mean: count === 0 || sum === null ? null : finiteOrNull(sum / count),
      median: finiteOrNull(median),
      variance: varianceSample,
      stddev: varianceSample === null ? null : Math.sqrt(varianceSample),
      variance_population: variancePopulation,
      stddev_population: variancePopulation === null ? null : Math.sqrt(variancePopulation),
      ...(percentiles.length > 0
        ? {
            percentiles: Object.fromEntries(
              percentiles.map((p, i) => [String(p), finiteOrNull(requested[i])]),
            ),
          }
        : {}),
    };
  }
  return answer;
}

/** JSON has no Infinity: a sum that overflowed is reported as null rather than as broken JSON. */
function finiteOrNull(value: number | null | undefined): number | null {
  if (value === null || value === undefined) return null;
  const number = Number(value);
  return Number.isFinite(number) ? number : null;
}
