import { type Kysely, sql } from 'kysely';
import type { Engine } from '../db/dialect.js';
import type { Database, EpochMs, ReadingRollupsTable } from '../db/tables.js';
import { inRanges, joinAdjacent, rangeGroups } from './device-ranges.js';
import {
  dayUnit,
  HOUR_MS,
  hourUnit,
  monthUnit,
  type PeriodUnit,
  type RollupTable,
} from './rollup-periods.js';
import {
  addReadings,
  addRollupRow,
  emptySummary,
  ROLLUP_VALUES,
  type RollupRow,
  type RollupValue,
  summaryColumns,
  type ValueSummary,
} from './rollup-values.js';
import { applyFold, type FoldPlan, type Period } from './rollup-writes.js';

/** What one fold did: hours recomputed, readings read for them, minutes marked folded. */
export interface Folded {
  hours: number;
  readings: number;
  minutes: number;
  /** Where the next step starts looking (FoldCursor). */
  next: FoldCursor | undefined;
}

/**
 * The last minute (device, minute) a fold step marked: the next step reads the unfolded minutes after
 * it, then wraps around to the first. On PostgreSQL the minutes a step marks stay in the partial index
 * of unfolded minutes until a vacuum, so a scan from the first key walks past every minute folded
 * since (and visits each one's row): 250 ms a step after 200,000 minutes of a backlog.
 */
export type FoldCursor = readonly [deviceId: number, minute: number];

/** Unfolded minutes one fold reads at most (an hour has at most 60). */
const MAX_MINUTES = 6000;
/**
 * Hours one fold recomputes at most. Each costs a few hundred microseconds whatever it holds (its
 * readings' look-up, three sketches, its row, its share of a day's merge): sparse devices, with a
 * reading or two an hour, would otherwise make one step of thousands of hours.
 */
const MAX_HOURS = 400;
/** How long a fold step waits for a minute rollup that a write holds (under deadlock_timeout's 1 s). */
const FOLDER_LOCK_WAIT = '200ms';

/** PostgreSQL's lock_not_available: a fold step gave way to a write holding a minute rollup. */
export const LOCK_NOT_AVAILABLE = '55P03';

/** Every key of PostgreSQL's advisory locks is shared by the cluster: this one is the folder's. */
const FOLDER_LOCK = 10_010_005;

/** Where a SQLite server plans its folds: a heavy-query worker, off the event loop (heavy-queries.ts). */
export type FoldPlanner = (input: {
  maxReadings: number;
  before: EpochMs;
  after?: FoldCursor | undefined;
}) => Promise<FoldPlan>;

/**
 * One bounded step of the folder. Its plan (planFold) reads and computes; applyFold writes, in one
 * short transaction, and marks each minute folded only if it still holds the count the plan read (an
 * ingest merged into it meanwhile leaves it unfolded, for the next step). On SQLite with a `planner`,
 * the plan is made in a worker thread on its own snapshot, and only the writes run on the event loop;
 * otherwise (PostgreSQL) plan and writes share one transaction, and only the holder of the folder's
 * advisory lock folds: `undefined` when another process holds it.
 */
export async function foldRollups(
  db: Kysely<Database>,
  engine: Engine,
  maxReadings: number,
  before: EpochMs = hourUnit.floor(Date.now()),
  planner?: FoldPlanner,
  after?: FoldCursor,
): Promise<Folded | undefined> {
  const folded = (plan: FoldPlan): Folded => {
    const last = plan.marks.at(-1);
    return {
      hours: plan.levels[0]?.periods.length ?? 0,
      readings: plan.readings,
      minutes: plan.marks.length,
      next: last ? [last[0], last[1]] : undefined,
    };
  };
  if (engine === 'sqlite' && planner) {
    const plan = await planner({ maxReadings, before, after });
    if (plan.marks.length > 0) await db.transaction().execute((trx) => applyFold(trx, engine, plan));
    return folded(plan);
  }
  return db.transaction().execute(async (trx) => {
    if (engine === 'postgres') {
      const { rows } = await sql<{
        locked: boolean;
      }>`select pg_try_advisory_xact_lock(${FOLDER_LOCK}) as locked`.execute(trx);
      if (!rows[0]?.locked) return undefined;
      // The folder gives way to writes: a minute a write holds is waited for at most FOLDER_LOCK_WAIT,
      // then this step fails (LOCK_NOT_AVAILABLE) and the next tries again. Waiting on, the folder could hold a
      // minute that write needs next, and PostgreSQL would end that deadlock by rolling one of them
      // back after a second, as likely the write as the folder. On Citus the waits are the workers',
      // which take the setting only when SET LOCAL is propagated (plain PostgreSQL ignores the citus one).
      await sql`set local citus.propagate_set_commands = 'local'`.execute(trx);
      await sql`set local lock_timeout = ${sql.lit(FOLDER_LOCK_WAIT)}`.execute(trx);
      // A step lost in a crash loses its marks with its rows (one transaction): its minutes stay
      // unfolded and the next step folds them again. So its commit need not wait for the WAL's flush
      // (about 10 ms a step of a 270 ms step).
      await sql`set local synchronous_commit = off`.execute(trx);
    }
    const plan = await planFold(trx, maxReadings, before, after);
    if (plan.marks.length > 0) await applyFold(trx, engine, plan);
    return folded(plan);
  });
}

/**
 * The unfolded minutes of hours that ended before `before` (oldest device and minute first, through
 * the partial index), grouped into hours until about `maxReadings` readings or MAX_HOURS hours; each
 * hour recomputed from ITS READINGS (exact moments, a fresh sketch), its day re-merged from its hours
 * and its month from its days. Only hours that ended are folded: an hour still being written would be
 * read again, all of it, at every step, while approximate answers read it from the readings, as they
 * read the partial hours at a range's edges.
 */
export async function planFold(
  db: Kysely<Database>,
  maxReadings: number,
  before: EpochMs,
  after?: FoldCursor,
): Promise<FoldPlan> {
  const unfoldedMinutes = (from: FoldCursor | undefined) =>
    db
      .selectFrom('reading_minutes')
      .select(['device_id', 'minute', 'readings'])
      .where('folded', '=', 0)
      .where('minute', '<', before)
      .$if(from !== undefined, (query) =>
        query.where((eb) =>
          eb(eb.refTuple('device_id', 'minute'), '>', eb.tuple(from?.[0] ?? 0, from?.[1] ?? 0)),
        ),
      )
      .orderBy('device_id')
      .orderBy('minute')
      .limit(MAX_MINUTES)
      .execute();
  let minutes = await unfoldedMinutes(after);
  if (minutes.length === 0 && after !== undefined) minutes = await unfoldedMinutes(undefined);
  const hours = hoursToFold(minutes, maxReadings, minutes.length === MAX_MINUTES);
  if (hours.length === 0) return { levels: [], marks: [], readings: 0 };
  const periods = hours.map(({ device_id, start }) => ({ device_id, start }));
  const { rows, readings } = await recomputeHours(db, periods);
  const days = await remerge(db, 'reading_hours', dayUnit, periods, rows);
  const months = await remerge(db, 'reading_days', monthUnit, days.periods, days.rows);
  return {
    levels: [
      { table: 'reading_hours', periods, rows },
      { table: 'reading_days', ...days },
      { table: 'reading_months', ...months },
    ],
    marks: hours.flatMap((hour) =>
      hour.minutes.map((m): [number, number, number] => [m.device_id, m.minute, m.readings]),
    ),
    readings,
  };
}

interface Minute {
  device_id: number;
  minute: number;
  readings: number;
}

type HourToFold = Period & { minutes: Minute[] };

/**
 * The minutes grouped by device and hour, as many hours as fit `maxReadings` (at least one). When the
 * read was cut at its limit, its last hour may be missing minutes, so it waits for the next step.
 */
function hoursToFold(minutes: Minute[], maxReadings: number, cut: boolean): HourToFold[] {
  const hours: HourToFold[] = [];
  let readings = 0;
  for (const row of minutes) {
    const minute = { device_id: row.device_id, minute: Number(row.minute), readings: Number(row.readings) };
    const start = minute.minute - (((minute.minute % HOUR_MS) + HOUR_MS) % HOUR_MS);
    const last = hours.at(-1);
    if (last && last.device_id === minute.device_id && last.start === start) {
      last.minutes.push(minute);
    } else {
      if (hours.length >= MAX_HOURS || (hours.length > 0 && readings >= maxReadings)) return hours;
      hours.push({ device_id: minute.device_id, start, minutes: [minute] });
    }
    readings += minute.readings;
  }
  if (cut && hours.length > 1) hours.pop();
  return hours;
}

/** The hours recomputed from their readings, and how many readings that read. */
async function recomputeHours(
  db: Kysely<Database>,
  hours: Period[],
): Promise<{ rows: ReadingRollupsTable[]; readings: number }> {
  const rows: Array<{ device_id: number; start: number; x: number; y: number; z: number }> = [];
  for (const group of rangeGroups(
    joinAdjacent(hours.map((h) => [h.device_id, h.start, h.start + HOUR_MS])),
  )) {
    const read = await sql<{ device_id: number; created_at: number; x: number; y: number; z: number }>`
      select device_id, created_at, x, y, z from data
      where ${inRanges(sql.ref('device_id'), sql.ref('created_at'), group)}`.execute(db);
    for (const row of read.rows) rows.push({ ...row, start: hourUnit.floor(Number(row.created_at)) });
  }
  const byHour = new Map<string, { period: Period; values: Record<'x' | 'y' | 'z', number[]> }>();
  for (const row of rows) {
    const key = `${row.device_id}/${row.start}`;
    let hour = byHour.get(key);
    if (!hour) {
      hour = {
        period: { device_id: row.device_id, start: Number(row.start) },
        values: { x: [], y: [], z: [] },
      };
      byHour.set(key, hour);
    }
    for (const value of ROLLUP_VALUES) hour.values[value].push(Number(row[value]));
  }
  const stored = [...byHour.values()].flatMap(({ period, values }) => {
    const row = rollupRow(period, (summary, value) => addReadings(summary, values[value]));
    return row ? [row] : [];
  });
  return { rows: stored, readings: rows.length };
}

/**
 * The periods of `unit` holding the `children` given, each merged again from all its children: those
 * stored in `from`, with the `fresh` rows of this plan in place of the children it recomputed (a day
 * from its hours, a month from its days).
 */
async function remerge(
  db: Kysely<Database>,
  from: RollupTable,
  unit: PeriodUnit,
  children: Period[],
  fresh: ReadingRollupsTable[],
): Promise<{ periods: Period[]; rows: ReadingRollupsTable[] }> {
  const key = (deviceId: number, start: number) => `${deviceId}/${start}`;
  const parents = new Map<string, Period>();
  for (const child of children) {
    const start = unit.floor(child.start);
    parents.set(key(child.device_id, start), { device_id: child.device_id, start });
  }
  const periods = [...parents.values()];
  const rows: RollupRow[] = [];
  for (const group of rangeGroups(
    joinAdjacent(periods.map((p) => [p.device_id, p.start, unit.next(p.start)])),
  )) {
    const read = await sql<RollupRow>`
      select * from ${sql.table(from)}
      where ${inRanges(sql.ref('device_id'), sql.ref('start'), group)}`.execute(db);
    rows.push(...read.rows);
  }
  const replaced = new Set(children.map((child) => key(child.device_id, child.start)));
  const byParent = new Map<string, RollupRow[]>();
  const add = (row: RollupRow) => {
    const parent = key(row.device_id, unit.floor(Number(row.start)));
    byParent.set(parent, [...(byParent.get(parent) ?? []), row]);
  };
  for (const row of rows) if (!replaced.has(key(row.device_id, Number(row.start)))) add(row);
  for (const row of fresh) add(row);
  const merged = periods.flatMap((period) => {
    const parts = byParent.get(key(period.device_id, period.start));
    const row =
      parts &&
      rollupRow(period, (summary, value) => {
        for (const part of parts) addRollupRow(summary, part, value);
      });
    return row ? [row] : [];
  });
  return { periods, rows: merged };
}

/** One rollup row of a period, each value's summary filled by `fill`; none for a period without readings. */
function rollupRow(
  period: Period,
  fill: (summary: ValueSummary, value: RollupValue) => void,
): ReadingRollupsTable | undefined {
  const summaries: Partial<Record<RollupValue, ValueSummary>> = {};
  for (const value of ROLLUP_VALUES) {
    const summary = emptySummary();
    fill(summary, value);
    if (!summary.moments) return undefined;
    summaries[value] = summary;
  }
  const { x, y, z } = summaries as Record<RollupValue, ValueSummary>;
  return {
    device_id: period.device_id,
    start: period.start,
    readings: x.moments?.count ?? 0,
    ...summaryColumns(x, 'x'),
    ...summaryColumns(y, 'y'),
    ...summaryColumns(z, 'z'),
  };
}
