import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kysely, Selectable } from 'kysely';
import { openDatabase } from '../../src/db/database.js';
import { type Engine, engineOf } from '../../src/db/dialect.js';
import type { Database, ReadingMinutesTable } from '../../src/db/tables.js';
import { type FoldCursor, foldRollups } from '../../src/statistics/rollup-fold.js';

/**
 * The invariant every write path must keep: `reading_minutes` holds exactly the per-device, per-UTC-
 * minute rollups that the rows of `data` imply, no more and no fewer. The reference is recomputed
 * here in plain JS from the readings, independently of the SQL that maintains the rollups.
 */

const MINUTE = 60_000;
const VALUES = ['x', 'y', 'z'] as const;

interface Reference {
  readings: number;
  min: number[];
  max: number[];
  values: number[][];
}

/** Neumaier's compensated sum: the exact sum to about one rounding, whatever the order. */
function accurateSum(values: number[]): number {
  let sum = 0;
  let compensation = 0;
  for (const v of values) {
    const t = sum + v;
    compensation += Math.abs(sum) >= Math.abs(v) ? sum - t + v : v - t + sum;
    sum = t;
  }
  return sum + compensation;
}

/** The rollups `data` implies, keyed `device/minute`. */
async function expectedRollups(db: Kysely<Database>): Promise<Map<string, Reference>> {
  const readings = await db.selectFrom('data').select(['device_id', 'created_at', 'x', 'y', 'z']).execute();
  const expected = new Map<string, Reference>();
  for (const reading of readings) {
    const at = Number(reading.created_at);
    const key = `${reading.device_id}/${at - (((at % MINUTE) + MINUTE) % MINUTE)}`;
    let reference = expected.get(key);
    if (!reference) {
      reference = {
        readings: 0,
        min: VALUES.map((v) => reading[v]),
        max: VALUES.map((v) => reading[v]),
        values: [[], [], []],
      };
      expected.set(key, reference);
    }
    reference.readings++;
    VALUES.forEach((v, i) => {
      const value = reading[v];
      const r = reference as Reference;
      r.min[i] = Math.min(r.min[i] as number, value);
      r.max[i] = Math.max(r.max[i] as number, value);
      r.values[i]?.push(value);
    });
  }
  return expected;
}

const SCALE = 2 ** 64;

/**
 * Why a stored sum is not the readings' sum, or null when it is. An engine adds in its own order, so a
 * sum may differ from the exact one by rounding (1e-12 of the magnitudes). Where the magnitudes
 * overflow, a partial sum may have overflowed too: the sum may then also be unknown (null on SQLite,
 * ±Infinity or NaN on PostgreSQL), which the series reads as "no mean"; a wrong finite sum never passes.
 */
function sumMismatch(stored: number | null, values: number[]): string | null {
  const magnitude = accurateSum(values.map(Math.abs));
  const unknown = stored === null || !Number.isFinite(stored);
  if (Number.isFinite(magnitude)) {
    const exact = accurateSum(values);
    if (unknown) return `sum ${stored}, want ${exact}`;
    return Math.abs(stored - exact) <= 1e-12 * magnitude ? null : `sum ${stored}, want ${exact}`;
  }
  // Scaled down by 2^64 (exact at these magnitudes), so that no partial sum of the reference overflows.
  const exact = accurateSum(values.map((v) => v / SCALE)) * SCALE;
  if (unknown) return null;
  if (!Number.isFinite(exact))
    return `sum ${stored}, want unknown (the exact sum is beyond the double range)`;
  return Math.abs(stored - exact) <= 1e-12 * Number.MAX_VALUE ? null : `sum ${stored}, want ${exact}`;
}

/** Every way `reading_minutes` differs from what the readings imply (empty when they agree). */
export async function rollupMismatches(db: Kysely<Database>): Promise<string[]> {
  const expected = await expectedRollups(db);
  const stored = await db.selectFrom('reading_minutes').selectAll().execute();
  const found: string[] = [];
  const seen = new Set<string>();
  for (const row of stored) {
    const key = `${row.device_id}/${Number(row.minute)}`;
    seen.add(key);
    const reference = expected.get(key);
    const where = `device ${row.device_id}, minute ${new Date(Number(row.minute)).toISOString()}`;
    if (!reference) {
      found.push(`${where}: a rollup of ${row.readings} readings that are not stored`);
      continue;
    }
    if (Number(row.readings) !== reference.readings) {
      found.push(`${where}: ${row.readings} readings, want ${reference.readings}`);
    }
    VALUES.forEach((v, i) => {
      const problems = [
        row[`${v}_min`] === reference.min[i] ? null : `min ${row[`${v}_min`]}, want ${reference.min[i]}`,
        row[`${v}_max`] === reference.max[i] ? null : `max ${row[`${v}_max`]}, want ${reference.max[i]}`,
        sumMismatch(row[`${v}_sum`], reference.values[i] as number[]),
      ];
      for (const problem of problems) if (problem) found.push(`${where}, ${v}: ${problem}`);
    });
  }
  for (const [key, reference] of expected) {
    if (!seen.has(key)) found.push(`device/minute ${key}: ${reference.readings} readings without a rollup`);
  }
  found.push(...(await totalMismatches(db, stored)));
  return found;
}

/**
 * SQLite: how the device totals (migration 0008, kept by triggers) differ from the sum and the last
 * minute of each device's stored minutes, computed here in JS.
 */
async function totalMismatches(
  db: Kysely<Database>,
  minutes: { device_id: number; minute: number; readings: number }[],
): Promise<string[]> {
  if (engineOf(db) !== 'sqlite') return [];
  const want = new Map<number, { readings: number; last_minute: number }>();
  for (const { device_id, minute, readings } of minutes) {
    const total = want.get(device_id) ?? { readings: 0, last_minute: Number.NEGATIVE_INFINITY };
    want.set(device_id, {
      readings: total.readings + Number(readings),
      last_minute: Math.max(total.last_minute, Number(minute)),
    });
  }
  const found: string[] = [];
  const totals = await db.selectFrom('device_reading_totals').selectAll().execute();
  for (const row of totals) {
    const total = want.get(row.device_id);
    want.delete(row.device_id);
    const inLast = minutes.find(
      (m) => m.device_id === row.device_id && Number(m.minute) === Number(row.last_minute),
    );
    const have = {
      readings: Number(row.readings_before) + Number(inLast?.readings ?? Number.NaN),
      last_minute: Number(row.last_minute),
    };
    if (!total || total.readings !== have.readings || total.last_minute !== have.last_minute)
      found.push(
        `device ${row.device_id}: totals ${JSON.stringify(have)}, want ${JSON.stringify(total ?? null)}`,
      );
  }
  for (const [device] of want) found.push(`device ${device}: minutes without totals`);
  return found;
}

/** Fails, listing the first differences, unless `reading_minutes` agrees with the readings. */
export async function assertRollupsMatchReadings(db: Kysely<Database>, context = ''): Promise<void> {
  const found = await rollupMismatches(db);
  assert.ok(
    found.length === 0,
    `${context ? `${context}: ` : ''}the rollups differ from the readings in ${found.length} places:\n` +
      found.slice(0, 10).join('\n'),
  );
}

/** The same, for the database at `url` (a service's, opened on its own connection). */
export async function assertRollupsMatchReadingsAt(url: string, context = ''): Promise<void> {
  const { db } = openDatabase(url);
  try {
    await assertRollupsMatchReadings(db, context);
  } finally {
    await db.destroy();
  }
}

/**
 * A minute rollup without `folded`: what the readings define, not the mark the rollup folder sets in
 * the background (tests that compare rollups before and after something compare these).
 */
export const rollupValues = ({ folded: _folded, ...minute }: Selectable<ReadingMinutesTable>) => minute;

/**
 * Folds in steps until nothing is left, each step after the last one's cursor (the first after
 * `from`), as the folder does.
 * While the app's own folder holds the folding lock (PostgreSQL), it waits for its step to end and
 * goes on: that step may have passed the minutes a test waits for.
 */
export async function foldAll(
  { db, engine }: { db: Kysely<Database>; engine: Engine },
  maxReadings = 5000,
  from?: FoldCursor,
): Promise<void> {
  let after = from;
  const giveUpAt = Date.now() + 30_000;
  for (;;) {
    const folded = await foldRollups(db, engine, maxReadings, undefined, undefined, after);
    if (folded === undefined) {
      if (Date.now() > giveUpAt) throw new Error('another folder held the folding lock for 30 s');
      await sleep(50);
      continue;
    }
    if (folded.hours === 0) return;
    after = folded.next;
  }
}

/** How many minute rollups the folder has yet to fold. */
export async function unfoldedMinutes({ db }: { db: Kysely<Database> }): Promise<number> {
  const row = await db
    .selectFrom('reading_minutes')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('folded', '=', 0)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
