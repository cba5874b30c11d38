/**
 * npm run bench:series-hours (issue 10, item 4): an hourly series over 30 days of 1,000,000 readings
 * (10 devices), from the hourly rollups (A: buckets on UTC's hours) against the minute rollups (B: the
 * same series in Asia/Kolkata, +05:30, whose hours are not UTC's: it reads the minutes and the partial
 * minutes' readings, as every hourly series did before the hourly rollups). A and B alternate, each
 * called as the heavy-query worker calls it (readingSeries on the engine's connection), after the
 * readings are loaded with set-based SQL and folded. Answers the medians of BENCH_SERIES_RUNS (15)
 * and the median of the pairwise ratios A/B.
 *
 * Settings: BENCH_SERIES_ROWS (1,000,000), BENCH_ENGINES (sqlite; add postgres with
 * BENCH_DATABASE_URL, a server the bench may create a database on).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Kysely, sql } from 'kysely';
import { openDatabase } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrate.js';
import type { Database } from '../src/db/tables.js';
import { readingSeries } from '../src/statistics/reading-series.js';
import { foldRollups } from '../src/statistics/rollup-fold.js';
import { bucketBoundaries, parseBucket } from '../src/statistics/time-buckets.js';
import { adminQuery } from './admin.js';
import { median } from './readings.js';

const ROWS = Number(process.env.BENCH_SERIES_ROWS ?? 1_000_000);
const RUNS = Number(process.env.BENCH_SERIES_RUNS ?? 15);
const ENGINES = (process.env.BENCH_ENGINES ?? 'sqlite').split(',');
const DEVICES = 10;
const DAYS = 30;
const HOUR_MS = 3_600_000;
// Ends at a whole hour in the past, so that every hour can be folded.
const END = Math.floor(Date.now() / HOUR_MS) * HOUR_MS - HOUR_MS;
const START = END - DAYS * 86_400_000;

const log = (line: string) => console.log(`[bench:series-hours] ${line}`);

async function load(db: Kysely<Database>, engine: 'sqlite' | 'postgres'): Promise<void> {
  const perDevice = Math.ceil(ROWS / DEVICES);
  const step = Math.floor((END - START) / perDevice);
  const series =
    engine === 'sqlite'
      ? sql`with recursive n(i) as (select 0 union all select i + 1 from n where i < ${perDevice - 1}) select i from n`
      : sql`select generate_series(cast(0 as bigint), cast(${perDevice - 1} as bigint)) as i`;
  for (let d = 1; d <= DEVICES; d++) {
    await sql`insert into devices (id, name, created_at) values (${d}, ${`bench ${d}`}, ${START})`.execute(
      db,
    );
    await sql`insert into data (device_id, x, y, z, created_at)
      select ${d}, ((n.i * 7919 + ${d * 104_729}) % 1000) / 10.0, ((n.i * 31) % 100) / 7.0, n.i % 13,
        ${START} + n.i * ${step} + ${d * 97}
      from (${series}) as n`.execute(db);
    await sql`insert into reading_minutes (device_id, minute, readings, x_min, x_max, x_sum, y_min, y_max, y_sum, z_min, z_max, z_sum)
      select device_id, created_at - created_at % 60000, count(*), min(x), max(x), sum(x), min(y), max(y), sum(y), min(z), max(z), sum(z)
      from data where device_id = ${d} group by 1, 2`.execute(db);
  }
  for (;;) {
    const folded = await foldRollups(db, engine, 100_000, END + HOUR_MS);
    if (!folded || folded.minutes === 0) break;
  }
  if (engine === 'postgres') await sql`analyze`.execute(db);
}

async function benchEngine(engine: 'sqlite' | 'postgres'): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'wt-series-bench-'));
  const adminUrl = process.env.BENCH_DATABASE_URL;
  let url = `sqlite:${join(work, 'series.db')}`;
  if (engine === 'postgres') {
    if (!adminUrl) throw new Error('BENCH_DATABASE_URL is needed for postgres');
    await adminQuery(adminUrl, 'drop database if exists wt_series_bench with (force)');
    await adminQuery(adminUrl, 'create database wt_series_bench');
    const admin = new URL(adminUrl);
    admin.pathname = '/wt_series_bench';
    url = admin.toString();
  }
  const opened = openDatabase(url, 'tool');
  try {
    await migrateToLatest(opened.db);
    const began = performance.now();
    await load(opened.db, engine);
    log(
      `${engine}: ${ROWS} readings loaded and folded in ${((performance.now() - began) / 1000).toFixed(1)} s`,
    );
    const hour = parseBucket('1h');
    if (!hour) throw new Error('1h');
    // The dashboard's 30 days: ragged ends (mid-minute), all three values.
    const start = START + 123_457;
    const end = END - 654_321;
    const selection = { start, end, attrs: ['x', 'y', 'z'] as const, withMedian: false };
    const run = async (zone: string) => {
      const boundaries = bucketBoundaries(hour, zone, start, end, 10_000) as number[];
      const t0 = performance.now();
      const rows = await readingSeries(
        opened.db,
        engine,
        { ...selection, attrs: [...selection.attrs] },
        boundaries,
      );
      const ms = performance.now() - t0;
      return { ms, readings: rows.reduce((sum, row) => sum + row.count, 0) };
    };
    const a: number[] = [];
    const b: number[] = [];
    const ratios: number[] = [];
    await run('UTC');
    await run('Asia/Kolkata');
    for (let i = 0; i < RUNS; i++) {
      const hours = await run('UTC');
      const minutes = await run('Asia/Kolkata');
      if (hours.readings !== minutes.readings)
        throw new Error(`${hours.readings} != ${minutes.readings} readings`);
      a.push(hours.ms);
      b.push(minutes.ms);
      ratios.push(hours.ms / minutes.ms);
    }
    log(
      `${engine}: 1h buckets over ${DAYS} days, x,y,z: A hours ${median(a).toFixed(1)} ms, ` +
        `B minutes ${median(b).toFixed(1)} ms (medians of ${RUNS}, alternating); A/B ${median(ratios).toFixed(3)}`,
    );
  } finally {
    await opened.close();
    rmSync(work, { recursive: true, force: true });
    if (engine === 'postgres' && adminUrl)
      await adminQuery(adminUrl, 'drop database if exists wt_series_bench with (force)');
  }
}

for (const engine of ENGINES) await benchEngine(engine as 'sqlite' | 'postgres');
