import { type Static, Type } from '@sinclair/typebox';
import { ReadingFilters } from '../data/schemas.js';
import { Id } from '../http/schemas.js';

export const ATTRIBUTES = ['x', 'y', 'z'] as const;
export type Attribute = (typeof ATTRIBUTES)[number];

export const StatisticsQuery = Type.Object({
  ...ReadingFilters,
  attr: Type.Unsafe<Attribute>({
    type: 'string',
    enum: [...ATTRIBUTES],
    default: 'x',
    description: 'Which value of the readings to summarise',
  }),
});

export const OwnerParams = Type.Object({ user_id: Id('The owner whose devices are summarised') });

const Nullable = (description: string) => Type.Union([Type.Number(), Type.Null()], { description });

export const Statistics = Type.Object(
  {
    count: Type.Integer({ description: 'Readings selected', examples: [4] }),
    min: Nullable('Smallest value; null when nothing is selected'),
    max: Nullable('Largest value; null when nothing is selected'),
    sum: Nullable('Sum of the values (0 when nothing is selected; null if it overflows a double)'),
    mean: Nullable('Arithmetic mean; null when nothing is selected or the sum overflows'),
    median: Nullable(
      'Exact median: the mean of the two middle values for an even count, as numpy computes it',
    ),
  },
  {
    $id: 'Statistics',
    examples: [{ count: 4, min: 1, max: 10, sum: 16, mean: 4, median: 2.5 }],
  },
);
export type Statistics = Static<typeof Statistics>;
