/**
 * The SQLite server's peak RSS while it answers attr=x,y,z with 5 percentiles over BENCH_ROWS (1M)
 * readings, as `npm run bench` measures it (issue 10), without the rest of that bench, and A/B across
 * builds: BENCH_RSS_BUILDS=DIR_A,DIR_B (each a checkout with `dist/` built; default this one, built
 * here) runs BENCH_RSS_PAIRS (3) alternating rounds, each on a fresh copy of one database of
 * bulk-loaded readings that the server's folder has not folded yet (as the bench's server meets them).
 * Each run: a fresh server on the copy, BENCH_PERCENTILE_REQUESTS (5) requests after one warm-up, the
 * server's VmRSS sampled every 50 ms; then 1,000-reading batches through wrk at 10 connections for
 * BENCH_RSS_INGEST_SECONDS (5). Servers listen on 127.0.0.1, ports from BENCH_RSS_PORT (4400) up.
 * With BENCH_DATABASE_URL=postgres://... it runs on PostgreSQL instead: the readings go into a database
 * named BENCH_RSS_DATABASE (statistics_rss) plus `_seed`, each run gets a copy of it (CREATE DATABASE
 * ... TEMPLATE), and every one is dropped at the end.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createDevice, timedGet } from './api.js';
import { postgresEngine } from './postgres.js';
import {
  type Child,
  killAllChildren,
  RssSampler,
  runVisible,
  serverEnvironment,
  startChild,
  stopChild,
  waitUntilReady,
} from './processes.js';
import type { RawEngine } from './readings.js';
import { makeReadings, median } from './readings.js';
import { sqliteEngine } from './sqlite.js';
import { checkWrk, runWrk, writeWrkScript } from './wrk.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const PAIRS = Number(process.env.BENCH_RSS_PAIRS ?? 3);
const REQUESTS = Number(process.env.BENCH_PERCENTILE_REQUESTS ?? 5);
const INGEST_SECONDS = Number(process.env.BENCH_RSS_INGEST_SECONDS ?? 5);
const BUILDS = (process.env.BENCH_RSS_BUILDS ?? ROOT).split(',');
const REQUEST = '/analyze_statistics/?attr=x,y,z&percentiles=5,25,75,95,99';
let nextPort = Number(process.env.BENCH_RSS_PORT ?? 4400);

const log = (message: string) =>
  console.log(`[${new Date().toISOString().slice(11, 19)} load ${loadavg()[0]?.toFixed(1)}] ${message}`);

/** A build is a directory, optionally followed by node flags for its server after a `|`. */
async function startServer(
  build: string,
  databaseUrl: string,
  dataDir: string,
): Promise<{ child: Child; base: string }> {
  const port = nextPort++;
  const [dir, flags = ''] = build.split('|');
  const nodeArgs = flags.split(' ').filter((flag) => flag !== '');
  const child = startChild(process.execPath, [...nodeArgs, join('dist', 'src', 'main.js')], {
    cwd: dir as string,
    env: serverEnvironment(databaseUrl, port, dataDir),
  });
  const base = `http://127.0.0.1:${port}`;
  await waitUntilReady(`${base}/ready`, child, 90_000);
  return { child, base };
}

interface Run {
  build: string;
  peakRssMb: number;
  percentilesMs: number;
  readingsPerSecond: number;
  load: number;
}

/** The seed database, loaded once, and a fresh copy of it for each run. */
interface Seed {
  raw: RawEngine;
  copy(run: number, dataDir: string): Promise<string>;
  drop(run: number): Promise<void>;
}

const POSTGRES = process.env.BENCH_DATABASE_URL;
const DATABASE = process.env.BENCH_RSS_DATABASE ?? 'statistics_rss';

async function admin(query: string): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES });
  await client.connect();
  try {
    await client.query(query);
  } finally {
    await client.end();
  }
}

async function seed(work: string): Promise<Seed> {
  if (POSTGRES) {
    const raw = await postgresEngine(POSTGRES, `${DATABASE}_seed`);
    const url = (run: number) => raw.databaseUrl.replace(/_seed$/, `_run${run}`);
    return {
      raw,
      async copy(run) {
        await raw.close();
        await admin(`create database "${DATABASE}_run${run}" template "${DATABASE}_seed"`);
        return url(run);
      },
      drop: (run) => admin(`drop database if exists "${DATABASE}_run${run}" with (force)`),
    };
  }
  const dir = join(work, 'seed');
  mkdirSync(dir);
  const source = join(dir, 'statistics.db');
  return {
    raw: sqliteEngine(source),
    async copy(_run, dataDir) {
      for (const suffix of ['', '-wal', '-shm']) {
        if (existsSync(`${source}${suffix}`))
          copyFileSync(`${source}${suffix}`, join(dataDir, `statistics.db${suffix}`));
      }
      return `sqlite:${join(dataDir, 'statistics.db')}`;
    },
    drop: async () => {},
  };
}

let runs = 0;

async function measure(build: string, from: Seed, work: string, deviceId: number): Promise<Run> {
  const dataDir = mkdtempSync(join(work, 'run-'));
  const run = runs++;
  const databaseUrl = await from.copy(run, dataDir);
  const { child, base } = await startServer(build, databaseUrl, dataDir);
  const sampler = new RssSampler(child.pid, 50);
  try {
    sampler.start();
    await timedGet(`${base}${REQUEST}`);
    const times: number[] = [];
    for (let i = 0; i < REQUESTS; i++) times.push((await timedGet(`${base}${REQUEST}`)).ms);
    const peakRssMb = sampler.stop().peakRssBytes / 1_048_576;
    const script = writeWrkScript(dataDir, 'batch', JSON.stringify(makeReadings(1000, deviceId, 3)));
    const wrk = await runWrk({
      url: `${base}/data/`,
      script,
      connections: 10,
      threads: 2,
      seconds: INGEST_SECONDS,
      cwd: ROOT,
    });
    const result: Run = {
      build,
      peakRssMb,
      percentilesMs: median(times),
      readingsPerSecond: wrk.non2xx > 0 ? 0 : wrk.requestsPerSecond * 1000,
      load: loadavg()[0] ?? 0,
    };
    log(
      `${build}: peak RSS ${peakRssMb.toFixed(0)} MB, percentiles ${result.percentilesMs.toFixed(0)} ms ` +
        `(median of ${times.length}), batches ${Math.round(result.readingsPerSecond)} readings/s` +
        `${wrk.non2xx > 0 ? ` (${wrk.non2xx} failed)` : ''}`,
    );
    return result;
  } catch (error) {
    throw new Error(`${build}: ${String(error)} ${String((error as Error).cause)}\n${child.tail()}`);
  } finally {
    // A run that failed midway stops its sampler here: its timer would keep the bench from exiting.
    sampler.stop();
    await stopChild(child, 30_000);
    rmSync(dataDir, { recursive: true, force: true });
    await from.drop(run);
  }
}

async function main(): Promise<void> {
  checkWrk();
  if (process.env.BENCH_RSS_BUILDS === undefined) runVisible('npm', ['run', '--silent', 'build'], ROOT);
  for (const build of BUILDS) {
    if (!existsSync(join(build.split('|')[0] as string, 'dist', 'src', 'main.js')))
      throw new Error(`${build} has no dist/: build it first`);
  }
  const work = mkdtempSync(join(tmpdir(), 'statistics-rss-'));
  const from = await seed(work);
  try {
    const { child, base } = await startServer(BUILDS[0] as string, from.raw.databaseUrl, join(work, 'seed'));
    const deviceId = await createDevice(base);
    await stopChild(child);
    const loaded = await from.raw.bulkLoad(deviceId, ROWS);
    await from.raw.close();
    log(`${ROWS.toLocaleString('en-US')} readings loaded in ${loaded.seconds.toFixed(1)} s`);
    const results: Run[] = [];
    for (let pair = 0; pair < PAIRS; pair++) {
      const order = pair % 2 === 0 ? BUILDS : [...BUILDS].reverse();
      for (const build of order) {
        // At a high load average a request can outlast the server's 30 s idle timeout on its socket.
        try {
          results.push(await measure(build, from, work, deviceId));
        } catch (error) {
          log(`a run failed, left out: ${String(error).slice(0, 300)}`);
        }
      }
    }
    const summary = BUILDS.map((build) => {
      const mine = results.filter((run) => run.build === build);
      return {
        build,
        peakRssMb: median(mine.map((run) => run.peakRssMb)),
        percentilesMs: median(mine.map((run) => run.percentilesMs)),
        readingsPerSecond: median(mine.map((run) => run.readingsPerSecond)),
        loads: mine.map((run) => run.load.toFixed(1)).join(', '),
      };
    });
    for (const row of summary) {
      log(
        `${row.build}: medians of ${PAIRS}: peak RSS ${row.peakRssMb.toFixed(0)} MB, percentiles ` +
          `${row.percentilesMs.toFixed(0)} ms, batches ${Math.round(row.readingsPerSecond)} readings/s (load ${row.loads})`,
      );
    }
    const [a, b] = summary;
    if (a && b) {
      log(
        `B/A: peak RSS ${(b.peakRssMb / a.peakRssMb).toFixed(3)}, percentiles ${(b.percentilesMs / a.percentilesMs).toFixed(3)}, ` +
          `batches ${(b.readingsPerSecond / a.readingsPerSecond).toFixed(3)}`,
      );
    }
  } finally {
    await from.raw.dispose();
    rmSync(work, { recursive: true, force: true });
  }
}

process.on('exit', killAllChildren);
await main();
