import type { Kysely, Transaction } from 'kysely';
import { percentileOfSorted, type SortedValues } from './sorted-values.js';
import type { Database } from './tables.js';

/**
 * What a heavy query reads with: a Kysely handle on one engine. On SQLite it is a worker's read-only
 * connection, inside a read transaction, which also collects sorted values for percentiles (see
 * dialect.ts sortedPercentiles); on PostgreSQL a read-only transaction (savepoints need one).
 */
export type Reader =
  | { readonly engine: 'postgres'; readonly db: Transaction<Database> }
  | { readonly engine: 'sqlite'; readonly db: Kysely<Database>; readonly sortedValues: SortedValues };

/**
 * The percentiles `fractions` from what sortedPercentiles answered: PostgreSQL's array of them, or
 * the handle of SQLite's sorted values (taken here, so each array is released once read).
 */
export function readPercentiles(
  reader: Reader,
  answered: number[] | number | null | undefined,
  fractions: readonly number[],
): Array<number | null> {
  if (reader.engine === 'sqlite' && typeof answered === 'number') {
    const sorted = reader.sortedValues.take(answered);
    return fractions.map((fraction) => percentileOfSorted(sorted, fraction));
  }
  return fractions.map((_, i) => (Array.isArray(answered) ? (answered[i] ?? null) : null));
}
