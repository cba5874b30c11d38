import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from '@sinclair/typebox';
import type { Kysely } from 'kysely';
import { ReadingFilters } from '../data/schemas.js';
import type { Engine } from '../db/dialect.js';
import type { Database } from '../db/tables.js';
import { findDevice } from '../devices/queries.js';
import { parseDateRange } from '../http/dates.js';
import { invalidQuery, notFound } from '../http/errors.js';
import { errorResponses, Id } from '../http/schemas.js';
import { findUserById } from '../users/queries.js';
import { type BucketRow, readingSeries, selectionTimeRange } from './reading-series.js';
import { ATTRIBUTES, type Attribute } from './schemas.js';
import { bucketBoundaries, formatInZone, isTimeZone, parseBucket } from './time-buckets.js';

export interface SeriesRoutesOptions {
  db: Kysely<Database>;
  engine: Engine;
  maxSeriesBuckets: number;
}

const Nullable = Type.Union([Type.Number(), Type.Null()]);

const SeriesQuery = Type.Object({
  ...ReadingFilters,
  user_id: Type.Optional(Id("Only this user's devices")),
  attr: Type.Unsafe<Attribute>({
    type: 'string',
    enum: [...ATTRIBUTES],
    default: 'x',
    description: 'The value to chart',
  }),
  bucket: Type.String({
    default: '1h',
    pattern: '^\\d{1,4}[mhdw]$',
    description: 'Bucket width: N followed by m (minutes), h (hours), d (days) or w (weeks, from Monday)',
    examples: ['1m', '5m', '15m', '1h', '1d', '1w'],
  }),
  tz: Type.String({
    default: 'UTC',
    maxLength: 64,
    description: 'IANA time zone the buckets follow; a daylight-saving day has 23 or 25 hours',
    examples: ['UTC', 'Europe/Berlin', 'America/New_York'],
  }),
  fill: Type.Unsafe<'none' | 'null' | 'previous'>({
    type: 'string',
    enum: ['none', 'null', 'previous'],
    default: 'none',
    description:
      'Empty buckets: left out (none), answered with nulls (null), or with the previous values (previous)',
  }),
  median: Type.Boolean({ default: false, description: 'Also compute the exact median of each bucket' }),
});

const SeriesBucket = Type.Object(
  {
    start: Type.String({
      description: "The bucket's start, ISO 8601 with the zone's offset",
      examples: ['2026-03-29T00:00:00+01:00'],
    }),
    count: Type.Integer(),
    min: Nullable,
    max: Nullable,
    mean: Nullable,
    median: Type.Optional(Nullable),
  },
  { $id: 'SeriesBucket' },
);
type SeriesBucket = Static<typeof SeriesBucket>;

export const seriesRoutes: FastifyPluginAsyncTypebox<SeriesRoutesOptions> = async (
  app,
  { db, engine, maxSeriesBuckets },
) => {
  app.get(
    '/analyze_statistics/series',
    {
      schema: {
        tags: ['statistics'],
        summary: 'A time series of one value, bucketed in a time zone, for charts',
        description:
          'The filters of /analyze_statistics/; without dates the series spans the selected readings. ' +
          `More than ${maxSeriesBuckets} buckets is a 422.`,
        querystring: SeriesQuery,
        response: { 200: Type.Array(SeriesBucket), ...errorResponses(404, 422) },
      },
    },
    async (request) => {
      const { attr, device_id, user_id, tz, fill, median } = request.query;
      const size = parseBucket(request.query.bucket);
      if (!size)
        throw invalidQuery(
          'bucket',
          'bucket must be N followed by m, h, d or w, with N >= 1',
          'value_error.bucket',
        );
      if (!isTimeZone(tz))
        throw invalidQuery(
          'tz',
          `unknown time zone "${tz}": use an IANA name such as Europe/Berlin`,
          'value_error.tz',
        );
      const selection = { deviceId: device_id, ownerId: user_id, ...parseDateRange(request.query) };
      if (device_id !== undefined && !(await findDevice(db, device_id)))
        throw notFound(`Device ${device_id} not found`);
      if (user_id !== undefined && !(await findUserById(db, user_id)))
        throw notFound(`User ${user_id} not found`);

      const span = await selectionTimeRange(db, selection);
      const start = selection.start ?? span?.first;
      const end = selection.end ?? span?.last;
      if (start === undefined || end === undefined) return [];
      const boundaries = bucketBoundaries(size, tz, start, end, maxSeriesBuckets);
      if (!boundaries) {
        throw invalidQuery(
          'bucket',
          `the range holds more than ${maxSeriesBuckets} buckets of ${request.query.bucket}: use a wider bucket or a shorter range`,
          'value_error.too_many_buckets',
        );
      }
      const rows = await readingSeries(db, engine, { ...selection, attr, withMedian: median }, boundaries);
      return fillBuckets(rows, boundaries, tz, fill, median);
    },
  );
};

function fillBuckets(
  rows: BucketRow[],
  boundaries: number[],
  zone: string,
  fill: 'none' | 'null' | 'previous',
  withMedian: boolean,
): SeriesBucket[] {
  const toBucket = (row: BucketRow): SeriesBucket => ({
    start: formatInZone(zone, boundaries[row.bucket] as number),
    count: row.count,
    min: row.min,
    max: row.max,
    mean: row.sum === null || !Number.isFinite(Number(row.sum)) ? null : Number(row.sum) / row.count,
    ...(withMedian ? { median: row.median ?? null } : {}),
  });
  if (fill === 'none') return rows.map(toBucket);
  const byIndex = new Map(rows.map((row) => [row.bucket, row]));
  const series: SeriesBucket[] = [];
  let previous: SeriesBucket | undefined;
  for (let bucket = 0; bucket < boundaries.length - 1; bucket++) {
    const row = byIndex.get(bucket);
    const start = formatInZone(zone, boundaries[bucket] as number);
    if (row) {
      previous = toBucket(row);
      series.push(previous);
    } else if (fill === 'previous' && previous) {
      series.push({ ...previous, start, count: 0 });
    } else {
      series.push({
        start,
        count: 0,
        min: null,
        max: null,
        mean: null,
        ...(withMedian ? { median: null } : {}),
      });
    }
  }
  return series;
}
