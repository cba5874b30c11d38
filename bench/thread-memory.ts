/**
 * What STATISTICS_THREAD_MEMORY_MB each heavy query needs: BENCH_ROWS (1M) readings bulk-loaded into a
 * fresh SQLite file (one a 2.6 s apart over 30 days, minute rollups rebuilt, not folded), then each task
 * run twice on one heavy-query thread (heavy-worker.ts, under tsx) at each old-generation limit of
 * BENCH_THREAD_MEMORY_LIMITS (MB): `ok`, or how it failed (ERR_WORKER_OUT_OF_MEMORY at the limit).
 * BENCH_THREAD_MEMORY_DIR reuses a directory an earlier run loaded. One thread, no server: light on a
 * shared machine.
 */
import { mkdtempSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import { openDatabase } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { sqliteEngine } from './sqlite.js';

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const LIMITS = (process.env.BENCH_THREAD_MEMORY_LIMITS ?? '16,32,64,128').split(',').map(Number);
const MINUTE = 60_000;

const reused = process.env.BENCH_THREAD_MEMORY_DIR;
const dir = reused ?? mkdtempSync(join(tmpdir(), 'bench-thread-memory-'));
const path = join(dir, 'readings.db');
if (!reused) {
  const opened = openDatabase(`sqlite:${path}`, 'server');
  await migrateToLatest(opened.db);
  await opened.db
    .insertInto('devices')
    .values({ id: 1, name: 'bench', user_id: null, created_at: Date.now() })
    .execute();
  await opened.close();
  const raw = sqliteEngine(path);
  const loaded = await raw.bulkLoad(1, ROWS);
  await raw.close();
  console.log(`${ROWS} readings loaded in ${loaded.seconds.toFixed(1)} s into ${dir}`);
}

const from = Date.now() - 30 * 86_400_000;
const minutes = (buckets: number) => Array.from({ length: buckets + 1 }, (_, i) => from + i * MINUTE);
const everything = { attrs: ['x', 'y', 'z'], percentiles: [5, 25, 75, 95, 99], groupByDevice: false };
const tasks = {
  'exact statistics, x,y,z, 5 percentiles': { name: 'statistics', input: everything },
  'approx statistics, x,y,z, 5 percentiles': { name: 'approxStatistics', input: everything },
  'series, 10,000 minutes of x,y,z with medians': {
    name: 'series',
    input: {
      selection: { deviceId: 1, attrs: ['x', 'y', 'z'], withMedian: true },
      boundaries: minutes(10_000),
    },
  },
  'series, 43,200 minutes of x,y,z': {
    name: 'series',
    input: {
      selection: { deviceId: 1, attrs: ['x', 'y', 'z'], withMedian: false },
      boundaries: minutes(43_200),
    },
  },
  "the folder's plan, 5,000 readings": { name: 'foldPlan', input: { maxReadings: 5000, before: Date.now() } },
};

for (const [label, task] of Object.entries(tasks)) {
  for (const limit of LIMITS) {
    const pool = new Piscina({
      filename: new URL('../src/statistics/heavy-worker.ts', import.meta.url).href,
      minThreads: 1,
      maxThreads: 1,
      // As sqliteWorkers (src/statistics/heavy-runner.ts) sets them.
      resourceLimits: { maxYoungGenerationSizeMb: 8, maxOldGenerationSizeMb: limit },
      workerData: { path },
    });
    pool.on('error', () => {});
    const began = performance.now();
    let outcome = 'ok';
    try {
      await pool.run(task);
      await pool.run(task);
    } catch (error) {
      outcome = String((error as { code?: string }).code ?? (error as Error).message);
    }
    const ms = (performance.now() - began).toFixed(0);
    console.log(`${label} at ${limit} MB: ${outcome} (${ms} ms, load ${loadavg()[0]?.toFixed(1)})`);
    await pool.destroy();
  }
}
