/**
 * npm run bench:sparse (issue 10): batched ingest of sparse devices, with every rollup kept.
 * BENCH_SPARSE_ROWS readings (1,000,000) of 10 devices spread over the past year (a reading every
 * ~5 minutes per device, so nearly every reading starts a minute rollup row of its own), sent to the
 * real server (folder on) as 10,000-reading JSON batches with their `timestamp`, oldest first,
 * BENCH_SPARSE_CONNECTIONS (2) requests at a time. Answers readings/s from the first request to the
 * last answer, and checks what was stored (readings and the minute rollups' count) afterwards. Then,
 * as the same-run ceiling, the same batches without `timestamp` (the server's time: the readings of a
 * batch share a few minute rollups) on a second fresh database. After the sparse load it also times
 * the folder's catching up (what pacing it while ingest is busy costs the hour, day and month
 * rollups' freshness): the ended minutes still unfolded when the last batch is stored, and how long
 * until none is.
 *
 * Settings: BENCH_ENGINES (sqlite; add postgres with BENCH_DATABASE_URL, a server the bench may
 * create a database on, named BENCH_SPARSE_DATABASE, bench_sparse by default), BENCH_SPARSE_ROWS,
 * BENCH_SPARSE_CONNECTIONS, BENCH_SPARSE_CATCH_UP_MS (how long the catching up is watched, 600,000),
 * BENCH_SPARSE_CPU_PROF (a directory for the servers' CPU profiles).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { openDatabase } from '../src/db/database.js';
import { adminQuery } from './admin.js';
import { createDevice } from './api.js';
import { freePort, serverEnvironment, startChild, stopChild, waitUntilReady } from './processes.js';
import { prng } from './readings.js';

const root = resolve(fileURLToPath(import.meta.url), '../..');
const ROWS = Number(process.env.BENCH_SPARSE_ROWS ?? 1_000_000);
const CONNECTIONS = Number(process.env.BENCH_SPARSE_CONNECTIONS ?? 2);
const ENGINES = (process.env.BENCH_ENGINES ?? 'sqlite').split(',');
const DEVICES = 10;
const BATCH = 10_000;
const YEAR_MS = 365 * 86_400_000;
/** The whole load must finish in this time (a bound on the loop, not a goal). */
const LIMIT_MS = 300_000;
/** The folder's catching up is watched for at most this long. */
const CATCH_UP_LIMIT_MS = Number(process.env.BENCH_SPARSE_CATCH_UP_MS ?? 600_000);
const DATABASE = process.env.BENCH_SPARSE_DATABASE ?? 'bench_sparse';
const HOUR_MS = 3_600_000;
/** With BENCH_SPARSE_CPU_PROF=DIR each server writes a CPU profile there (`tsx bench/cpu-profile.ts FILE` sums it up). */
const PROFILE_DIR = process.env.BENCH_SPARSE_CPU_PROF;

const log = (line: string) => console.log(`[bench:sparse] ${line}`);

/**
 * The batches' JSON bodies, made before the clock starts: readings in time order, the devices
 * interleaved, each device's step about 5 minutes with up to ±30 s of jitter.
 */
function bodies(deviceIds: number[], end: number, timed: boolean): string[] {
  const random = prng(7);
  const step = Math.floor(YEAR_MS / Math.ceil(ROWS / DEVICES));
  const start = end - YEAR_MS;
  const out: string[] = [];
  let batch: unknown[] = [];
  for (let i = 0; i < ROWS; i++) {
    const tick = Math.floor(i / DEVICES);
    const device = deviceIds[i % DEVICES] as number;
    const at = start + tick * step + Math.floor((random() - 0.5) * 60_000);
    batch.push({
      device_id: device,
      x: Math.round((random() * 40 - 20) * 100) / 100,
      y: Math.round(random() * 1000) / 10,
      z: Math.round(random() * 5000) / 100,
      ...(timed ? { timestamp: new Date(at).toISOString() } : {}),
    });
    if (batch.length === BATCH || i === ROWS - 1) {
      out.push(JSON.stringify(batch));
      batch = [];
    }
  }
  return out;
}

async function benchEngine(engine: 'sqlite' | 'postgres', timed: boolean): Promise<number> {
  const work = mkdtempSync(join(tmpdir(), 'bench-sparse-'));
  const adminUrl = process.env.BENCH_DATABASE_URL;
  let databaseUrl = `sqlite:${join(work, 'sparse.db')}`;
  if (engine === 'postgres') {
    if (!adminUrl) throw new Error('BENCH_DATABASE_URL is needed for postgres');
    await adminQuery(adminUrl, `drop database if exists ${DATABASE} with (force)`);
    await adminQuery(adminUrl, `create database ${DATABASE}`);
    const url = new URL(adminUrl);
    url.pathname = `/${DATABASE}`;
    databaseUrl = url.toString();
  }
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const profile = PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR] : [];
  const child = startChild(process.execPath, [...profile, '--import', 'tsx', 'src/cli/main.ts', 'serve'], {
    cwd: root,
    env: serverEnvironment(databaseUrl, port, work),
  });
  try {
    await waitUntilReady(`${base}/ready`, child, 60_000);
    const deviceIds: number[] = [];
    for (let d = 0; d < DEVICES; d++) deviceIds.push(await createDevice(base));
    const queue = bodies(deviceIds, Date.now() - 3_600_000, timed);
    const began = performance.now();
    let next = 0;
    let stored = 0;
    const send = async () => {
      while (next < queue.length && performance.now() - began < LIMIT_MS) {
        const body = queue[next++] as string;
        const response = await fetch(`${base}/data/`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        const text = await response.text();
        if (response.status !== 200)
          throw new Error(`a batch answered ${response.status}: ${text.slice(0, 300)}`);
        stored += (JSON.parse(text) as { stored: number }).stored;
      }
    };
    await Promise.all(Array.from({ length: CONNECTIONS }, send));
    const seconds = (performance.now() - began) / 1000;
    const opened = openDatabase(databaseUrl, 'tool');
    try {
      const counted = await sql<{ readings: number; minutes: number; rolled: number }>`
        select (select count(*) from data) as readings, (select count(*) from reading_minutes) as minutes,
          (select sum(readings) from reading_minutes) as rolled`.execute(opened.db);
      const row = counted.rows[0];
      log(
        `${engine}, ${timed ? 'spread over a year' : "at the server's time"}: ${stored.toLocaleString('en-US')} readings in ${queue.length} batches of ${BATCH.toLocaleString('en-US')}, ` +
          `${CONNECTIONS} at a time: ${seconds.toFixed(1)} s = ${Math.round(stored / seconds).toLocaleString('en-US')} readings/s; ` +
          `stored ${Number(row?.readings).toLocaleString('en-US')} readings, ${Number(row?.minutes).toLocaleString('en-US')} minute rollups ` +
          `holding ${Number(row?.rolled).toLocaleString('en-US')}`,
      );
      if (timed) {
        // The minutes of ended hours are the folder's to fold: count them until none is left.
        const unfolded = async () => {
          const before = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
          const { rows } = await sql<{ n: number }>`
            select count(*) as n from reading_minutes where folded = 0 and minute < ${before}`.execute(
            opened.db,
          );
          return Number(rows[0]?.n);
        };
        const backlog = await unfolded();
        const watching = performance.now();
        let left = backlog;
        while (left > 0 && performance.now() - watching < CATCH_UP_LIMIT_MS) {
          await new Promise((resolve) => setTimeout(resolve, 250));
          left = await unfolded();
        }
        const caughtUp = ((performance.now() - watching) / 1000).toFixed(1);
        log(
          `${engine}, the folder: ${backlog.toLocaleString('en-US')} ended minutes unfolded when the last batch was stored; ` +
            (left === 0
              ? `all folded ${caughtUp} s later`
              : `${left.toLocaleString('en-US')} still unfolded after ${caughtUp} s`),
        );
      }
      return stored / seconds;
    } finally {
      await opened.close();
    }
  } finally {
    await stopChild(child);
    rmSync(work, { recursive: true, force: true });
    if (engine === 'postgres' && adminUrl)
      await adminQuery(adminUrl, `drop database if exists ${DATABASE} with (force)`);
  }
}

for (const engine of ENGINES as Array<'sqlite' | 'postgres'>) {
  const sparse = await benchEngine(engine, true);
  const ceiling = await benchEngine(engine, false);
  log(`${engine}: sparse / server's time = ${(sparse / ceiling).toFixed(2)}`);
}
