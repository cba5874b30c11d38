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
 *
 * The analytics scenarios (issue 4): BENCH_PERCENTILE_REQUESTS (5) for attr=x,y,z with percentiles
 * over the BENCH_ROWS readings; BENCH_LARGE_ROWS for the large dataset in a fresh database and
 * server of its own (default 10,000,000 on SQLite and none on PostgreSQL; 0 skips it), with
 * BENCH_LARGE_REQUESTS (15) per scenario; BENCH_SCENARIO_SECONDS (60) caps each request loop (it
 * still takes 3 requests, so a median exists).
 *
 * MQTT (issue 14): with a broker at BENCH_MQTT_URL (mqtt://127.0.0.1:1883), the server also
 * subscribes to it, and one device publishes at QoS 1 for BENCH_SECONDS each: single readings, then
 * 1,000-reading payloads, right after the HTTP ingest runs (see bench/mqtt.ts).
 *
 * Issue 10: BENCH_STALL_RUNS (5) runs of BENCH_STALL_SECONDS (20) of single-reading ingest watched for
 * stalls; BENCH_HEAVY_SECONDS (10) of ingest and /health, idle and then while 4 clients repeat exact
 * statistics over the BENCH_ROWS readings; the server's peak RSS during the percentiles scenario; and
 * group_by=device over the last hour of the large dataset.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createDevice, probePost, timedGet } from './api.js';
import { mainThreadProfile, type ProfileSummary, profileTable, summarizeProfile } from './cpu-profile.js';
import { HEALTH_PROBE_PAUSE_MS, heavyLoad, stallRuns, writeHealthProbe } from './heavy.js';
import { MIXED_USERS, writeMixedScript } from './mixed.js';
import { benchMqtt, brokerAnswers, PubackWatch } from './mqtt.js';
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
import {
  largePlan,
  makeReadings,
  median,
  type RawEngine,
  type RawStatement,
  type StatisticsSpec,
} from './readings.js';
import {
  type BareResult,
  type EngineResult,
  engineRows,
  type HttpFigure,
  type LargeResult,
  renderTable,
  type Scenario,
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

/** BENCH_LARGE_ROWS as given (null when unset: each engine's default applies). */
function largeRowsSetting(): number | null {
  if (process.env.BENCH_LARGE_ROWS === undefined || process.env.BENCH_LARGE_ROWS === '') return null;
  const rows = Math.round(setting('BENCH_LARGE_ROWS', 0, 0, 50_000_000));
  if (rows > 0 && rows < 10_000) throw new Error('BENCH_LARGE_ROWS must be 0 (skip) or from 10000');
  return rows;
}

function readSettings() {
  return {
    seconds: Math.round(setting('BENCH_SECONDS', 10, 1, 120)),
    warmupSeconds: Math.round(setting('BENCH_WARMUP_SECONDS', 2, 0, 60)),
    rawSeconds: setting('BENCH_RAW_SECONDS', 3, 0.5, 60),
    rows: Math.round(setting('BENCH_ROWS', 1_000_000, 1000, 50_000_000)),
    statsRequests: Math.round(setting('BENCH_STATS_REQUESTS', 15, 3, 200)),
    percentileRequests: Math.round(setting('BENCH_PERCENTILE_REQUESTS', 5, 3, 200)),
    largeRows: largeRowsSetting(),
    largeRequests: Math.round(setting('BENCH_LARGE_REQUESTS', 15, 3, 200)),
    scenarioSeconds: setting('BENCH_SCENARIO_SECONDS', 60, 5, 1800),
    stallRuns: Math.round(setting('BENCH_STALL_RUNS', 5, 1, 20)),
    stallSeconds: Math.round(setting('BENCH_STALL_SECONDS', 20, 1, 120)),
    heavySeconds: Math.round(setting('BENCH_HEAVY_SECONDS', 10, 1, 120)),
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
const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
/** The large dataset: this many devices over this many whole UTC days. */
const LARGE_DEVICES = 100;
const LARGE_DAYS = 90;
const LARGE_DEFAULT_ROWS = { sqlite: 10_000_000, postgres: 0 } as const;
const SERIES_DAYS = 30;
const PERCENTILES = [5, 25, 75, 95, 99];

const log = (message: string) => console.error(`[bench] ${message}`);

/** Whatever must be undone, newest first: engines' databases, the temp dir. */
const cleanups: Array<() => Promise<void> | void> = [];

/** Registers an undo step that may also be run early (its files go as soon as they are done with). */
function cleanupStep(undo: () => Promise<void> | void): () => Promise<void> {
  let done = false;
  const once = async () => {
    if (done) return;
    done = true;
    await undo();
  };
  cleanups.push(once);
  return once;
}

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

async function startServer(
  raw: RawEngine,
  dataDir: string,
  env: Record<string, string> = {},
  nodeArgs: string[] = [],
): Promise<{ child: Child; base: string }> {
  const port = await freePort();
  // LOG_LEVEL=warn: at info Fastify logs two lines per request, which would tax every figure.
  // So the port is chosen here rather than read from the "Server listening" line.
  const child = startChild(process.execPath, [...nodeArgs, join('dist', 'src', 'main.js')], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_ENV: 'development',
      DATABASE_URL: raw.databaseUrl,
      DATA_DIR: dataDir,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'warn',
      ...env,
    },
  });
  const base = `http://127.0.0.1:${port}`;
  await waitUntilReady(`${base}/ready`, child);
  return { child, base };
}

const statusReason = (status: number) => `${status}`;

type Attr = 'x' | 'y' | 'z';
type StatisticsFields = {
  count?: unknown;
  min?: unknown;
  max?: unknown;
  median?: unknown;
  percentiles?: Record<string, unknown>;
};

/**
 * Whether the API answer and the raw row hold the same statistics: a different count stops the bench
 * (the two did not select the same readings); any other difference is reported.
 */
function statisticsAgree(label: string, spec: StatisticsSpec, apiBody: unknown, rawRow: unknown): boolean {
  const row = (rawRow ?? {}) as Record<string, unknown>;
  const byAttr = (spec.attrs.length === 1 ? { [spec.attrs[0] as Attr]: apiBody } : (apiBody ?? {})) as Record<
    string,
    StatisticsFields | undefined
  >;
  let agree = true;
  for (const attr of spec.attrs) {
    const api = byAttr[attr] ?? {};
    if (Number(api.count) !== Number(row[`${attr}_count`])) {
      throw new Error(
        `${label}: the API counted ${String(api.count)} ${attr} readings, the raw SQL ${String(row[`${attr}_count`])}`,
      );
    }
    const pairs: Array<[string, unknown, unknown]> = [
      ['min', api.min, row[`${attr}_min`]],
      ['max', api.max, row[`${attr}_max`]],
      ['median', api.median, row[`${attr}_median`]],
      ...spec.percentiles.map(
        (p, i) => [`p${p}`, api.percentiles?.[String(p)], row[`${attr}_p${i}`]] as [string, unknown, unknown],
      ),
    ];
    for (const [name, fromApi, fromRaw] of pairs) {
      if (Number(fromApi) !== Number(fromRaw)) {
        log(`${label}: ${attr} ${name} differs: API ${String(fromApi)}, raw ${String(fromRaw)}`);
        agree = false;
      }
    }
  }
  return agree;
}

/** Every bucket the API answered, against the raw rows: same counts, min and max. */
function seriesAgree(label: string, apiBody: unknown, rawRows: unknown): boolean {
  const api = apiBody as Array<{ count: number; min: unknown; max: unknown }>;
  const raw = rawRows as Array<{ count: unknown; min: unknown; max: unknown }>;
  if (!Array.isArray(api) || !Array.isArray(raw) || api.length !== raw.length) {
    throw new Error(
      `${label}: the API answered ${Array.isArray(api) ? api.length : 'no'} buckets, the raw SQL ${Array.isArray(raw) ? raw.length : 'no'}`,
    );
  }
  const differing = api.filter((bucket, i) => {
    const row = raw[i];
    return (
      !row ||
      bucket.count !== Number(row.count) ||
      Number(bucket.min) !== Number(row.min) ||
      Number(bucket.max) !== Number(row.max)
    );
  }).length;
  if (differing > 0) log(`${label}: ${differing} buckets differ between the API and the raw SQL`);
  return differing === 0;
}

/** A series' bucket list is long: its first entries say enough in the report. */
function shortened(value: unknown): unknown {
  if (typeof value === 'string' && value.length > 120)
    return `${value.slice(0, 120)}... (${value.length} chars)`;
  if (Array.isArray(value) && value.length > 4) return [...value.slice(0, 3), `... (${value.length} values)`];
  return value;
}

/**
 * One API request and one raw run first (discarded: statements prepared, pages cached), then
 * `count` of each interleaved, so that a noisy moment hits both alike; the loop also stops once
 * BENCH_SCENARIO_SECONDS have passed (after 3 of each at the least).
 */
async function interleaved(
  label: string,
  base: string,
  request: string,
  raw: RawEngine,
  statement: RawStatement,
  rows: 'one' | 'all',
  count: number,
): Promise<Omit<Scenario, 'answersAgree'>> {
  const url = `${base}${request}`;
  await timedGet(url);
  await raw.run(statement, rows);
  const deadline = performance.now() + settings.scenarioSeconds * 1000;
  const apiRunsMs: number[] = [];
  const rawRunsMs: number[] = [];
  let apiAnswer: unknown;
  let rawAnswer: unknown;
  while (apiRunsMs.length < count && (apiRunsMs.length < 3 || performance.now() < deadline)) {
    const api = await timedGet(url);
    apiRunsMs.push(api.ms);
    apiAnswer = api.body;
    const direct = await raw.run(statement, rows);
    rawRunsMs.push(direct.ms);
    rawAnswer = direct.result;
  }
  const apiMedianMs = median(apiRunsMs);
  const rawMedianMs = median(rawRunsMs);
  log(
    `${label}: API ${apiMedianMs.toFixed(1)} ms, raw SQL ${rawMedianMs.toFixed(1)} ms ` +
      `(medians of ${apiRunsMs.length})`,
  );
  return {
    request,
    requests: apiRunsMs.length,
    apiMedianMs,
    apiRunsMs,
    rawMedianMs,
    rawRunsMs,
    rawSql: statement.text,
    rawParams: statement.values.map(shortened),
    apiToRaw: apiMedianMs / rawMedianMs,
    apiAnswer,
    rawAnswer,
  };
}

/**
 * Every statistic of x, y and z with five percentiles, over all the readings (issue 4). It gets a
 * server process of its own on the same database: SQLite's percentile_cont holds every value of
 * each of its 18 aggregates (some 150 MB over 1M readings), and the heap a process has grown stays
 * with it, which would inflate the ingest memory figure of the main server.
 */
async function benchPercentiles(
  raw: RawEngine,
  dataDir: string,
): Promise<Scenario & { serverPeakRssBytes: number }> {
  const label = `${raw.engine} attr=x,y,z with percentiles`;
  log(
    `${label}: a second server on the same database, ${settings.percentileRequests} requests and as many raw runs`,
  );
  const { child: server, base } = await startServer(raw, dataDir);
  try {
    const spec: StatisticsSpec = { attrs: ['x', 'y', 'z'], percentiles: PERCENTILES };
    const request = `/analyze_statistics/?attr=x,y,z&percentiles=${PERCENTILES.join(',')}`;
    const sampler = new RssSampler(server.pid, 50);
    sampler.start();
    const measured = await interleaved(
      label,
      base,
      request,
      raw,
      raw.statisticsSql(spec),
      'one',
      settings.percentileRequests,
    );
    const serverPeakRssBytes = sampler.stop().peakRssBytes;
    log(`${label}: the server's peak RSS ${(serverPeakRssBytes / 1_048_576).toFixed(0)} MB`);
    const answersAgree = statisticsAgree(label, spec, measured.apiAnswer, measured.rawAnswer);
    const count = (measured.apiAnswer as { x?: { count?: unknown } } | undefined)?.x?.count;
    if (count !== settings.rows)
      throw new Error(`${label}: the API counted ${String(count)}, not ${settings.rows}`);
    return { ...measured, answersAgree, serverPeakRssBytes };
  } finally {
    await stopChild(server, 30_000);
  }
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * The large dataset in a fresh database and server of its own: 100 devices made through the API,
 * then the readings loaded straight through the driver; a one-day window and a 30-day hourly series
 * of one device, each against its raw SQL, and the plan of the window's statement.
 */
async function benchLarge(engine: 'sqlite' | 'postgres', work: string, rows: number): Promise<LargeResult> {
  const dir = join(work, `${engine}-large`);
  mkdirSync(dir, { recursive: true });
  const raw =
    engine === 'sqlite'
      ? sqliteEngine(join(dir, 'statistics.db'))
      : await postgresEngine(process.env.BENCH_DATABASE_URL ?? '');
  const dispose = cleanupStep(async () => {
    await raw.dispose();
    rmSync(dir, { recursive: true, force: true });
  });
  try {
    log(`${engine} large: starting a fresh server (${raw.databaseUrl})`);
    const { child: server, base } = await startServer(raw, dir);
    try {
      const deviceIds: number[] = [];
      for (let i = 0; i < LARGE_DEVICES; i++) deviceIds.push(await createDevice(base));
      const plan = largePlan(rows, deviceIds, LARGE_DAYS);
      log(
        `${engine} large: loading ${rows.toLocaleString('en-US')} readings of ${LARGE_DEVICES} devices ` +
          `over ${LARGE_DAYS} days (${iso(plan.startMs)} to ${iso(plan.endMs)}) straight into the database`,
      );
      const load = await raw.bulkLoadLarge(plan);
      // The load held this process's event loop for minutes, so fetch could not retire the keep-alive
      // sockets the server closed meanwhile: let its timers run before the next request.
      await sleep(2000);
      log(
        `${engine} large: loaded in ${load.seconds.toFixed(1)} s (${Math.round(load.rowsPerSecond)} rows/s)`,
      );
      const dataBytes = await raw.sizeBytes();
      const deviceId = deviceIds[Math.floor(deviceIds.length / 2)] as number;

      // One UTC day in the middle of the range, both bounds inclusive as the API takes them.
      const dayStart = plan.startMs + Math.floor(LARGE_DAYS / 2) * DAY_MS;
      const daySpec: StatisticsSpec = {
        attrs: ['x'],
        percentiles: [],
        deviceId,
        start: dayStart,
        end: dayStart + DAY_MS - 1,
      };
      // ISO instants hold only characters a query string takes as they are.
      const dayQuery = `device_id=${deviceId}&start_date=${iso(dayStart)}&end_date=${iso(dayStart + DAY_MS - 1)}`;
      const dayStatement = raw.statisticsSql(daySpec);
      const dayPlan = await raw.explain(dayStatement);
      const windowLabel = `${engine} large: one device, one day`;
      const window = await interleaved(
        windowLabel,
        base,
        `/analyze_statistics/?${dayQuery}`,
        raw,
        dayStatement,
        'one',
        settings.largeRequests,
      );
      const windowAgree = statisticsAgree(windowLabel, daySpec, window.apiAnswer, window.rawAnswer);

      // 30 whole UTC days in hourly buckets: the boundaries the API computes for bucket=1h in UTC.
      const seriesStart = plan.startMs + Math.min(SERIES_DAYS, LARGE_DAYS - SERIES_DAYS) * DAY_MS;
      const seriesEnd = seriesStart + SERIES_DAYS * DAY_MS - 1;
      const boundaries = Array.from({ length: SERIES_DAYS * 24 + 1 }, (_, h) => seriesStart + h * HOUR_MS);
      const seriesQuery = `device_id=${deviceId}&bucket=1h&start_date=${iso(seriesStart)}&end_date=${iso(seriesEnd)}`;
      const seriesStatement = raw.seriesSql({
        attr: 'x',
        deviceId,
        start: seriesStart,
        end: seriesEnd,
        boundaries,
      });
      const seriesPlan = await raw.explain(seriesStatement);
      const seriesLabel = `${engine} large: one device, 30 days hourly`;
      const series = await interleaved(
        seriesLabel,
        base,
        `/analyze_statistics/series?${seriesQuery}`,
        raw,
        seriesStatement,
        'all',
        settings.largeRequests,
      );
      const seriesAgreeing = seriesAgree(seriesLabel, series.apiAnswer, series.rawAnswer);

      // group_by=device over the last hour, with start_date alone (the API), against the raw SQL with
      // both bounds (which both engines plan as a range of the time index).
      const hourStart = plan.endMs - HOUR_MS;
      const groupSpec: StatisticsSpec = {
        attrs: ['x'],
        percentiles: [],
        start: hourStart,
        end: plan.endMs - 1,
        groupByDevice: true,
      };
      const groupStatement = raw.statisticsSql(groupSpec);
      const groupPlan = await raw.explain(groupStatement);
      const groupLabel = `${engine} large: group_by=device, the last hour`;
      const groupWindow = await interleaved(
        groupLabel,
        base,
        `/analyze_statistics/?group_by=device&start_date=${iso(hourStart)}`,
        raw,
        groupStatement,
        'all',
        settings.largeRequests,
      );
      const groups = (groupWindow.apiAnswer ?? []) as Array<{ count?: number }>;
      const rawGroups = (groupWindow.rawAnswer ?? []) as Array<{ x_count?: unknown }>;
      const groupsAgree =
        groups.length === rawGroups.length &&
        groups.every((group, i) => Number(group.count) === Number(rawGroups[i]?.x_count));
      return {
        status: 'measured',
        instance: 'fresh database and server of its own',
        rows,
        devices: LARGE_DEVICES,
        days: LARGE_DAYS,
        firstReading: iso(plan.startMs),
        endOfData: iso(plan.endMs),
        load,
        dataBytes,
        window: {
          ...window,
          answersAgree: windowAgree,
          readings: Number((window.apiAnswer as { count?: unknown } | undefined)?.count ?? 0),
          plan: dayPlan,
        },
        series: {
          ...series,
          answersAgree: seriesAgreeing,
          buckets: boundaries.length - 1,
          bucketsWithReadings: Array.isArray(series.apiAnswer) ? series.apiAnswer.length : 0,
          plan: seriesPlan,
          // Checked bucket by bucket above; the first few show the shape.
          apiAnswer: shortened(series.apiAnswer),
          rawAnswer: shortened(series.rawAnswer),
        },
        groupWindow: {
          ...groupWindow,
          answersAgree: groupsAgree,
          readings: groups.reduce((sum, group) => sum + Number(group.count ?? 0), 0),
          plan: groupPlan,
          apiAnswer: shortened(groupWindow.apiAnswer),
          rawAnswer: shortened(groupWindow.rawAnswer),
        },
      };
    } finally {
      log(`${engine} large: stopping the server`);
      await stopChild(server, 30_000);
    }
  } finally {
    await raw.close();
    await dispose();
  }
}

function largeRowsFor(engine: 'sqlite' | 'postgres'): { rows: number; reason: string } {
  if (settings.largeRows !== null) return { rows: settings.largeRows, reason: 'BENCH_LARGE_ROWS=0' };
  return {
    rows: LARGE_DEFAULT_ROWS[engine],
    reason: 'not run on PostgreSQL unless BENCH_LARGE_ROWS is set',
  };
}

/**
 * Where the time of single-reading ingest goes: a server of its own on the same database, under
 * `node --cpu-prof`, through one warm-up and one measured run at 10 connections (a profiled server is
 * slower, so its figures are not reported); the top 10 functions by self time of the event loop's
 * thread, over the measured run only (start-up, warm-up and stop left out).
 */
async function profileSingleReadings(
  raw: RawEngine,
  dataDir: string,
  script: string,
): Promise<ProfileSummary> {
  const dir = join(dataDir, 'cpu-profile');
  mkdirSync(dir, { recursive: true });
  log(`${raw.engine}: single readings again, 10 connections, on a server under node --cpu-prof`);
  const { child, base } = await startServer(raw, dataDir, {}, ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
  let stopping = performance.now();
  try {
    await load(`${base}/data/`, script, 10, `${raw.engine} single, 10 conn, profiled`);
    stopping = performance.now();
  } finally {
    await stopChild(child, 30_000);
  }
  const file = mainThreadProfile(dir);
  if (!file) throw new Error(`node --cpu-prof wrote no profile of the main thread into ${dir}`);
  return summarizeProfile(file, ROOT, {
    // The measured run only: the warm-up compiles the answers' serializers, a cost of the first requests.
    lastSeconds: settings.seconds,
    stopSeconds: (performance.now() - stopping) / 1000,
  });
}

async function benchEngine(raw: RawEngine, work: string, bare: BareResult): Promise<EngineResult> {
  const engine = raw.engine;
  const dataDir = join(work, engine);
  mkdirSync(dataDir, { recursive: true });
  const brokerUrl = process.env.BENCH_MQTT_URL || 'mqtt://127.0.0.1:1883';
  const watch = (await brokerAnswers(brokerUrl)) ? new PubackWatch(brokerUrl) : undefined;
  const mqttPrefix = `statistics-bench/${process.pid}-${engine}`;
  const mqttEnv: Record<string, string> = watch
    ? {
        MQTT_URL: await watch.listen(),
        MQTT_TOPIC_PREFIX: mqttPrefix,
        MQTT_CLIENT_ID: `statistics-bench-${process.pid}-${engine}`,
        MQTT_SESSION_EXPIRY_SECONDS: '60',
      }
    : {};
  if (watch) cleanups.push(() => watch.close());
  log(`${engine}: starting the server (${raw.databaseUrl})${watch ? `, subscribed to ${brokerUrl}` : ''}`);
  const { child: server, base } = await startServer(raw, dataDir, mqttEnv);
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
  const percentiles = await benchPercentiles(raw, dataDir);
  await raw.close();

  // Ingest through the API, with the server's memory sampled throughout.
  const scripts = join(work, `${engine}-scripts`);
  mkdirSync(scripts, { recursive: true });
  const single = JSON.stringify({ device_id: deviceId, x: 1.5, y: 2.5, z: 3.5 });
  const batch = JSON.stringify(makeReadings(BATCH_SIZE, deviceId, 3));
  const singleScript = writeWrkScript(scripts, 'single', single);
  const batchScript = writeWrkScript(scripts, 'batch', batch);
  const url = `${base}/data/`;

  // The heavy-load scenario reads only the bulk-loaded readings, not those the ingest runs add.
  const ingestStarted = Date.now();
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
  const batchFigure = async (connections: number): Promise<EngineResult['batchPost']> => {
    if (batchProbe.status !== 200) {
      log(
        `${engine}: a batch answered ${batchProbe.status} (${batchProbe.text.slice(0, 160)}): reported as n/a`,
      );
      return {
        status: 'n/a',
        reason: statusReason(batchProbe.status),
        readingsPerRequest: BATCH_SIZE,
        readingsPerSecond: null,
      };
    }
    const wrk = await load(
      url,
      batchScript,
      connections,
      `${engine} batch of ${BATCH_SIZE}, ${connections} conn`,
    );
    return {
      status: 'measured',
      wrk,
      readingsPerRequest: BATCH_SIZE,
      readingsPerSecond: wrk.requestsPerSecond * BATCH_SIZE,
    };
  };
  const batchPost = await batchFigure(10);
  const batchPost100 = await batchFigure(100);
  log(
    `${engine}: the mixed scenario, ${MIXED_USERS} users of a device each (8 readings : 1 statistics : 1 device list)`,
  );
  const mixed: HttpFigure = {
    status: 'measured',
    wrk: await load(base, await writeMixedScript(base, scripts), MIXED_USERS, `${engine} mixed 8:1:1`),
  };
  let mqtt: EngineResult['mqtt'] = { status: 'skipped', reason: `no MQTT broker at ${brokerUrl}` };
  if (watch) {
    log(`${engine}: MQTT, one device at QoS 1: single readings, then ${BATCH_SIZE}-reading messages`);
    const figures = await benchMqtt(brokerUrl, watch, mqttPrefix, deviceId, settings.seconds, BATCH_SIZE);
    for (const [name, figure] of Object.entries(figures)) {
      log(
        `${engine} MQTT ${name}: ${Math.round(figure.readingsPerSecond)} readings/s, publish to commit ` +
          `p50 ${figure.latencyMs.p50.toFixed(1)} ms, p99 ${figure.latencyMs.p99.toFixed(1)} ms`,
      );
    }
    mqtt = { status: 'measured', ...figures };
  }
  const serverMemory = sampler.stop();

  log(
    `${engine}: single-reading ingest, ${settings.stallRuns} runs of ${settings.stallSeconds} s, watched for stalls`,
  );
  const stalls = await stallRuns({
    url,
    script: singleScript,
    connections: 10,
    runs: settings.stallRuns,
    seconds: settings.stallSeconds,
    cwd: ROOT,
    log: (message) => log(`${engine} ${message}`),
  });
  log(`${engine}: ingest and /health, idle and then while 4 clients repeat exact statistics`);
  const heavy = await heavyLoad({
    base,
    ingestScript: singleScript,
    healthScript: writeHealthProbe(scripts, HEALTH_PROBE_PAUSE_MS),
    heavyRequest: `/analyze_statistics/?device_id=${deviceId}&attr=x&end_date=${iso(ingestStarted - 1)}`,
    loops: 4,
    seconds: settings.heavySeconds,
    cwd: ROOT,
    log: (message) => log(`${engine} ${message}`),
  }).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}\nthe server's last lines:\n${server.tail()}`);
  });
  log(`${engine}: stopping the server`);
  await stopChild(server, 30_000);
  const profile = await profileSingleReadings(raw, dataDir, singleScript);

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
    batchPost100,
    mixed,
    profile,
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
    percentiles,
    mqtt,
    stalls,
    heavyLoad: heavy,
    large: { status: 'skipped', reason: 'not run yet' },
    serverMemory,
    ceilings: { singleRowTransactions, batched, fastestBatched },
    ratios: {
      single10ToBare: per(rps(connections10), bare.connections10.requestsPerSecond),
      single100ToBare: per(rps(connections100), bare.connections100.requestsPerSecond),
      single10ToRawSingleRowTransactions: per(rps(connections10), singleRowTransactions.rowsPerSecond),
      batchToRawBatched: per(batchPost.readingsPerSecond, fastestBatched.rowsPerSecond),
      batch100ToRawBatched: per(batchPost100.readingsPerSecond, fastestBatched.rowsPerSecond),
      statisticsApiToRaw: apiMedianMs / rawMedianMs,
    },
  };
}

/** bench/ingest-profile.md: the CPU profile summaries of the single-reading runs, beside results.json. */
function profileReport(
  date: string,
  machine: { cpu: string; cores: number; node: string },
  results: EngineResult[],
) {
  const sections = results.map(
    (result) =>
      `## ${result.engine}: POST /data/ one reading, 10 connections\n\n` +
      `${Math.round(result.profile.sampledMs / 1000)} s sampled on the event loop's thread; the top 10 by self time:\n\n` +
      `${profileTable(result.profile)}\n`,
  );
  return (
    `# Where single-reading ingest spends its time (npm run bench, ${date})\n\n` +
    `${machine.cpu}, ${machine.cores} cores, Node ${machine.node}. Written by bench/run.ts from a server under ` +
    '`node --cpu-prof` (its measured run only, after a warm-up); the full figures are in results.json.\n\n' +
    `${sections.join('\n')}`
  );
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
    const result = await benchEngine(raw, work, bare);
    const large = largeRowsFor(engine);
    result.large =
      large.rows > 0
        ? await benchLarge(engine, work, large.rows)
        : { status: 'skipped', reason: large.reason };
    results.push(result);
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
  writeFileSync(join(ROOT, 'bench', 'ingest-profile.md'), profileReport(date, machine, results));
  console.log(`\nStatistics bench, ${date}: ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}`);
  console.log(
    `${machine.loadGenerator}; ${settings.seconds} s per run after ${settings.warmupSeconds} s warm-up\n`,
  );
  console.log(table);
  for (const result of results) {
    if (result.large.status !== 'measured') continue;
    const how = result.engine === 'sqlite' ? 'EXPLAIN QUERY PLAN' : 'EXPLAIN';
    for (const [name, scenario] of [
      ['one-day window', result.large.window],
      ['30-day hourly series', result.large.series],
      ['group_by=device, last hour', result.large.groupWindow],
    ] as const) {
      console.log(`\n${result.engine} ${how}, ${name} (${scenario.request}):`);
      console.log(`  ${scenario.rawSql}\n  params ${JSON.stringify(scenario.rawParams)}`);
      for (const line of scenario.plan) console.log(`    ${line}`);
    }
  }
  console.log(
    `\nwritten to bench/results.json and bench/ingest-profile.md (${report.durationSeconds} s in all)`,
  );
}

main()
  .then(cleanUp)
  .catch(async (error: unknown) => {
    if (stoppingOnSignal) return; // the signal handler is cleaning up and exits
    console.error(`[bench] failed: ${error instanceof Error ? error.message : String(error)}`);
    await cleanUp();
    process.exitCode = 1;
  });
