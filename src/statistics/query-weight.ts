import { type Kysely, sql } from 'kysely';
import { type ReadingSelection, selectionFilter } from '../data/selection.js';
import { type Database, MINUTE_MS } from '../db/tables.js';

/** Which of HeavyQueries' lanes a query takes (heavy-runner.ts). */
export type Lane = 'light' | 'heavy';

/**
 * 'light' when the selection holds at most `lightReadings` readings, 'heavy' otherwise, decided before
 * the query runs from the minute rollups (kept in the same transaction as the readings): the sum of
 * their counts over at most `lightReadings + 1` rows, so the count costs at most that many index
 * entries however many readings there are (each row holds at least one reading, so one more row than
 * the limit is over it). The minute holding the start is counted whole: the count is never below the
 * readings selected, so a doubt goes to the heavy lane. `lightReadings` 0: always heavy. The limit is a
 * literal, one per process: SQLite re-prepares a statement whose LIMIT is bound at every run
 * (sqlite-compiler.ts).
 */
export async function laneOf(
  db: Kysely<Database>,
  selection: ReadingSelection,
  lightReadings: number,
): Promise<Lane> {
  if (lightReadings <= 0) return 'heavy';
  const { start } = selection;
  const fromMinute =
    start === undefined ? undefined : start - (((start % MINUTE_MS) + MINUTE_MS) % MINUTE_MS);
  const filter = selectionFilter({ ...selection, start: fromMinute }, 'r', 'minute');
  const { rows } = await sql<{ readings: number | string | null }>`
    select sum(bounded.readings) as readings
    from (select r.readings from reading_minutes r where ${filter} limit ${sql.lit(lightReadings + 1)}) as bounded`.execute(
    db,
  );
  // PostgreSQL sums integers as bigint, which pg hands over as a string.
  return Number(rows[0]?.readings ?? 0) <= lightReadings ? 'light' : 'heavy';
}
