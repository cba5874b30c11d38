import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from '@sinclair/typebox';
import type { Kysely } from 'kysely';
import { ReadingFilters } from '../data/schemas.js';
import { requireSelectable } from '../data/selection.js';
import { type Retention, readingsRetainedFrom } from '../db/maintenance.js';
import type { Reads } from '../db/read-replicas.js';
import type { Database } from '../db/tables.js';
import { parseDateRange } from '../http/dates.js';
import { invalidQuery } from '../http/errors.js';
import { errorResponses, Id, invalidOrTooLarge, Nullable } from '../http/schemas.js';
import { allowSilenceWhileAnswering } from '../http/timeouts.js';
import type { HeavyQueries } from './heavy-runner.js';
import { selectedReadingTime } from './reading-series.js';
import { Accuracy, type Attribute, AttributesParam, parseAttributes } from './schemas.js';
import type { BucketRow } from './series-rows.js';
import { bucketBoundaries, canonicalTimeZone, formatInZone, parseBucket } from './time-buckets.js';
import { RELATIVE_ACCURACY } from './value-sketch.js';

export interface SeriesRoutesOptions {
  db: Kysely<Database>;
  /** Where the range's first and last reading times are read (a replica when one is fit). */
  reads: Reads;
  heavy: HeavyQueries;
  maxSeriesBuckets: number;
  retention: Retention;
}

const SeriesQuery = Type.Object({
  ...ReadingFilters,
  user_id: Type.Optional(Id("Only this user's devices")),
  attr: AttributesParam('chart'),
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
  median: Type.Boolean({
    default: false,
    description:
      "Also compute each bucket's median: exact, or with `accuracy=approx` from the hourly rollups' sketches " +
      'for buckets of whole hours (the values then say `approximate` and the bound)',
  }),
  accuracy: Type.Optional(Accuracy),
});

const valueFields = {
  min: Nullable(),
  max: Nullable(),
  mean: Nullable(),
  median: Type.Optional(Nullable()),
  approximate: Type.Optional(
    Type.Boolean({
      description: 'Present (true) when the median comes from quantile sketches (`accuracy=approx`)',
    }),
  ),
  relative_error: Type.Optional(
    Type.Number({
      description: "With `approximate`: the bound on the median's relative error; 0.01 is 1%",
      examples: [0.01],
    }),
  ),
};
const start = Type.String({
  description: "The bucket's start, ISO 8601 with the zone's offset",
  examples: ['2026-03-29T00:00:00+01:00'],
});
const count = Type.Integer({ description: 'Readings in the bucket' });

export const SeriesValues = Type.Object(valueFields, {
  $id: 'SeriesValues',
  description: "One value's statistics in a bucket",
});
type SeriesValues = Static<typeof SeriesValues>;

/** One value: the bucket's statistics side by side; several: one object per value. */
const SeriesBucket = Type.Union([
  Type.Object({ start, count, ...valueFields }),
  Type.Object({
    start,
    count,
    x: Type.Optional(Type.Ref(SeriesValues)),
    y: Type.Optional(Type.Ref(SeriesValues)),
    z: Type.Optional(Type.Ref(SeriesValues)),
  }),
]);
type SeriesBucket = Static<typeof SeriesBucket>;

export const seriesRoutes: FastifyPluginAsyncTypebox<SeriesRoutesOptions> = async (
  app,
  { db, reads, heavy, maxSeriesBuckets, retention },
) => {
  allowSilenceWhileAnswering(app, heavy.timeoutMs);
  app.get(
    '/analyze_statistics/series',
    {
      schema: {
        operationId: 'getSeries',
        tags: ['statistics'],
        summary: 'A time series of one value, bucketed in a time zone, for charts',
        description:
          'The filters of /analyze_statistics/; without dates the series spans the selected readings. ' +
          `More than ${maxSeriesBuckets} buckets is a 422.`,
        querystring: SeriesQuery,
        response: {
          200: Type.Array(SeriesBucket, { description: 'The buckets, in time order' }),
          ...errorResponses(404, 503),
          422: invalidOrTooLarge,
        },
      },
    },
    async (request) => {
      const { device_id, user_id, fill, median, accuracy } = request.query;
      const attrs = parseAttributes(request.query.attr);
      const size = parseBucket(request.query.bucket);
      if (!size)
        throw invalidQuery(
          'bucket',
          'bucket must be N followed by m, h, d or w, with N >= 1',
          'value_error.bucket',
        );
      const tz = canonicalTimeZone(request.query.tz);
      if (tz === undefined)
        throw invalidQuery(
          'tz',
          `unknown time zone "${request.query.tz}": use an IANA name such as Europe/Berlin`,
          'value_error.tz',
        );
      const selection = { deviceId: device_id, ownerId: user_id, ...parseDateRange(request.query) };
      await requireSelectable(db, selection);

      const start =
        selection.start ?? (await reads.read((db) => selectedReadingTime(db, selection, 'first')));
      const end = selection.end ?? (await reads.read((db) => selectedReadingTime(db, selection, 'last')));
      if (start === undefined || end === undefined) return [];
      const boundaries = bucketBoundaries(size, tz, start, end, maxSeriesBuckets);
      if (!boundaries) {
        throw invalidQuery(
          'bucket',
          `the range holds more than ${maxSeriesBuckets} buckets of ${request.query.bucket}: use a wider bucket or a shorter range`,
          'value_error.too_many_buckets',
        );
      }
      // Series stay in the heavy lane: STATISTICS_LIGHT_READINGS is weighed for statistics only.
      const rows = await heavy.run(
        'series',
        {
          selection: {
            ...selection,
            attrs,
            withMedian: median,
            accuracy,
            hoursFrom: readingsRetainedFrom(retention, Date.now()),
          },
          boundaries,
        },
        'heavy',
      );
      return fillBuckets(rows, { boundaries, zone: tz, fill, attrs, withMedian: median });
    },
  );
};

interface SeriesShape {
  boundaries: number[];
  zone: string;
  fill: 'none' | 'null' | 'previous';
  attrs: Attribute[];
  withMedian: boolean;
}

/** The answer's rows: empty buckets left out, answered with nulls, or with the previous bucket's values. */
function fillBuckets(
  rows: BucketRow[],
  { boundaries, zone, fill, attrs, withMedian }: SeriesShape,
): SeriesBucket[] {
  const values = (row: BucketRow | undefined, attr: Attribute): SeriesValues => {
    const found = row?.byAttr[attr];
    const sum = found?.sum;
    return {
      min: found?.min ?? null,
      max: found?.max ?? null,
      mean: row && sum !== null && sum !== undefined && Number.isFinite(sum) ? sum / row.count : null,
      ...(withMedian ? { median: found?.median ?? null } : {}),
      ...(withMedian && row?.approximate ? { approximate: true, relative_error: RELATIVE_ACCURACY } : {}),
    };
  };
  const shape = (
    startMs: number,
    count: number,
    valuesOf: (attr: Attribute) => SeriesValues,
  ): SeriesBucket => {
    const start = formatInZone(zone, startMs);
    if (attrs.length === 1) return { start, count, ...valuesOf(attrs[0] as Attribute) };
    return { start, count, ...Object.fromEntries(attrs.map((attr) => [attr, valuesOf(attr)])) };
  };
  const byIndex = new Map(rows.map((row) => [row.bucket, row]));
  const series: SeriesBucket[] = [];
  let previous: BucketRow | undefined;
  for (let bucket = 0; bucket < boundaries.length - 1; bucket++) {
    const row = byIndex.get(bucket);
    const startMs = boundaries[bucket] as number;
    if (row) {
      previous = row;
      series.push(shape(startMs, row.count, (attr) => values(row, attr)));
    } else if (fill === 'previous' && previous) {
      const last = previous;
      series.push(shape(startMs, 0, (attr) => values(last, attr)));
    } else if (fill !== 'none') {
      series.push(shape(startMs, 0, (attr) => values(undefined, attr)));
    }
  }
  return series;
}
