/**
 * npm run bench: builds and starts the real server on 127.0.0.1 (SQLite, and PostgreSQL when
 * BENCH_DATABASE_URL is set), drives it with wrk, measures the ceilings in the same run (a bare
 * Fastify route, and the same inserts and aggregate straight through the driver), prints one table
 * and writes bench/results.json.
 *
 * Settings (environment): BENCH_SECONDS (10) per wrk run, BENCH_WARMUP_SECONDS (2) before each,
 * BENCH_RAW_SECONDS (3) per raw insert loop, BENCH_ROWS (1000000) for the statistics,
 * BENCH_STATS_REQUESTS (15), BENCH_DATABASE_URL (a PostgreSQL server the bench may create a
 * database on), BENCH_ENGINES (sqlite,postgres: which of them to run).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDevice, probePost, timedGet } from './api.js';
import { postgresEngine } from './postgres.js';
import {
  type Child,
  freePort,
  killAllChildren,
  RssSampler,
  runVisible,
  startChild,
  stopAllChildren,
  stopChild,
  waitUntilReady,
} from './processes.js';
import { makeReadings, median, type RawEngine } from './readings.js';
import {
  type BareResult,
  type EngineResult,
  engineRows,
  type HttpFigure,
  renderTable,
  type TableRow,
} from './report.js';
import { sqliteEngine } from './sqlite.js';
import { checkWrk, runWrk, type WrkResult, writeWrkScript } from './wrk.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BATCH_SIZE = 1000;
const THREADS = 2;

function setting(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new Error(`${name} must be a number from ${min} to ${max}, not "${raw}"`);
  }
  return value;
}

function readSettings() {
  return {
    seconds: Math.round(setting('BENCH_SECONDS', 10, 1, 120)),
    warmupSeconds: Math.round(setting('BENCH_WARMUP_SECONDS', 2, 0, 60)),
    rawSeconds: setting('BENCH_RAW_SECONDS', 3, 0.5, 60),
    rows: Math.round(setting('BENCH_ROWS', 1_000_000, 1000, 50_000_000)),
    statsRequests: Math.round(setting('BENCH_STATS_REQUESTS', 15, 3, 200)),
    threads: THREADS,
    batchSize: BATCH_SIZE,
  };
}

/** Settings are checked before anything starts; a bad one stops the bench with its name. */
const settings = (() => {
  try {
    return readSettings();
  } catch (error) {
    console.error(`[bench] ${(error as Error).message}`);
    process.exit(1);
  }
})();
const RAW_MAX_ROWS = 20_000_000;

const log = (message: string) => console.error(`[bench] ${message}`);

/** Whatever must be undone, newest first: engines' databases, the temp dir. */
const cleanups: Array<() => Promise<void> | void> = [];

async function cleanUp(): Promise<void> {
  await stopAllChildren().catch(() => killAllChildren());
  while (cleanups.length > 0) {
    const undo = cleanups.pop();
    try {
      await undo?.();
    } catch (error) {
      log(`clean-up step failed: ${(error as Error).message}`);
    }
  }
}

let stoppingOnSignal = false;
process.on('exit', killAllChildren);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  // Ctrl-C reaches the whole process group and tsx relays it too: clean up once, ignore repeats.
  process.on(signal, () => {
    if (stoppingOnSignal) return;
    stoppingOnSignal = true;
    log(`${signal}: stopping the children and cleaning up`);
    void cleanUp().finally(() => process.exit(130));
  });
}

/** A warm-up run (discarded) then the measured one, with the same wrk parameters. */
async function load(url: string, script: string, connections: number, label: string): Promise<WrkResult> {
  if (settings.warmupSeconds > 0) {
    await runWrk({ url, script, connections, threads: THREADS, seconds: settings.warmupSeconds, cwd: ROOT });
  }
  const result = await runWrk({
    url,
    script,
    connections,
    threads: THREADS,
    seconds: settings.seconds,
    cwd: ROOT,
  });
  const failed =
    result.non2xx + result.socketErrors.connect + result.socketErrors.read + result.socketErrors.timeout;
  log(
    `${label}: ${Math.round(result.requestsPerSecond)} req/s, p50 ${result.latencyMs.p50} ms, ` +
      `p99 ${result.latencyMs.p99} ms, max ${result.latencyMs.max} ms${failed > 0 ? `, ${failed} failed` : ''}`,
  );
  return result;
}

async function benchBare(scripts: string): Promise<BareResult> {
  log('bare Fastify route (the framework ceiling)');
  let port = 0;
  const bare = startChild(process.execPath, ['--import', 'tsx', join('bench', 'bare-server.ts')], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', NODE_ENV: 'production' },
    onLine: (line) => {
      const match = /^\{"port":(\d+)\}$/.exec(line);
      if (match?.[1]) port = Number(match[1]);
    },
  });
  try {
    const deadline = Date.now() + 30_000;
    while (port === 0 && Date.now() < deadline && bare.process.exitCode === null) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (port === 0) throw new Error(`the bare server did not start:\n${bare.tail()}`);
    const base = `http://127.0.0.1:${port}`;
    await waitUntilReady(`${base}/health`, bare);
    const script = writeWrkScript(scripts, 'bare', JSON.stringify({ device_id: 1, x: 1.5, y: 2.5, z: 3.5 }));
    const connections10 = await load(`${base}/data/`, script, 10, 'bare, 10 connections');
    const connections100 = await load(`${base}/data/`, script, 100, 'bare, 100 connections');
    return { connections10, connections100 };
  } finally {
    await stopChild(bare);
  }
}

async function startServer(raw: RawEngine, dataDir: string): Promise<{ child: Child; base: string }> {
  const port = await freePort();
  // LOG_LEVEL=warn: at info Fastify logs two lines per request, which would tax every figure.
  // So the port is chosen here rather than read from the "Server listening" line.
  const child = startChild(process.execPath, [join('dist', 'src', 'main.js')], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_ENV: 'development',
      DATABASE_URL: raw.databaseUrl,
      DATA_DIR: dataDir,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'warn',
    },
  });
  const base = `http://127.0.0.1:${port}`;
  await waitUntilReady(`${base}/health`, child);
  return { child, base };
}

const statusReason = (status: number) => `${status}`;

async function benchEngine(raw: RawEngine, work: string, bare: BareResult): Promise<EngineResult> {
  const engine = raw.engine;
  const dataDir = join(work, engine);
  mkdirSync(dataDir, { recursive: true });
  log(`${engine}: starting the server (${raw.databaseUrl})`);
  const { child: server, base } = await startServer(raw, dataDir);
  const deviceId = await createDevice(base);

  log(`${engine}: loading ${settings.rows.toLocaleString('en-US')} readings straight into the database`);
  const bulkLoad = await raw.bulkLoad(deviceId, settings.rows);
  log(`${engine}: loaded in ${bulkLoad.seconds.toFixed(1)} s (${Math.round(bulkLoad.rowsPerSecond)} rows/s)`);

  // Statistics: API and raw SQL interleaved, so that a noisy moment hits both alike.
  log(`${engine}: statistics, ${settings.statsRequests} requests and as many raw runs`);
  const statsUrl = `${base}/analyze_statistics/`;
  await timedGet(statsUrl);
  await raw.aggregate();
  const apiRunsMs: number[] = [];
  const rawRunsMs: number[] = [];
  let apiAnswer: unknown;
  let rawAnswer: unknown;
  for (let i = 0; i < settings.statsRequests; i++) {
    const api = await timedGet(statsUrl);
    apiRunsMs.push(api.ms);
    apiAnswer = api.body;
    const direct = await raw.aggregate();
    rawRunsMs.push(direct.ms);
    rawAnswer = direct.result;
  }
  const count = (apiAnswer as { count?: unknown } | undefined)?.count;
  if (count !== settings.rows)
    throw new Error(`the API counted ${String(count)} readings, not ${settings.rows}`);
  await raw.close();

  // Ingest through the API, with the server's memory sampled throughout.
  const scripts = join(work, `${engine}-scripts`);
  mkdirSync(scripts, { recursive: true });
  const single = JSON.stringify({ device_id: deviceId, x: 1.5, y: 2.5, z: 3.5 });
  const batch = JSON.stringify(makeReadings(BATCH_SIZE, deviceId, 3));
  const singleScript = writeWrkScript(scripts, 'single', single);
  const batchScript = writeWrkScript(scripts, 'batch', batch);
  const url = `${base}/data/`;

  const sampler = new RssSampler(server.pid, 200);
  sampler.start();
  const singleFigure = async (connections: number): Promise<HttpFigure> => {
    const probe = await probePost(url, single);
    if (probe.status !== 200) return { status: 'n/a', reason: statusReason(probe.status) };
    return {
      status: 'measured',
      wrk: await load(url, singleScript, connections, `${engine} single, ${connections} conn`),
    };
  };
  const connections10 = await singleFigure(10);
  const connections100 = await singleFigure(100);
  const batchProbe = await probePost(url, batch);
  let batchPost: EngineResult['batchPost'];
  if (batchProbe.status === 200) {
    const wrk = await load(url, batchScript, 10, `${engine} batch of ${BATCH_SIZE}, 10 conn`);
    batchPost = {
      status: 'measured',
      wrk,
      readingsPerRequest: BATCH_SIZE,
      readingsPerSecond: wrk.requestsPerSecond * BATCH_SIZE,
    };
  } else {
    log(
      `${engine}: a batch answered ${batchProbe.status} (${batchProbe.text.slice(0, 160)}): reported as n/a`,
    );
    batchPost = {
      status: 'n/a',
      reason: statusReason(batchProbe.status),
      readingsPerRequest: BATCH_SIZE,
      readingsPerSecond: null,
    };
  }
  const serverMemory = sampler.stop();
  log(`${engine}: stopping the server`);
  await stopChild(server, 30_000);

  // The ceilings straight through the driver, on the same database, with the server gone.
  log(`${engine}: raw inserts through the driver`);
  const budget = { seconds: settings.rawSeconds, maxRows: RAW_MAX_ROWS };
  const singleRowTransactions = await raw.singleRowTransactions(deviceId, budget);
  const batched = await raw.batchedInserts(deviceId, BATCH_SIZE, budget);
  await raw.close();
  for (const method of [{ method: 'one row per transaction', ...singleRowTransactions }, ...batched]) {
    log(`${engine}: raw ${method.method}: ${Math.round(method.rowsPerSecond)} rows/s`);
  }
  const fastestBatched = batched.reduce((best, next) =>
    next.rowsPerSecond > best.rowsPerSecond ? next : best,
  );

  const rps = (figure: HttpFigure) => (figure.status === 'measured' ? figure.wrk.requestsPerSecond : null);
  const per = (value: number | null, ceiling: number) =>
    value === null || ceiling <= 0 ? null : value / ceiling;
  const apiMedianMs = median(apiRunsMs);
  const rawMedianMs = median(rawRunsMs);
  return {
    engine,
    rowsLoaded: settings.rows,
    bulkLoad,
    singlePost: { connections10, connections100 },
    batchPost,
    statistics: {
      requests: settings.statsRequests,
      apiMedianMs,
      apiRunsMs,
      rawMedianMs,
      rawRunsMs,
      rawSql: raw.aggregateSql,
      apiAnswer,
      rawAnswer,
    },
    serverMemory,
    ceilings: { singleRowTransactions, batched, fastestBatched },
    ratios: {
      single10ToBare: per(rps(connections10), bare.connections10.requestsPerSecond),
      single100ToBare: per(rps(connections100), bare.connections100.requestsPerSecond),
      single10ToRawSingleRowTransactions: per(rps(connections10), singleRowTransactions.rowsPerSecond),
      batchToRawBatched: per(batchPost.readingsPerSecond, fastestBatched.rowsPerSecond),
      statisticsApiToRaw: apiMedianMs / rawMedianMs,
    },
  };
}

function chosenEngines(): Array<'sqlite' | 'postgres'> {
  const postgresUrl = process.env.BENCH_DATABASE_URL;
  const wanted = (process.env.BENCH_ENGINES ?? 'sqlite,postgres').split(',').map((name) => name.trim());
  const engines: Array<'sqlite' | 'postgres'> = [];
  if (wanted.includes('sqlite')) engines.push('sqlite');
  if (wanted.includes('postgres') && postgresUrl) engines.push('postgres');
  if (wanted.includes('postgres') && !postgresUrl && process.env.BENCH_ENGINES) {
    throw new Error('BENCH_ENGINES names postgres but BENCH_DATABASE_URL is not set');
  }
  if (engines.length === 0) throw new Error('BENCH_ENGINES selects no engine');
  return engines;
}

async function main(): Promise<void> {
  const started = Date.now();
  const wrkVersion = checkWrk();
  const engines = chosenEngines();
  log(
    `engines: ${engines.join(', ')}; ${settings.seconds} s per wrk run after ${settings.warmupSeconds} s warm-up`,
  );

  log('building (npm run build)');
  runVisible('npm', ['run', '--silent', 'build'], ROOT);

  const work = mkdtempSync(join(tmpdir(), 'statistics-bench-'));
  cleanups.push(() => rmSync(work, { recursive: true, force: true }));
  const scripts = join(work, 'scripts');
  mkdirSync(scripts);

  const bare = await benchBare(scripts);
  const results: EngineResult[] = [];
  for (const engine of engines) {
    let raw: RawEngine;
    if (engine === 'sqlite') {
      mkdirSync(join(work, 'sqlite'), { recursive: true });
      raw = sqliteEngine(join(work, 'sqlite', 'statistics.db'));
    } else {
      raw = await postgresEngine(process.env.BENCH_DATABASE_URL ?? '');
    }
    cleanups.push(() => raw.dispose());
    results.push(await benchEngine(raw, work, bare));
  }

  const rows: TableRow[] = results.flatMap((result) => engineRows(result, bare));
  const table = renderTable(rows);
  const cpu = cpus();
  const machine = {
    cpu: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    node: process.version,
    kernel: release(),
    loadGenerator: `wrk ${wrkVersion}, ${THREADS} threads, on the same machine`,
  };
  const date = new Date().toISOString();
  const report = {
    date,
    machine,
    settings,
    durationSeconds: Math.round((Date.now() - started) / 1000),
    bare,
    engines: results,
    table: rows,
  };
  writeFileSync(join(ROOT, 'bench', 'results.json'), `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nStatistics bench, ${date}: ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}`);
  console.log(
    `${machine.loadGenerator}; ${settings.seconds} s per run after ${settings.warmupSeconds} s warm-up\n`,
  );
  console.log(table);
  console.log(`\nwritten to bench/results.json (${report.durationSeconds} s in all)`);
}

main()
  .then(cleanUp)
  .catch(async (error: unknown) => {
    if (stoppingOnSignal) return; // the signal handler is cleaning up and exits
    console.error(`[bench] failed: ${error instanceof Error ? error.message : String(error)}`);
    await cleanUp();
    process.exitCode = 1;
  });
