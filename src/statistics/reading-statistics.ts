import { type Expression, type Kysely, type RawBuilder, sql } from 'kysely';
import {
  type Engine,
  halvedPercentile,
  isNumericOverflow,
  percentile,
  percentileOverflowed,
  square,
} from '../db/dialect.js';
import type { Database } from '../db/tables.js';
import type { Attribute, Statistics } from './schemas.js';
import { type ReadingSelection, selectedReadings } from './selection.js';

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

/**
 * Every statistic of every requested value in one query over the selection, done by the database:
 * count, min, max, sum, median and percentiles in one scan, and the squared deviations from the
 * mean (for the variance) in a second one, the numerically stable two-pass way.
 */
export async function readingStatistics(
  db: Kysely<Database>,
  engine: Engine,
  request: StatisticsRequest,
): Promise<StatisticsGroup[]> {
  let rows: Row[];
  try {
    rows = await aggregate(
      db,
      engine,
      request,
      Object.fromEntries(request.attrs.map((attr) => [attr, 'full'])),
    );
  } catch (error) {
    if (!isNumericOverflow(error)) throw error;
    rows = await aggregateSumsOneByOne(db, engine, request);
  }
  await recomputeOverflowedPercentiles(db, engine, request, rows);
  const groups = rows.map((row) => toGroup(row, request));
  // Without a group, an empty selection still has one answer (count 0); with groups, no group at all.
  return request.groupByDevice || groups.length > 0 ? groups : [toGroup({}, request)];
}

type Row = Record<string, unknown>;
/** Which sums a query computes for a value: with the squared deviations, the sum alone, or none. */
type Sums = 'full' | 'sum';

/**
 * A sum beyond the double range: PostgreSQL raises where SQLite answers Infinity. Everything but
 * the sums is answered first, then each value's sums on their own (per device when grouped), so
 * one overflow blanks only the sums it concerns: another value or device keeps its own.
 */
async function aggregateSumsOneByOne(db: Kysely<Database>, engine: Engine, request: StatisticsRequest) {
  const rows = await aggregate(db, engine, request, {});
  for (const attr of request.attrs) {
    for (const row of rows) {
      const deviceId = request.groupByDevice ? Number(row.device_id) : request.deviceId;
      const alone = { ...request, attrs: [attr], percentiles: [], groupByDevice: false, deviceId };
      for (const sums of ['full', 'sum'] as const) {
        try {
          const [sumsRow = {}] = await aggregate(db, engine, alone, { [attr]: sums });
          row[`${attr}_sum`] = sumsRow[`${attr}_sum`];
          row[`${attr}_squares`] = sumsRow[`${attr}_squares`];
          break;
        } catch (error) {
          if (!isNumericOverflow(error)) throw error;
        }
      }
    }
  }
  return rows;
}

/**
 * A percentile between values of opposite signs beyond half the double range (a median of -1.5e308
 * and 1.5e308) overflows in the database's interpolation: such percentiles, and only those, are
 * computed again from the halved values (see halvedPercentile) and doubled.
 */
async function recomputeOverflowedPercentiles(
  db: Kysely<Database>,
  engine: Engine,
  request: StatisticsRequest,
  rows: Row[],
): Promise<void> {
  const columns = request.attrs.flatMap((attr) =>
    [`${attr}_median`, ...request.percentiles.map((_, i) => `${attr}_p${i}`)].map((name) => ({ attr, name })),
  );
  const overflowed = (row: Row) =>
    columns.filter(({ attr, name }) => percentileOverflowed(Number(row[`${attr}_count`] ?? 0), row[name]));
  if (!rows.some((row) => overflowed(row).length > 0)) return;
  const halves = await aggregate(db, engine, request, {}, true);
  for (const row of rows) {
    const half = request.groupByDevice ? halves.find((h) => h.device_id === row.device_id) : halves[0];
    for (const { name } of overflowed(row)) row[name] = 2 * Number(half?.[name]);
  }
}

async function aggregate(
  db: Kysely<Database>,
  engine: Engine,
  request: StatisticsRequest,
  sumsOf: Partial<Record<Attribute, Sums>>,
  halvedPercentiles = false,
): Promise<Row[]> {
  const { attrs, percentiles, groupByDevice } = request;
  // Column names come from the schema's allow-list (x, y, z); values are always bound parameters.
  const column = (table: 'selected' | 'means', name: string) => sql.ref<number>(`${table}.${name}`);
  const columns: Record<string, RawBuilder<unknown>> = {};
  for (const attr of attrs) {
    const value = column('selected', attr);
    columns[`${attr}_count`] = sql`count(${value})`;
    columns[`${attr}_min`] = sql`min(${value})`;
    columns[`${attr}_max`] = sql`max(${value})`;
    const percentileOf = halvedPercentiles ? halvedPercentile : percentile;
    columns[`${attr}_median`] = percentileOf(engine, value, 0.5);
    percentiles.forEach((p, i) => {
      columns[`${attr}_p${i}`] = percentileOf(engine, value, p / 100);
    });
    const sums = sumsOf[attr];
    if (sums) columns[`${attr}_sum`] = sql`sum(${value})`;
    if (sums === 'full') {
      columns[`${attr}_squares`] =
        sql`sum(${square(engine, sql`(${value} - ${column('means', `${attr}_mean`)})`)})`;
    }
  }

  const rows = await db
    .with('selected', () =>
      selectedReadings(db, request).select(['data.device_id', 'data.x', 'data.y', 'data.z']),
    )
    .with('means', (qb) =>
      qb
        .selectFrom('selected')
        .select((eb) => [
          ...(groupByDevice ? [eb.ref('selected.device_id').as('device_id')] : []),
          ...attrs.map((attr) =>
            eb.fn.avg(column('selected', attr) as Expression<number>).as(`${attr}_mean`),
          ),
        ])
        .$if(groupByDevice, (q) => q.groupBy('selected.device_id')),
    )
    .selectFrom('selected')
    .$if(groupByDevice, (q) => q.innerJoin('means', 'means.device_id', 'selected.device_id'))
    .$if(!groupByDevice, (q) => q.crossJoin('means'))
    .select(() => [
      ...(groupByDevice ? [sql<number>`selected.device_id`.as('device_id')] : []),
      ...Object.entries(columns).map(([alias, expression]) => expression.as(alias)),
    ])
    .$if(groupByDevice, (q) => q.groupBy('selected.device_id').orderBy('selected.device_id'))
    .execute();

  return rows as Row[];
}

function toGroup(row: Record<string, unknown>, { attrs, percentiles }: StatisticsRequest): StatisticsGroup {
  const byAttr: StatisticsGroup['byAttr'] = {};
  for (const attr of attrs) {
    const count = Number(row[`${attr}_count`] ?? 0);
    const sum = count === 0 ? 0 : finiteOrNull(row[`${attr}_sum`]);
    const squares = finiteOrNull(row[`${attr}_squares`]);
    const variancePopulation = count > 0 && squares !== null ? squares / count : null;
    const varianceSample = count > 1 && squares !== null ? squares / (count - 1) : null;
    byAttr[attr] = {
      count,
      min: finiteOrNull(row[`${attr}_min`]),
      max: finiteOrNull(row[`${attr}_max`]),
      sum,
      mean: count === 0 || sum === null ? null : finiteOrNull(sum / count),
      median: finiteOrNull(row[`${attr}_median`]),
      variance: varianceSample,
      stddev: varianceSample === null ? null : Math.sqrt(varianceSample),
      variance_population: variancePopulation,
      stddev_population: variancePopulation === null ? null : Math.sqrt(variancePopulation),
      ...(percentiles.length > 0
        ? {
            percentiles: Object.fromEntries(
              percentiles.map((p, i) => [String(p), finiteOrNull(row[`${attr}_p${i}`])]),
            ),
          }
        : {}),
    };
  }
  return { deviceId: row.device_id === undefined ? null : Number(row.device_id), byAttr };
}

/** JSON has no Infinity: a sum that overflowed is reported as null rather than as broken JSON. */
function finiteOrNull(value: unknown): number | null {
  if (value === null || value === undefined) return null;
  const number = Number(value);
  return Number.isFinite(number) ? number : null;
}
