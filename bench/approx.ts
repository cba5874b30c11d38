/**
 * npm run bench:approx (issue 10, accuracy=approx): a year of readings of 10 devices made with
 * set-based SQL (not through HTTP) in a fresh database, then the real server started on it with the
 * folder on, and measured:
 * - the folder's throughput on that backlog (readings folded per second, from the server's own
 *   start to the last unfolded minute), and /health's latency (p50, p99, max) polled meanwhile;
 * - accuracy=approx, attr=all&percentiles=5,25,75,95,99, one device and all devices, over the whole
 *   year and over a ragged range (median ms of BENCH_APPROX_REQUESTS, default 15);
 * - the approximate percentiles of one device's ragged range against the exact ones (same run).
 *
 * Settings: BENCH_APPROX_ROWS (10,000,000), BENCH_ENGINES (sqlite; add postgres with
 * BENCH_DATABASE_URL, a server the bench may create a database on), BENCH_APPROX_SQLITE_FILE (a
 * SQLite file: loaded and kept when it does not exist, else measured again as an earlier run left it),
 * BENCH_APPROX_KEEP_POSTGRES=1 (the PostgreSQL database wt_approx_bench is kept).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type Kysely, sql } from 'kysely';
import { openDatabase } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrate.js';
import type { Database } from '../src/db/tables.js';
import { adminQuery } from './admin.js';
import { timedGet } from './api.js';
import { freePort, startChild, stopChild, waitUntilReady } from './processes.js';
import { median } from './readings.js';

const root = resolve(fileURLToPath(import.meta.url), '../..');
const ROWS = Number(process.env.BENCH_APPROX_ROWS ?? 10_000_000);
const REQUESTS = Number(process.env.BENCH_APPROX_REQUESTS ?? 15);
const ENGINES = (process.env.BENCH_ENGINES ?? 'sqlite').split(',');
/** BENCH_APPROX_KEEP_POSTGRES=1: the PostgreSQL database is left for a closer look (drop it afterwards). */
const KEEP_POSTGRES = process.env.BENCH_APPROX_KEEP_POSTGRES === '1';
const DEVICES = 10;
const YEAR_MS = 365 * 86_400_000;
const START = Date.UTC(2025, 0, 1);
const PERCENTILES = [5, 25, 75, 95, 99];

const log = (line: string) => console.log(`[bench:approx] ${line}`);

/** The readings, made by the database itself: x a daily cycle with noise (negative at night), y, z noise. */
async function load(db: Kysely<Database>, engine: 'sqlite' | 'postgres'): Promise<void> {
  const perDevice = Math.ceil(ROWS / DEVICES);
  const step = Math.floor(YEAR_MS / perDevice);
  for (let d = 1; d <= DEVICES; d++) {
    await sql`insert into devices (id, name, created_at) values (${d}, ${`bench ${d}`}, ${START})`.execute(
      db,
    );
  }
  const series =
    engine === 'sqlite'
      ? sql`with recursive n(i) as (select 0 union all select i + 1 from n where i < ${perDevice - 1}) select i from n`
      : sql`select generate_series(cast(0 as bigint), cast(${perDevice - 1} as bigint)) as i`;
  // A cheap hash of i and the device for noise, the same on both engines.
  const noise = (salt: number) => sql`(((n.i * 7919 + d.id * ${salt}) % 1000) / 100.0)`;
  const x = sql`round(cast(10 * sin(2 * 3.14159265 * (n.i % 2880) / 2880.0) + ${noise(104_729)} - 5 as numeric), 2)`;
  for (let d = 1; d <= DEVICES; d++) {
    await sql`insert into data (device_id, x, y, z, created_at)
      select d.id, ${engine === 'postgres' ? sql`${x}::float8` : sql`round(10 * sin(2 * 3.14159265 * (n.i % 2880) / 2880.0) + ${noise(104_729)} - 5, 2)`},
        40 + ${noise(31)} * 3, 1000 + ${noise(17)} * 2, ${START} + n.i * ${step} + d.id * 997
      from (${series}) as n cross join devices as d where d.id = ${d}`.execute(db);
    log(`  device ${d}: ${perDevice.toLocaleString('en-US')} readings`);
  }
  // One device per statement, each well within the driver's 25 s limit on any answer.
  for (let d = 1; d <= DEVICES; d++) {
    await sql`insert into reading_minutes (device_id, minute, readings, x_min, x_max, x_sum, y_min, y_max, y_sum, z_min, z_max, z_sum)
      select device_id, created_at - created_at % 60000, count(*), min(x), max(x), sum(x), min(y), max(y), sum(y), min(z), max(z), sum(z)
      from data where device_id = ${d} group by 1, 2`.execute(db);
  }
  if (engine === 'postgres') await sql`analyze`.execute(db);
}

async function unfolded(db: Kysely<Database>): Promise<number> {
  const row = await db
    .selectFrom('reading_minutes')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('folded', '=', 0)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

const percentileOf = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
};

async function benchEngine(engine: 'sqlite' | 'postgres'): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'bench-approx-'));
  const adminUrl = process.env.BENCH_DATABASE_URL;
  const kept = engine === 'sqlite' ? process.env.BENCH_APPROX_SQLITE_FILE : undefined;
  // A kept file that exists was loaded and folded by an earlier run; one that does not is loaded now and kept.
  const reused = kept !== undefined && existsSync(kept);
  let databaseUrl = `sqlite:${kept ?? join(work, 'approx.db')}`;
  if (engine === 'postgres') {
    if (!adminUrl) throw new Error('BENCH_DATABASE_URL is needed for postgres');
    await adminQuery(adminUrl, 'drop database if exists wt_approx_bench with (force)');
    await adminQuery(adminUrl, 'create database wt_approx_bench');
    const url = new URL(adminUrl);
    url.pathname = '/wt_approx_bench';
    databaseUrl = url.toString();
  }
  const opened = openDatabase(databaseUrl, 'tool');
  try {
    await migrateToLatest(opened.db);
    let began = performance.now();
    if (!reused) {
      log(
        `${engine}: loading ${ROWS.toLocaleString('en-US')} readings of ${DEVICES} devices over a year (SQL)`,
      );
      await load(opened.db, engine);
      const seconds = ((performance.now() - began) / 1000).toFixed(1);
      log(`${engine}: loaded in ${seconds} s; ${await unfolded(opened.db)} minutes to fold`);
    }
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const child = startChild(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve'], {
      cwd: root,
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl,
        PORT: String(port),
        DATA_DIR: work,
        LOG_LEVEL: 'warn',
        ROLLUP_FOLD_INTERVAL_MS: '1000',
        STATISTICS_TIMEOUT_MS: '600000',
      },
    });
    try {
      began = performance.now();
      await waitUntilReady(`${base}/health`, child, 120_000);
      const health: number[] = [];
      let left = await unfolded(opened.db);
      const backlog = left > 0;
      while (left > 0) {
        for (let i = 0; i < 50; i++) {
          health.push((await timedGet(`${base}/health`)).ms);
          await sleep(10);
        }
        left = await unfolded(opened.db);
      }
      const seconds = (performance.now() - began) / 1000;
      if (backlog)
        log(
          `${engine}: folded ${ROWS.toLocaleString('en-US')} readings in ${seconds.toFixed(1)} s = ` +
            `${Math.round(ROWS / seconds).toLocaleString('en-US')} readings/s; /health meanwhile (${health.length} requests): ` +
            `p50 ${percentileOf(health, 50).toFixed(1)} ms, p99 ${percentileOf(health, 99).toFixed(1)} ms, max ${Math.max(...health).toFixed(1)} ms`,
        );
      // As autovacuum would after the backlog: statistics that say most minutes are folded, so that
      // the planner reads the few unfolded ones through their partial index.
      if (engine === 'postgres') await sql`analyze reading_minutes`.execute(opened.db);
      const ragged = `start_date=${new Date(START + 17 * 86_400_000 + 3 * 3_600_000 + 7 * 60_000 + 13_000).toISOString()}&end_date=${new Date(START + YEAR_MS - 11 * 86_400_000 - 5 * 3_600_000 - 123_456).toISOString()}`;
      const scenarios = [
        ['all devices, the year', ''],
        ['one device, the year', 'device_id=3'],
        ['all devices, ragged range', ragged],
        ['one device, ragged range', `device_id=3&${ragged}`],
      ] as const;
      for (const [label, filter] of scenarios) {
        const url = `${base}/analyze_statistics/?attr=all&percentiles=${PERCENTILES.join(',')}&accuracy=approx&${filter}`;
        const times: number[] = [];
        for (let i = 0; i < REQUESTS; i++) times.push((await timedGet(url)).ms);
        log(
          `${engine}: approx ${label}: median ${median(times).toFixed(1)} ms (min ${Math.min(...times).toFixed(1)}, max ${Math.max(...times).toFixed(1)}, ${REQUESTS} requests)`,
        );
      }
      const check = `attr=x&percentiles=${PERCENTILES.join(',')}&device_id=3&${ragged}`;
      const approx = (await timedGet(`${base}/analyze_statistics/?${check}&accuracy=approx`)).body as Record<
        string,
        unknown
      >;
      const exact = await timedGet(`${base}/analyze_statistics/?${check}`);
      const exactBody = exact.body as Record<string, unknown>;
      const relative = (a: number, e: number) => (a === e ? 0 : Math.abs(a - e) / Math.abs(e));
      const worst = PERCENTILES.map((p) =>
        relative(
          (approx.percentiles as Record<string, number>)[String(p)] as number,
          (exactBody.percentiles as Record<string, number>)[String(p)] as number,
        ),
      );
      log(
        `${engine}: one device ragged, x: exact path ${exact.ms.toFixed(0)} ms; count ${approx.count} vs ${exactBody.count}, ` +
          `variance ${approx.variance} vs ${exactBody.variance}; worst relative error of median and percentiles ` +
          `${Math.max(relative(approx.median as number, exactBody.median as number), ...worst).toFixed(5)} (bound ${approx.relative_error})`,
      );
    } finally {
      await stopChild(child);
    }
  } finally {
    await opened.close();
    rmSync(work, { recursive: true, force: true });
    if (engine === 'postgres' && adminUrl && !KEEP_POSTGRES)
      await adminQuery(adminUrl, 'drop database if exists wt_approx_bench with (force)');
  }
}

for (const engine of ENGINES) await benchEngine(engine as 'sqlite' | 'postgres');
