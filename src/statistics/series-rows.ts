import type { ReadingSelection } from '../data/selection.js';
import type { EpochMs } from '../db/tables.js';
import type { Attribute } from './schemas.js';

/** What a series selects, and the rows it answers per bucket (reading-series.ts and its sources). */

export type SeriesSelection = ReadingSelection & {
  attrs: Attribute[];
  withMedian: boolean;
  /** `approx`: medians from the hourly rollups' sketches where the buckets allow it. */
  accuracy?: 'exact' | 'approx';
  /**
   * Where the hourly rollups may be read from: the readings' retention horizon (RETENTION_DAYS). An
   * hour before it may have been folded after its readings were removed (the folder recomputes hours
   * from the readings), while its minute rollups are kept: the minutes answer it.
   */
  hoursFrom?: EpochMs;
  /** Medians of the halved values (see halvedPercentile), for the buckets where a median overflowed. */
  halvedMedians?: boolean;
};

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
  /** The medians come from quantile sketches, within RELATIVE_ACCURACY (series-sketches.ts). */
  approximate?: boolean;
}
