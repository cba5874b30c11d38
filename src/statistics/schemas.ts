import { type Static, type TObject, Type } from '@sinclair/typebox';
import { ReadingFilters } from '../data/schemas.js';
import { Id, Nullable } from '../http/schemas.js';

export const ATTRIBUTES = ['x', 'y', 'z'] as const;
export type Attribute = (typeof ATTRIBUTES)[number];

export const MAX_PERCENTILES = 20;

/** `attr`: one value (x, y or z), several as a list, or `all`. */
export const AttributesParam = (what: string) =>
  Type.String({
    pattern: '^(all|[xyz](,[xyz])*)$',
    default: 'x',
    description: `The value to ${what} (x, y or z), several as a list (\`x,z\`), or \`all\``,
    examples: ['x', 'x,y,z', 'all'],
  });

export function parseAttributes(text: string): Attribute[] {
  if (text === 'all') return [...ATTRIBUTES];
  return [...new Set(text.split(','))] as Attribute[];
}

/** `accuracy`, of the statistics and of the series' medians. */
export const Accuracy = Type.Unsafe<'exact' | 'approx'>({
  type: 'string',
  enum: ['exact', 'approx'],
  default: 'exact',
  description:
    '`exact` (the default): every statistic exact. `approx`: count, min, max, sum, mean and the variances ' +
    'still exact, the median and percentiles within 1% from the quantile sketches of the hour, day and ' +
    'month rollups: fast over any range',
});

export const StatisticsQuery = Type.Object({
  ...ReadingFilters,
  attr: AttributesParam('summarise'),
  percentiles: Type.Optional(
    Type.String({
      pattern: '^\\d{1,3}(\\.\\d+)?(,\\d{1,3}(\\.\\d+)?)*$',
      maxLength: 200,
      description: `Up to ${MAX_PERCENTILES} percentiles from 0 to 100, exact and interpolated linearly as numpy's default`,
      examples: ['5,25,75,95,99'],
    }),
  ),
  accuracy: Type.Optional(Accuracy),
  group_by: Type.Optional(
    Type.Unsafe<'device'>({
      type: 'string',
      enum: ['device'],
      description: 'One entry per device in the selection',
    }),
  ),
});

export const OwnerParams = Type.Object({ user_id: Id('The owner whose devices are summarised') });

const statisticsFields = {
  count: Type.Integer({ description: 'Readings selected', examples: [4] }),
  min: Nullable('Smallest value; null when nothing is selected'),
  max: Nullable('Largest value; null when nothing is selected'),
  sum: Nullable('Sum of the values (0 when nothing is selected; null if it overflows a double)'),
  mean: Nullable('Arithmetic mean; null when nothing is selected or the sum overflows'),
  median: Nullable('Exact median: the mean of the two middle values for an even count, as numpy computes it'),
  variance: Nullable('Sample variance (divided by count - 1); null below two readings'),
  stddev: Nullable('Sample standard deviation (ddof=1)'),
  variance_population: Nullable('Population variance (divided by count)'),
  stddev_population: Nullable("Population standard deviation (ddof=0, numpy's default)"),
  percentiles: Type.Optional(
    Type.Record(Type.String(), Nullable(), {
      description: 'The requested percentiles, keyed by their value as given',
      examples: [{ '5': 1.15, '95': 9.1 }],
    }),
  ),
  readings_retained_from: Type.Optional(
    Type.String({
      format: 'date-time',
      description:
        'With RETENTION_DAYS, when the range starts before it: the readings before this time have been ' +
        'removed, and the statistics cover those kept (the series still charts the removed days from rollups)',
      examples: ['2026-10-31T00:00:00.000Z'],
    }),
  ),
  approximate: Type.Optional(
    Type.Boolean({
      description:
        'Present (true) with `accuracy=approx`: the median and percentiles come from quantile sketches; ' +
        'count, min, max, sum, mean and the variances stay exact',
    }),
  ),
  relative_error: Type.Optional(
    Type.Number({
      description:
        'With `approximate`: the bound on the relative error of the median and each percentile against ' +
        'the exact one (both interpolated between the two readings around the rank); 0.01 is 1%',
      examples: [0.01],
    }),
  ),
};

export const Statistics = Type.Object(statisticsFields, {
  $id: 'Statistics',
  description: 'Statistics of one value',
  examples: [
    {
      count: 4,
      min: 1,
      max: 10,
      sum: 18,
      mean: 4.5,
      median: 3.5,
      variance: 15,
      stddev: 3.873,
      variance_population: 11.25,
      stddev_population: 3.354,
    },
  ],
});
export type Statistics = Static<typeof Statistics>;

const deviceId = { device_id: Type.Integer({ description: 'The device of this entry' }) };

/**
 * One value without grouping answers the flat object (as the original did); several values answer one
 * object per value; `group_by=device` answers a list with one entry per device.
 */
function answerOf<Item extends TObject>(item: Item) {
  const one = Type.Ref(item);
  const byAttr = { x: Type.Optional(one), y: Type.Optional(one), z: Type.Optional(one) };
  return Type.Union(
    [
      one,
      Type.Object(byAttr, { description: 'Several values: the statistics of each' }),
      Type.Array(
        Type.Union([
          Type.Object({ ...deviceId, ...item.properties }),
          Type.Object({ ...deviceId, ...byAttr }),
        ]),
        { description: 'group_by=device: one entry per device, in device order' },
      ),
    ],
    { description: 'The statistics: their shape follows `attr` and `group_by`' },
  );
}

export const StatisticsAnswer = answerOf(Statistics);
export type StatisticsAnswer = Static<typeof StatisticsAnswer>;

/**
 * STATISTICS_KEYS=original: the original service's keys, in its order, for clients that parse its
 * answers (percentiles, when asked for, follow them). Mean and variances are not part of it.
 */
export const OriginalStatistics = Type.Object(
  {
    'минимальное значение': statisticsFields.min,
    'максимальное значение': statisticsFields.max,
    количество: statisticsFields.count,
    сумма: statisticsFields.sum,
    медиана: statisticsFields.median,
    percentiles: statisticsFields.percentiles,
  },
  {
    $id: 'OriginalStatistics',
    description: "Statistics of one value, with the original service's keys (STATISTICS_KEYS=original)",
    examples: [
      {
        'минимальное значение': 1,
        'максимальное значение': 10,
        количество: 4,
        сумма: 18,
        медиана: 3.5,
      },
    ],
  },
);
export type OriginalStatistics = Static<typeof OriginalStatistics>;

export const OriginalStatisticsAnswer = answerOf(OriginalStatistics);

export function toOriginalKeys({
  min,
  max,
  count,
  sum,
  median,
  percentiles,
}: Statistics): OriginalStatistics {
  return {
    'минимальное значение': min,
    'максимальное значение': max,
    количество: count,
    сумма: sum,
    медиана: median,
    ...(percentiles ? { percentiles } : {}),
  };
}
