/**
 * npm run bench:workers: single-reading ingest (POST /data/, one reading a request) on PostgreSQL with
 * `statistics serve --workers 1` and `--workers 2`, alternated over BENCH_ROUNDS (3) rounds, each on a
 * fresh database, each run BENCH_SECONDS (10) of wrk after BENCH_WARMUP_SECONDS (2). Prints the
 * median requests/s and p99 of each, and the ratio. Needs BENCH_DATABASE_URL (a PostgreSQL server the
 * bench may create databases on) and a build (`npm run build`, which this script runs first).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { adminQuery } from './admin.js';
import { createDevice } from './api.js';
import {
  freePort,
  runVisible,
  serverEnvironment,
  startChild,
  stopAllChildren,
  stopChild,
  waitUntilReady,
} from './processes.js';
import { checkWrk, runWrk, writeWrkScript } from './wrk.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const adminUrl = process.env.BENCH_DATABASE_URL;
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const warmupSeconds = Number(process.env.BENCH_WARMUP_SECONDS ?? 2);
const CONNECTIONS = 32;
const THREADS = 2;

const admin = (text: string) => adminQuery(adminUrl as string, text);

async function oneRun(workers: number, dir: string): Promise<{ rps: number; p99: number }> {
  const name = `statistics_bench_workers_${process.pid}_${workers}`;
  await admin(`drop database if exists ${name} with (force)`);
  await admin(`create database ${name}`);
  const url = new URL(adminUrl as string);
  url.pathname = `/${name}`;
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = startChild(
    process.execPath,
    [join('dist', 'src', 'cli', 'main.js'), 'serve', '--workers', String(workers)],
    {
      cwd: ROOT,
      env: serverEnvironment(url.toString(), port, dir),
    },
  );
  try {
    await waitUntilReady(`${base}/ready`, child);
    // The second process starts beside the first: give it time to be ready too.
    await sleep(5000);
    const device = await createDevice(base);
    const body = JSON.stringify({ device_id: device, x: 1.5, y: 2.5, z: 3.5 });
    const script = writeWrkScript(dir, `single-${workers}`, body);
    const target = `${base}/data/`;
    await runWrk({
      url: target,
      script,
      connections: CONNECTIONS,
      threads: THREADS,
      seconds: warmupSeconds,
      cwd: ROOT,
    });
    const result = await runWrk({
      url: target,
      script,
      connections: CONNECTIONS,
      threads: THREADS,
      seconds,
      cwd: ROOT,
    });
    if (result.non2xx > 0) throw new Error(`${result.non2xx} answers were errors`);
    return { rps: result.requestsPerSecond, p99: result.latencyMs.p99 };
  } finally {
    await stopChild(child);
    await admin(`drop database if exists ${name} with (force)`);
  }
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};

async function main(): Promise<void> {
  if (!adminUrl)
    throw new Error('set BENCH_DATABASE_URL=postgres://... (a server the bench may create databases on)');
  checkWrk();
  runVisible('npx', ['tsc', '-p', 'tsconfig.build.json'], ROOT);
  const dir = mkdtempSync(join(tmpdir(), 'statistics-bench-workers-'));
  const runs: Record<number, Array<{ rps: number; p99: number }>> = { 1: [], 2: [] };
  try {
    for (let round = 0; round < rounds; round++) {
      for (const workers of [1, 2]) {
        const run = await oneRun(workers, dir);
        runs[workers]?.push(run);
        console.log(
          `round ${round + 1}, --workers ${workers}: ${Math.round(run.rps)} req/s, p99 ${run.p99} ms`,
        );
      }
    }
  } finally {
    await stopAllChildren();
    rmSync(dir, { recursive: true, force: true });
  }
  const one = median((runs[1] ?? []).map((r) => r.rps));
  const two = median((runs[2] ?? []).map((r) => r.rps));
  console.log(
    `single-reading ingest on PostgreSQL, ${CONNECTIONS} connections, median of ${rounds}: ` +
      `--workers 1 ${Math.round(one)} req/s (p99 ${median((runs[1] ?? []).map((r) => r.p99))} ms), ` +
      `--workers 2 ${Math.round(two)} req/s (p99 ${median((runs[2] ?? []).map((r) => r.p99))} ms), ratio ${(two / one).toFixed(2)}`,
  );
}

await main();
