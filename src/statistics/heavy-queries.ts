import type { Reader } from '../db/reader.js';
import type { EpochMs } from '../db/tables.js';
import { approxStatistics } from './approx-statistics.js';
import { readingSeries } from './reading-series.js';
import { readingStatistics } from './reading-statistics.js';
import { type FoldCursor, planFold } from './rollup-fold.js';
import type { SeriesSelection } from './series-rows.js';

/**
 * The queries that may scan many readings, by name. Each takes a Reader and plain data (it crosses
 * to a worker thread on SQLite) and answers plain data. Routes run them only through HeavyQueries
 * (heavy-runner.ts), which bounds how many run at once, how many wait, and how long each may take.
 */
export const heavyQueries = {
  statistics: readingStatistics,
  approxStatistics,
  /** The rollup folder's reads and computing (rollup-fold.ts), off the event loop on SQLite. */
  foldPlan: (
    reader: Reader,
    { maxReadings, before, after }: { maxReadings: number; before: EpochMs; after?: FoldCursor | undefined },
  ) => planFold(reader.db, maxReadings, before, after),
  series: (
    reader: Reader,
    { selection, boundaries }: { selection: SeriesSelection; boundaries: EpochMs[] },
  ) => readingSeries(reader.db, reader.engine, selection, boundaries),
};

export type HeavyQueryName = keyof typeof heavyQueries;
export type HeavyInput<Name extends HeavyQueryName> = Parameters<(typeof heavyQueries)[Name]>[1];
export type HeavyOutput<Name extends HeavyQueryName> = Awaited<ReturnType<(typeof heavyQueries)[Name]>>;

/** What a SQLite worker is asked: a named query and its input. */
export interface HeavyTask<Name extends HeavyQueryName = HeavyQueryName> {
  name: Name;
  input: HeavyInput<Name>;
}

/** Runs a named query with its input on the reader given (the worker and PostgreSQL both go through here). */
export function runHeavyQuery<Name extends HeavyQueryName>(
  reader: Reader,
  { name, input }: HeavyTask<Name>,
): Promise<HeavyOutput<Name>> {
  const query = heavyQueries[name] as (reader: Reader, input: HeavyInput<Name>) => Promise<HeavyOutput<Name>>;
  return query(reader, input);
}
