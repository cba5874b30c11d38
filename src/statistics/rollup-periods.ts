/**
 * UTC hours, days and months, and the decomposition of a time range into the fewest whole periods the
 * rollups hold (statistics/rollup-folder.ts keeps them) plus the rest, read from the readings.
 */

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

/** A period length: the start of the period holding `t`, and the start of the next one. */
export interface PeriodUnit {
  floor(t: number): number;
  next(start: number): number;
}

const fixed = (length: number): PeriodUnit => ({
  floor: (t) => (Number.isFinite(t) ? t - (((t % length) + length) % length) : t),
  next: (start) => start + length,
});

export const hourUnit = fixed(HOUR_MS);
export const dayUnit = fixed(DAY_MS);
export const monthUnit: PeriodUnit = {
  floor(t) {
    if (!Number.isFinite(t)) return t;
    const date = new Date(t);
    return Date.UTC(date.getUTCFullYear(), date.getUTCMonth());
  },
  next(start) {
    const date = new Date(start);
    return Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1);
  },
};

const ceil = (unit: PeriodUnit, t: number) => {
  const start = unit.floor(t);
  return start === t ? t : unit.next(start);
};

export type RollupTable = 'reading_months' | 'reading_days' | 'reading_hours';

/** Coarsest first: each level covers what the coarser ones leave. */
const LEVELS: ReadonlyArray<{ table: RollupTable; unit: PeriodUnit }> = [
  { table: 'reading_months', unit: monthUnit },
  { table: 'reading_days', unit: dayUnit },
  { table: 'reading_hours', unit: hourUnit },
];

/** [from, to): epoch ms, either end may be infinite. */
export type Interval = readonly [from: number, to: number];

/** Which starts to read from each rollup table, and which times from the readings. */
export type Pieces = Record<RollupTable | 'readings', Interval[]>;

/**
 * [from, to) as whole months, then whole days, then whole hours, then the rest (the partial hours at
 * the edges) as reading times. A period holding a `dirty` hour (one with minutes not yet folded, so
 * its rollups may be stale) is never read as a whole: it is split into the next level, down to the
 * readings of that hour.
 */
export function decompose(from: number, to: number, dirtyHours: ReadonlySet<number>): Pieces {
  const pieces: Pieces = { reading_months: [], reading_days: [], reading_hours: [], readings: [] };
  const dirty = [...dirtyHours].sort((a, b) => a - b);
  const cover = (level: number, start: number, end: number): void => {
    if (start >= end) return;
    const current = LEVELS[level];
    if (!current) {
      pieces.readings.push([start, end]);
      return;
    }
    const { table, unit } = current;
    const first = ceil(unit, start);
    const last = unit.floor(end);
    if (first >= last) {
      cover(level + 1, start, end);
      return;
    }
    cover(level + 1, start, first);
    let cursor = first;
    for (const hour of dirty) {
      if (hour < cursor || hour >= last) continue;
      const period = unit.floor(hour);
      if (period > cursor) pieces[table].push([cursor, period]);
      cover(level + 1, period, unit.next(period));
      cursor = unit.next(period);
    }
    if (cursor < last) pieces[table].push([cursor, last]);
    cover(level + 1, last, end);
  };
  cover(0, from, to);
  return pieces;
}
