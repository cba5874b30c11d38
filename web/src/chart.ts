/**
 * What the device page needs before its first request (the bucket for the chart's width) and to shape
 * the series' answer; uPlot itself is in plot.ts, a chunk of its own loaded beside the data.
 */
import type uPlot from 'uplot';
import { AXES, type Axis, type BucketValues } from './api';

export const COLORS: Record<Axis, string> = { x: '#1d4ed8', y: '#15803d', z: '#b91c1c' };

/** Bucket widths the series endpoint takes, smallest first, with their length in seconds. */
const BUCKETS: [string, number][] = [
  ['1m', 60],
  ['2m', 120],
  ['5m', 300],
  ['10m', 600],
  ['15m', 900],
  ['30m', 1800],
  ['1h', 3600],
  ['2h', 7200],
  ['3h', 10800],
  ['6h', 21600],
  ['12h', 43200],
  ['1d', 86400],
  ['2d', 172800],
  ['1w', 604800],
];

/** The smallest bucket that keeps about one bucket per `pixelsPerBucket` pixels of chart width. */
export function chooseBucket(
  spanMs: number,
  widthPx: number,
  pixelsPerBucket = 3,
): { bucket: string; seconds: number } {
  const target = Math.max(10, Math.floor(widthPx / pixelsPerBucket));
  const span = Math.max(1, spanMs / 1000);
  for (const [bucket, seconds] of BUCKETS) {
    if (span / seconds <= target) return { bucket, seconds };
  }
  const weeks = Math.min(9999, Math.ceil(span / target / 604800));
  return { bucket: `${weeks}w`, seconds: weeks * 604800 };
}

/** Each axis' buckets: their start and their values. */
export type SeriesByAxis = Record<Axis, ({ start: string } & BucketValues)[]>;

/** uPlot's columns: time in seconds, then mean, min and max of each axis (null where a bucket is empty). */
export function toColumns(series: SeriesByAxis): uPlot.AlignedData {
  const times = new Set<number>();
  for (const axis of AXES) for (const bucket of series[axis]) times.add(Date.parse(bucket.start) / 1000);
  const xs = [...times].sort((a, b) => a - b);
  const index = new Map(xs.map((t, i) => [t, i]));
  const columns: (number | null)[][] = [];
  for (const axis of AXES) {
    const mean = new Array<number | null>(xs.length).fill(null);
    const min = new Array<number | null>(xs.length).fill(null);
    const max = new Array<number | null>(xs.length).fill(null);
    for (const bucket of series[axis]) {
      const i = index.get(Date.parse(bucket.start) / 1000) as number;
      mean[i] = bucket.mean;
      min[i] = bucket.min;
      max[i] = bucket.max;
    }
    columns.push(mean, min, max);
  }
  return [xs, ...columns] as uPlot.AlignedData;
}

/** The series index of an axis' mean (its min and max follow). */
export function seriesIndex(axis: Axis): number {
  return 1 + AXES.indexOf(axis) * 3;
}
