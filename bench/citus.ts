/**
 * npm run bench:citus: the same run on a single PostgreSQL and on a Citus cluster, alternated over
 * BENCH_ROUNDS (3) rounds, each on a fresh database made by the bench; medians.
 *
 * - single-reading ingest (POST /data/), wrk with 10 and 32 connections, BENCH_SECONDS (10) after
 *   BENCH_WARMUP_SECONDS (2): requests/s and p99;
 * - 1,000-reading batches over 10 devices, 10 connections: readings/s;
 * - statistics: BENCH_STATS_ROWS (1,000,000) readings over the 10 devices loaded with set-based SQL
 *   (and their minute rollups rebuilt from them), then BENCH_STATS_REQUESTS (20) sequential
 *   `GET /analyze_statistics/?device_id=D&attr=x` (single-shard on Citus) and `?attr=x` (fans out);
 *   the bytes per reading and per rollup row of that load, summed over the partitions.
 *
 * BENCH_DATABASE_URL: a PostgreSQL server the bench may create databases on. BENCH_CITUS_URL: the
 * coordinator's admin URL (postgres://postgres@127.0.0.1:9700/postgres); the bench makes the database
 * on every node of its pg_dist_node, with the extension and the workers registered, as
 * `citus-cluster createdb` does, and drops it after. The server is the build (this script builds it)
 * and distributes the tables by itself when it migrates. Writes bench/citus-results.json.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { adminQuery, adminRows, loadReadings } from './admin.js';
import { createDevice, probePost, timedGet } from './api.js';
import {
  freePort,
  runVisible,
  serverEnvironment,
  startChild,
  stopAllChildren,
  stopChild,
  waitUntilReady,
} from './processes.js';
import { makeReadings, median } from './readings.js';
import { checkWrk, runWrk, writeWrkScript } from './wrk.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const postgresUrl = process.env.BENCH_DATABASE_URL;
const citusUrl = process.env.BENCH_CITUS_URL;
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const warmupSeconds = Number(process.env.BENCH_WARMUP_SECONDS ?? 2);
const statsRows = Number(process.env.BENCH_STATS_ROWS ?? 1_000_000);
const statsRequests = Number(process.env.BENCH_STATS_REQUESTS ?? 20);
const DEVICES = 10;
const BATCH_SIZE = 1000;
const THREADS = 2;

type TargetName = 'postgresql' | 'citus';

/** Where a fresh database is made and dropped. */
interface Target {
  name: TargetName;
  create(database: string): Promise<string>;
  drop(database: string): Promise<void>;
}

const onDatabase = (url: string, database: string) => {
  const own = new URL(url);
  own.pathname = `/${database}`;
  return own.toString();
};

function postgresTarget(adminUrl: string): Target {
  return {
    name: 'postgresql',
    async create(database) {
      await adminQuery(adminUrl, `drop database if exists ${database} with (force)`);
      await adminQuery(adminUrl, `create database ${database}`);
      return onDatabase(adminUrl, database);
    },
    drop: (database) => adminQuery(adminUrl, `drop database if exists ${database} with (force)`),
  };
}

/** Every node of the cluster (coordinator first), as admin URLs, from the coordinator's pg_dist_node. */
async function citusNodes(coordinatorUrl: string): Promise<{ coordinator: string; workers: string[] }> {
  const rows = await adminRows<{ host: string; port: number; groupid: number }>(
    coordinatorUrl,
    `select nodename as host, nodeport as port, groupid from pg_dist_node
     where noderole = 'primary' order by groupid`,
  );
  const url = (host: string, port: number) => {
    const node = new URL(coordinatorUrl);
    node.hostname = host;
    node.port = String(port);
    return node.toString();
  };
  return {
    coordinator: coordinatorUrl,
    workers: rows.filter((row) => row.groupid > 0).map((row) => url(row.host, row.port)),
  };
}

function citusTarget(coordinatorUrl: string): Target {
  const nodes = citusNodes(coordinatorUrl);
  const dropEverywhere = async (database: string) => {
    const { coordinator, workers } = await nodes;
    for (const node of [...workers, coordinator])
      await adminQuery(node, `drop database if exists ${database} with (force)`);
  };
  return {
    name: 'citus',
    async create(database) {
      await dropEverywhere(database);
      const { coordinator, workers } = await nodes;
      for (const node of [coordinator, ...workers]) {
        await adminQuery(node, `create database ${database}`);
        await adminQuery(onDatabase(node, database), 'create extension citus');
      }
      const url = onDatabase(coordinator, database);
      const { hostname, port } = new URL(coordinator);
      await adminRows(url, 'select citus_set_coordinator_host($1, $2)', [hostname, Number(port)]);
      for (const worker of workers) {
        const node = new URL(worker);
        await adminRows(url, 'select citus_add_node($1, $2)', [node.hostname, Number(node.port)]);
      }
      return url;
    },
    drop: dropEverywhere,
  };
}

interface WrkFigure {
  rps: number;
  p99: number;
}

interface RunResult {
  target: TargetName;
  round: number;
  /** Citus: the tables the migrations distributed (citus_tables), with their kind. */
  distributedTables: string[];
  single10: WrkFigure;
  single32: WrkFigure;
  batchReadingsPerSecond: number;
  batchP99: number;
  loadSeconds: number;
  bytesPerReading: number;
  heapBytesPerReading: number;
  bytesPerRollupRow: number;
  rollupRows: number;
  oneDeviceMs: number;
  allDevicesMs: number;
}

async function wrk(dir: string, url: string, name: string, body: string, connections: number) {
  const script = writeWrkScript(dir, name, body);
  const options = { url, script, connections, threads: THREADS, cwd: ROOT };
  await runWrk({ ...options, seconds: warmupSeconds });
  const result = await runWrk({ ...options, seconds });
  if (result.non2xx > 0) throw new Error(`${name}: ${result.non2xx} answers were errors`);
  return result;
}

/** Bytes on disk (every node on Citus), summed over the partitions of `table`. */
async function tableBytes(
  url: string,
  table: string,
  citus: boolean,
): Promise<{ total: number; heap: number }> {
  const [total, heap] = citus
    ? ['citus_total_relation_size', 'citus_relation_size']
    : ['pg_total_relation_size', 'pg_relation_size'];
  const [row] = await adminRows<{ total: string; heap: string }>(
    url,
    `select sum(${total}(relid)) as total, sum(${heap}(relid)) as heap
     from pg_partition_tree($1) where isleaf`,
    [table],
  );
  return { total: Number(row?.total ?? 0), heap: Number(row?.heap ?? 0) };
}

async function timedMedian(url: string): Promise<number> {
  await timedGet(url);
  const times: number[] = [];
  for (let i = 0; i < statsRequests; i++) times.push((await timedGet(url)).ms);
  return median(times);
}

async function oneRun(target: Target, round: number, dir: string): Promise<RunResult> {
  const database = `statistics_bench_citus_${process.pid}_${target.name}`;
  const url = await target.create(database);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = startChild(process.execPath, [join('dist', 'src', 'cli', 'main.js'), 'serve'], {
    cwd: ROOT,
    env: serverEnvironment(url, port, dir),
  });
  try {
    await waitUntilReady(`${base}/ready`, child, 60_000);
    const citus = target.name === 'citus';
    const distributedTables = citus
      ? (
          await adminRows<{ name: string }>(
            url,
            `select table_name::text || ' (' || citus_table_type
               || coalesce(', by ' || nullif(distribution_column, '<none>'), '') || ')' as name
             from citus_tables where table_name not in (select inhrelid::regclass from pg_inherits)
             order by 1`,
          )
        ).map((row) => row.name)
      : [];
    const devices: number[] = [];
    for (let i = 0; i < DEVICES; i++) devices.push(await createDevice(base));
    const ingest = `${base}/data/`;
    const single = JSON.stringify({ device_id: devices[0], x: 1.5, y: 2.5, z: 3.5 });
    const batch = JSON.stringify(
      makeReadings(BATCH_SIZE, 0, round + 1).map((reading, i) => ({
        ...reading,
        device_id: devices[i % DEVICES],
      })),
    );
    const probe = await probePost(ingest, batch);
    if (probe.status !== 200)
      throw new Error(`a batch answered ${probe.status}: ${probe.text.slice(0, 300)}`);
    const single10 = await wrk(dir, ingest, 'single', single, 10);
    const single32 = await wrk(dir, ingest, 'single', single, 32);
    const batched = await wrk(dir, ingest, 'batch', batch, 10);

    // Requests wrk left in flight when it stopped still commit: let them, before the truncate.
    await sleep(3000);
    // A fresh load each round: the ingest rounds before it stored readings too.
    await adminQuery(url, 'truncate data, reading_minutes');
    const loadSeconds = await loadReadings(url, devices, statsRows);
    const readings = await tableBytes(url, 'data', citus);
    const rollups = await tableBytes(url, 'reading_minutes', citus);
    const [counted] = await adminRows<{ rollups: string }>(
      url,
      'select count(*) as rollups from reading_minutes',
    );
    const rollupRows = Number(counted?.rollups ?? 0);
    const statistics = `${base}/analyze_statistics/?attr=x`;
    const oneDeviceMs = await timedMedian(`${statistics}&device_id=${devices[2]}`);
    const allDevicesMs = await timedMedian(statistics);
    return {
      target: target.name,
      round,
      distributedTables,
      single10: { rps: single10.requestsPerSecond, p99: single10.latencyMs.p99 },
      single32: { rps: single32.requestsPerSecond, p99: single32.latencyMs.p99 },
      batchReadingsPerSecond: batched.requestsPerSecond * BATCH_SIZE,
      batchP99: batched.latencyMs.p99,
      loadSeconds,
      bytesPerReading: readings.total / statsRows,
      heapBytesPerReading: readings.heap / statsRows,
      bytesPerRollupRow: rollups.total / rollupRows,
      rollupRows,
      oneDeviceMs,
      allDevicesMs,
    };
  } finally {
    await stopChild(child);
    await target.drop(database);
  }
}

const FIGURES = [
  ['single reading, 10 conn, req/s', (r: RunResult) => r.single10.rps, 0],
  ['  p99 ms', (r: RunResult) => r.single10.p99, 1],
  ['single reading, 32 conn, req/s', (r: RunResult) => r.single32.rps, 0],
  ['  p99 ms', (r: RunResult) => r.single32.p99, 1],
  ['1,000-reading batches, 10 conn, readings/s', (r: RunResult) => r.batchReadingsPerSecond, 0],
  ['  p99 ms', (r: RunResult) => r.batchP99, 1],
  ['statistics of x, one device, ms', (r: RunResult) => r.oneDeviceMs, 1],
  ['statistics of x, all devices, ms', (r: RunResult) => r.allDevicesMs, 1],
  ['bytes per reading (heap + 3 indexes)', (r: RunResult) => r.bytesPerReading, 0],
  ['  of which heap', (r: RunResult) => r.heapBytesPerReading, 0],
  ['bytes per minute-rollup row', (r: RunResult) => r.bytesPerRollupRow, 0],
  ['load + rollups + vacuum analyze, s', (r: RunResult) => r.loadSeconds, 1],
] as const;

async function main(): Promise<void> {
  if (!postgresUrl || !citusUrl)
    throw new Error(
      'set BENCH_DATABASE_URL=postgres://... (a PostgreSQL server the bench may create databases on) and ' +
        'BENCH_CITUS_URL=postgres://postgres@127.0.0.1:9700/postgres (a Citus coordinator)',
    );
  checkWrk();
  runVisible('npx', ['tsc', '-p', 'tsconfig.build.json'], ROOT);
  const targets = [postgresTarget(postgresUrl), citusTarget(citusUrl)];
  const dir = mkdtempSync(join(tmpdir(), 'statistics-bench-citus-'));
  const runs: RunResult[] = [];
  const loadAverages: number[] = [];
  const began = new Date();
  try {
    for (let round = 0; round < rounds; round++) {
      // Alternate which target goes first, so neither always runs on the other's leftovers.
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const target of order) {
        loadAverages.push(loadavg()[0] ?? 0);
        const run = await oneRun(target, round, dir);
        runs.push(run);
        console.log(
          `round ${round + 1}, ${target.name}: single ${Math.round(run.single10.rps)} / ${Math.round(run.single32.rps)} req/s, ` +
            `batches ${Math.round(run.batchReadingsPerSecond)} readings/s, statistics ${run.oneDeviceMs.toFixed(1)} / ${run.allDevicesMs.toFixed(1)} ms`,
        );
      }
    }
  } finally {
    await stopAllChildren();
    rmSync(dir, { recursive: true, force: true });
  }
  const medians = Object.fromEntries(
    (['postgresql', 'citus'] as const).map((name) => [
      name,
      Object.fromEntries(
        FIGURES.map(([label, figure]) => [
          label.trim(),
          median(runs.filter((r) => r.target === name).map(figure)),
        ]),
      ),
    ]),
  );
  console.log(
    `\nmedians of ${rounds} rounds, ${seconds} s of wrk after ${warmupSeconds} s, ${statsRows} readings, ${statsRequests} requests`,
  );
  console.log(
    `${'figure'.padEnd(44)}${'PostgreSQL'.padStart(12)}${'Citus'.padStart(12)}${'ratio'.padStart(8)}`,
  );
  for (const [label, figure, digits] of FIGURES) {
    const pg = median(runs.filter((r) => r.target === 'postgresql').map(figure));
    const ci = median(runs.filter((r) => r.target === 'citus').map(figure));
    console.log(
      `${label.padEnd(44)}${pg.toFixed(digits).padStart(12)}${ci.toFixed(digits).padStart(12)}${(ci / pg).toFixed(2).padStart(8)}`,
    );
  }
  writeFileSync(
    join(ROOT, 'bench', 'citus-results.json'),
    `${JSON.stringify(
      {
        date: began.toISOString(),
        seconds: (Date.now() - began.getTime()) / 1000,
        settings: {
          rounds,
          seconds,
          warmupSeconds,
          statsRows,
          statsRequests,
          devices: DEVICES,
          batchSize: BATCH_SIZE,
        },
        loadAverageAtEachRun: loadAverages,
        medians,
        runs,
      },
      null,
      2,
    )}\n`,
  );
  console.log('written to bench/citus-results.json');
}

await main();
