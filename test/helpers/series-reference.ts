import assert from 'node:assert/strict';

/**
 * The time series computed here in plain JS from the readings a test stored, to hold the service's
 * answers against: bucket by bucket, count, min, max, mean and median.
 */

export type Attr = 'x' | 'y' | 'z';

/** A stored reading as the test knows it. */
export interface Point {
  device: number;
  at: number;
  x: number;
  y: number;
  z: number;
}

/** The points as POST /data/ takes them, with their time as the device's timestamp. */
export const asReadings = (points: Point[]) =>
  points.map((p) => ({
    device_id: p.device,
    x: p.x,
    y: p.y,
    z: p.z,
    timestamp: new Date(p.at).toISOString(),
  }));

export interface BucketReference {
  /** The bucket's first instant (epoch ms). */
  start: number;
  count: number;
  min: number;
  max: number;
  mean: number;
  median: number;
  /** How far an engine's mean and median may lie from these (they add and interpolate in their own order). */
  meanTolerance: number;
  medianTolerance: number;
}

/** numpy's median: the middle value, or the mean of the two middle values of an even count. */
export function medianOf(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  if (sorted.length % 2 === 1) return sorted[middle] as number;
  const a = sorted[middle - 1] as number;
  const b = sorted[middle] as number;
  // As the engines interpolate, a + (b - a) / 2, unless b - a overflows (-1.5e308 and 1.5e308): then
  // halves first (exact at those magnitudes, where halving a subnormal would not be).
  return Number.isFinite(b - a) ? a + (b - a) / 2 : a / 2 + b / 2;
}

/**
 * The non-empty buckets of `points` for one value. `boundaries` are the bucket starts and, last, the
 * end of the last bucket; `from` and `to` (inclusive) are the range the series was asked for.
 */
export function referenceSeries(
  points: Point[],
  boundaries: number[],
  attr: Attr,
  from = Number.NEGATIVE_INFINITY,
  to = Number.POSITIVE_INFINITY,
): BucketReference[] {
  const buckets: BucketReference[] = [];
  for (let i = 0; i + 1 < boundaries.length; i++) {
    const start = boundaries[i] as number;
    const end = boundaries[i + 1] as number;
    const values = points
      .filter((p) => p.at >= start && p.at < end && p.at >= from && p.at <= to)
      .map((p) => p[attr]);
    if (values.length === 0) continue;
    const magnitude = values.reduce((sum, v) => sum + Math.abs(v), 0);
    const median = medianOf(values);
    buckets.push({
      start,
      count: values.length,
      min: Math.min(...values),
      max: Math.max(...values),
      mean: values.reduce((sum, v) => sum + v, 0) / values.length,
      median,
      meanTolerance: (1e-12 * magnitude) / values.length,
      medianTolerance: 1e-12 * Math.max(Math.abs(median), ...values.map(Math.abs)),
    });
  }
  return buckets;
}

/** One bucket of the answer, with one value's statistics at its top level. */
export interface AnsweredBucket {
  start: string;
  count: number;
  min: number | null;
  max: number | null;
  mean: number | null;
  median?: number | null;
}

/** Asserts that `answer` is the reference, bucket by bucket: starts and counts, min and max exactly. */
export function assertSeriesMatches(
  answer: AnsweredBucket[],
  expected: BucketReference[],
  label: string,
): void {
  assert.deepEqual(
    answer.map((bucket) => [Date.parse(bucket.start), bucket.count]),
    expected.map((bucket) => [bucket.start, bucket.count]),
    `${label}: bucket starts and counts`,
  );
  answer.forEach((got, i) => {
    const want = expected[i] as BucketReference;
    const where = `${label}, bucket ${got.start}`;
    assert.deepEqual([got.min, got.max], [want.min, want.max], `${where}: min and max`);
    assert.ok(
      typeof got.mean === 'number' && Math.abs(got.mean - want.mean) <= want.meanTolerance,
      `${where}: mean ${got.mean}, want ${want.mean}`,
    );
    if (got.median !== undefined) {
      assert.ok(
        typeof got.median === 'number' && Math.abs(got.median - want.median) <= want.medianTolerance,
        `${where}: median ${got.median}, want ${want.median}`,
      );
    }
  });
}
