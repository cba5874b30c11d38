import type { DDSketch } from '@datadog/sketches-js';
import type { ReadingRollupsTable } from '../db/tables.js';
import { addEncodedSketch, encodeSketch, newSketch } from './value-sketch.js';

export const ROLLUP_VALUES = ['x', 'y', 'z'] as const;
export type RollupValue = (typeof ROLLUP_VALUES)[number];

/**
 * The exact, mergeable summary of one value over some readings: count, min, max, sum, and the sum of
 * squared deviations from the mean (`m2`). A sum beyond the double range (or stored as null by
 * SQLite, which keeps NaN as null) makes the sum and m2 unknown: null.
 */
export interface Moments {
  count: number;
  min: number;
  max: number;
  sum: number | null;
  m2: number | null;
}

/** Two passes over the values: the sum, then the squared deviations from their mean. */
export function momentsOf(values: ArrayLike<number>): Moments | undefined {
  const count = values.length;
  if (count === 0) return undefined;
  let sum = 0;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < count; i++) {
    const value = values[i] as number;
    sum += value;
    if (value < min) min = value;
    if (value > max) max = value;
  }
  if (!Number.isFinite(sum)) return { count, min, max, sum: null, m2: null };
  const mean = sum / count;
  let m2 = 0;
  for (let i = 0; i < count; i++) m2 += ((values[i] as number) - mean) ** 2;
  return { count, min, max, sum, m2: Number.isFinite(m2) ? m2 : null };
}

/** Chan et al.'s parallel variance: the m2 of both parts from each part's m2 and mean. */
export function mergeMoments(a: Moments | undefined, b: Moments): Moments {
  if (!a) return { ...b };
  const count = a.count + b.count;
  const known = a.sum !== null && b.sum !== null && Number.isFinite(a.sum + b.sum);
  let m2: number | null = null;
  if (known && a.m2 !== null && b.m2 !== null) {
    const delta = (b.sum as number) / b.count - (a.sum as number) / a.count;
    m2 = a.m2 + b.m2 + ((delta * delta * a.count) / count) * b.count;
  }
  return {
    count,
    min: Math.min(a.min, b.min),
    max: Math.max(a.max, b.max),
    sum: known ? (a.sum as number) + (b.sum as number) : null,
    m2: m2 !== null && Number.isFinite(m2) ? m2 : null,
  };
}

/** The moments and sketch of one value, merged from rollup rows and readings. */
export interface ValueSummary {
  moments: Moments | undefined;
  sketch: DDSketch;
}

export function emptySummary(): ValueSummary {
  return { moments: undefined, sketch: newSketch() };
}

/** The summaries of each value by a key (a device, a bucket). */
export type SummariesBy<Key> = Map<Key, Partial<Record<RollupValue, ValueSummary>>>;

/** The summary of `value` under `key`, made empty when first asked for. */
export function summaryIn<Key>(summaries: SummariesBy<Key>, key: Key, value: RollupValue): ValueSummary {
  let byValue = summaries.get(key);
  if (!byValue) {
    byValue = {};
    summaries.set(key, byValue);
  }
  byValue[value] ??= emptySummary();
  return byValue[value];
}

/** One rollup row's columns of one value, as the database answers them. */
export type RollupRow = Pick<ReadingRollupsTable, 'device_id' | 'start' | 'readings'> &
  Partial<Record<`${RollupValue}_${'min' | 'max' | 'sum' | 'm2'}`, number | null>> &
  Partial<Record<`${RollupValue}_sketch`, Uint8Array>>;

/** Merges one rollup row's value into a summary. */
export function addRollupRow(summary: ValueSummary, row: RollupRow, value: RollupValue): void {
  const count = Number(row.readings);
  if (count === 0) return;
  summary.moments = mergeMoments(summary.moments, {
    count,
    min: Number(row[`${value}_min`]),
    max: Number(row[`${value}_max`]),
    sum: nullableNumber(row[`${value}_sum`]),
    m2: nullableNumber(row[`${value}_m2`]),
  });
  const sketch = row[`${value}_sketch`];
  if (sketch) addEncodedSketch(summary.sketch, sketch);
}

/** Merges readings' values (exact, read directly) into a summary. */
export function addReadings(summary: ValueSummary, values: ArrayLike<number>): void {
  const moments = momentsOf(values);
  if (!moments) return;
  summary.moments = mergeMoments(summary.moments, moments);
  for (let i = 0; i < values.length; i++) summary.sketch.accept(values[i] as number);
}

/** A summary (of at least one reading) as the columns of a rollup row. */
export function summaryColumns<V extends RollupValue>(summary: ValueSummary, value: V) {
  const moments = summary.moments as Moments;
  return {
    [`${value}_min`]: moments.min,
    [`${value}_max`]: moments.max,
    [`${value}_sum`]: moments.sum,
    [`${value}_m2`]: moments.m2,
    [`${value}_sketch`]: Buffer.from(encodeSketch(summary.sketch)),
  } as Record<`${V}_min` | `${V}_max`, number> &
    Record<`${V}_sum` | `${V}_m2`, number | null> &
    Record<`${V}_sketch`, Uint8Array>;
}

const nullableNumber = (value: number | null | undefined) =>
  value === null || value === undefined ? null : Number(value);
