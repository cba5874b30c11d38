/**
 * npm run bench:heavy-ab: `npm run bench`'s heavy-load scenario (bench/heavy.ts: single-reading ingest
 * and /health, idle and then while 4 clients repeat exact statistics of x over 1M readings) on
 * PostgreSQL, for this checkout (A) against another (B, the path in BENCH_AB_OTHER, e.g. a worktree
 * of main), alternating A and B within each pair and which goes first from one pair to the next.
 * Prints, per run and as medians: idle ingest req/s, ingest under the heavy queries, their ratio,
 * /health p99 idle and loaded, the heavy answers' median, and the load average; then the median of
 * the per-pair ratios A/B.
 *
 * The readings are bulk-loaded once into BENCH_HEAVY_AB_DATABASE (statistics_heavy_ab) plus `_seed`
 * on the PostgreSQL server of BENCH_DATABASE_URL, and folded by a server before any run (so no run
 * pays for the folder's catching up, but for the hour in progress); the seed is kept for the next call (BENCH_HEAVY_AB_KEEP_SEED=0
 * drops it at the end). Each run gets a copy (CREATE DATABASE ... TEMPLATE), dropped after it, and a
 * server of its own from that checkout's sources under tsx (B needs no build), on 127.0.0.1 at
 * BENCH_AB_PORT (4100; B the next port).
 *
 * Settings (environment): BENCH_DATABASE_URL (required), BENCH_AB_OTHER (required), BENCH_AB_PAIRS (3),
 * BENCH_HEAVY_SECONDS (10) per measured run, BENCH_ROWS (1000000), BENCH_HEALTH_PAUSE_MS (the /health
 * probe's pause after each answer, bench/heavy.ts; 0: as fast as answered, as before), BENCH_AB_ENV (extra settings for A's
 * server, `NAME=value,NAME=value`), BENCH_AB_OTHER_ENV (the same for B's).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { serverSettings, wholeSetting } from './ab-settings.js';
import { adminQuery, adminRows } from './admin.js';
import { createDevice } from './api.js';
import { HEALTH_PROBE_PAUSE_MS, type HeavyLoad, heavyLoad, writeHealthProbe } from './heavy.js';
import { postgresEngine } from './postgres.js';
import { killAllChildren, serverEnvironment, startChild, stopChild, waitUntilReady } from './processes.js';
import { median } from './readings.js';
import { checkWrk, writeWrkScript } from './wrk.js';

const THIS = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const adminUrl = process.env.BENCH_DATABASE_URL;
if (!adminUrl?.startsWith('postgres')) throw new Error('BENCH_DATABASE_URL: a PostgreSQL server to run on');
const other = process.env.BENCH_AB_OTHER;
if (!other) throw new Error('BENCH_AB_OTHER: the path of the checkout to compare with');
const pairs = wholeSetting('BENCH_AB_PAIRS', 3);
const seconds = wholeSetting('BENCH_HEAVY_SECONDS', 10);
const rows = wholeSetting('BENCH_ROWS', 1_000_000);
const basePort = wholeSetting('BENCH_AB_PORT', 4100);
const database = process.env.BENCH_HEAVY_AB_DATABASE ?? 'statistics_heavy_ab';
const keepSeed = process.env.BENCH_HEAVY_AB_KEEP_SEED !== '0';
const healthPauseMs = Number(process.env.BENCH_HEALTH_PAUSE_MS ?? HEALTH_PROBE_PAUSE_MS);
if (!Number.isInteger(healthPauseMs) || healthPauseMs < 0)
  throw new Error('BENCH_HEALTH_PAUSE_MS must be a whole number of milliseconds (0: closed loop)');

type Side = 'A' | 'B';
const sides: Record<Side, { root: string; port: number; env: Record<string, string> }> = {
  A: { root: THIS, port: basePort, env: serverSettings(process.env.BENCH_AB_ENV) },
  B: { root: resolve(other), port: basePort + 1, env: serverSettings(process.env.BENCH_AB_OTHER_ENV) },
};

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
const log = (message: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${message}`);

function urlOf(name: string): string {
  const url = new URL(adminUrl as string);
  url.pathname = `/${name}`;
  return url.href;
}

/** A server from `root`'s sources on `databaseUrl`, ready to answer. */
async function startServer(root: string, databaseUrl: string, port: number, env: Record<string, string>) {
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-heavy-ab-'));
  const child = startChild(process.execPath, ['--import', 'tsx', join('src', 'main.ts')], {
    cwd: root,
    env: { ...serverEnvironment(databaseUrl, port, dataDir), ...env },
  });
  const base = `http://127.0.0.1:${port}`;
  await waitUntilReady(`${base}/ready`, child, 120_000);
  return {
    base,
    async stop() {
      await stopChild(child, 30_000);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

interface Seed {
  deviceId: number;
  /** The instant of the last bulk-loaded reading: the heavy request selects up to it, not the ingest's. */
  loadedUntil: string;
}

/** The seed database: loaded and folded once, then reused (its device and last instant read back). */
async function seed(): Promise<Seed> {
  const name = `${database}_seed`;
  const found = await adminRows(adminUrl as string, 'select 1 from pg_database where datname = $1', [name]);
  if (found.length === 0) {
    log(`seeding ${name} with ${rows.toLocaleString('en-US')} readings`);
    const raw = await postgresEngine(adminUrl as string, name);
    try {
      const server = await startServer(THIS, raw.databaseUrl, basePort, {});
      const deviceId = await createDevice(server.base);
      await server.stop();
      await raw.bulkLoad(deviceId, rows);
    } finally {
      await raw.close();
    }
  }
  // The folder of a server catches up on the loaded minutes; the runs start from none left to fold.
  const server = await startServer(THIS, urlOf(name), basePort, {});
  const client = new pg.Client({ connectionString: urlOf(name) });
  await client.connect();
  try {
    // The minutes of the hour in progress wait for its end: done when the count stops falling.
    let before = Number.POSITIVE_INFINITY;
    for (;;) {
      const { rows: left } = await client.query<{ n: string }>(
        'select count(*) as n from reading_minutes where folded = 0',
      );
      const unfolded = Number(left[0]?.n);
      if (unfolded === 0 || unfolded >= before) break;
      log(`waiting for the folder: ${unfolded} minutes left`);
      before = unfolded;
      await sleep(5000);
    }
    await server.stop();
    await client.query('vacuum analyze');
    const { rows: found } = await client.query<{ device_id: number; until: string; n: string }>(
      'select min(device_id) as device_id, max(created_at)::text as until, count(*) as n from data',
    );
    const row = found[0];
    if (!row || Number(row.n) !== rows) throw new Error(`${name} holds ${row?.n} readings, not ${rows}`);
    return { deviceId: row.device_id, loadedUntil: new Date(Number(row.until)).toISOString() };
  } finally {
    await client.end();
  }
}

/** One run: a copy of the seed, a server from `side`'s checkout, the heavy-load scenario. */
async function runOnce(side: Side, from: Seed, run: number): Promise<HeavyLoad> {
  const { root, port, env } = sides[side];
  const copy = `${database}_run${run}`;
  await adminQuery(adminUrl as string, `create database "${copy}" template "${database}_seed"`);
  const server = await startServer(root, urlOf(copy), port, env);
  const scripts = mkdtempSync(join(tmpdir(), 'bench-heavy-ab-scripts-'));
  try {
    return await heavyLoad({
      base: server.base,
      ingestScript: writeWrkScript(
        scripts,
        'single',
        JSON.stringify({ device_id: from.deviceId, x: 1.5, y: 2.5, z: 3.5 }),
      ),
      healthScript: writeHealthProbe(scripts, healthPauseMs),
      heavyRequest: `/analyze_statistics/?device_id=${from.deviceId}&attr=x&end_date=${from.loadedUntil}`,
      loops: 4,
      seconds,
      cwd: THIS,
      log: () => {},
    });
  } finally {
    await server.stop();
    rmSync(scripts, { recursive: true, force: true });
    await adminQuery(adminUrl as string, `drop database if exists "${copy}" with (force)`);
  }
}

const figures = (r: HeavyLoad) =>
  `ingest idle ${Math.round(r.idle.ingest.requestsPerSecond)} req/s, loaded ${Math.round(r.loaded.ingest.requestsPerSecond)} ` +
  `(${r.ingestLoadedToIdle.toFixed(2)} of idle); /health p99 idle ${r.idle.health.latencyMs.p99.toFixed(1)} ms ` +
  `(${Math.round(r.idle.health.requestsPerSecond)} req/s), loaded ${r.loaded.health.latencyMs.p99.toFixed(1)} ms ` +
  `(${Math.round(r.loaded.health.requestsPerSecond)} req/s); heavy median ${Math.round(r.heavyMedianMs)} ms ` +
  `(${r.heavyAnswered} answers)`;

async function main(): Promise<void> {
  checkWrk();
  const from = await seed();
  log(
    `heavy load, ${pairs} pairs of ${seconds} s idle then ${seconds} s loaded on PostgreSQL, /health paused ${healthPauseMs} ms: ` +
      `A = ${sides.A.root} ${JSON.stringify(sides.A.env)}, B = ${sides.B.root} ${JSON.stringify(sides.B.env)} (load ${load()})`,
  );
  const results: Record<Side, HeavyLoad[]> = { A: [], B: [] };
  const ratios = { share: [] as number[], loadedP99: [] as number[], heavy: [] as number[] };
  let run = 0;
  try {
    for (let pair = 0; pair < pairs; pair++) {
      const order: Side[] = pair % 2 === 0 ? ['A', 'B'] : ['B', 'A'];
      const got = {} as Record<Side, HeavyLoad>;
      for (const side of order) {
        got[side] = await runOnce(side, from, run++);
        results[side].push(got[side]);
        log(`pair ${pair + 1} ${side}: ${figures(got[side])} (load ${load()})`);
      }
      ratios.share.push(got.A.ingestLoadedToIdle / got.B.ingestLoadedToIdle);
      ratios.loadedP99.push(got.A.loaded.health.latencyMs.p99 / got.B.loaded.health.latencyMs.p99);
      ratios.heavy.push(got.A.heavyMedianMs / got.B.heavyMedianMs);
    }
  } finally {
    if (!keepSeed)
      await adminQuery(adminUrl as string, `drop database if exists "${database}_seed" with (force)`);
  }
  for (const side of ['A', 'B'] as const) {
    const runs = results[side];
    const of = (pick: (r: HeavyLoad) => number) => median(runs.map(pick));
    log(
      `median ${side}: ingest idle ${Math.round(of((r) => r.idle.ingest.requestsPerSecond))} req/s, loaded ` +
        `${Math.round(of((r) => r.loaded.ingest.requestsPerSecond))} req/s, share ${of((r) => r.ingestLoadedToIdle).toFixed(2)}; ` +
        `/health p99 idle ${of((r) => r.idle.health.latencyMs.p99).toFixed(1)} ms, loaded ` +
        `${of((r) => r.loaded.health.latencyMs.p99).toFixed(1)} ms; heavy ${Math.round(of((r) => r.heavyMedianMs))} ms`,
    );
  }
  log(
    `median ratio A/B over ${pairs} pairs: ingest share ${median(ratios.share).toFixed(2)}, loaded /health p99 ` +
      `${median(ratios.loadedP99).toFixed(2)}, heavy median ${median(ratios.heavy).toFixed(2)} (load ${load()})`,
  );
}

process.on('exit', killAllChildren);
await main();
