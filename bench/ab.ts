/**
 * npm run bench:ab: the mixed scenario (bench/mixed.ts) against this checkout (A) and another one
 * (B, the path in BENCH_AB_OTHER, e.g. /work/main), alternating A and B within each pair and which
 * goes first from one pair to the next, so that a noisy moment of a shared machine hits both alike.
 * Prints p50, p95, p99 and req/s of every run with the load average, then the medians and the median
 * of the per-pair ratios A/B. (farm-bench --vs pairs runs too, but reports no p95: hence this.)
 *
 * Each run starts a server of its own on a fresh database, from that checkout's sources under tsx
 * (so B needs no build, and nothing is written into it), on 127.0.0.1.
 *
 * Settings (environment): BENCH_AB_OTHER (required), BENCH_AB_PAIRS (4), BENCH_SECONDS (10) measured
 * after BENCH_WARMUP_SECONDS (2) per run, BENCH_AB_PORT (4100; B listens on the next port),
 * BENCH_AB_DATABASE_URL (a PostgreSQL server to run on instead of SQLite; each run creates and drops a
 * database named BENCH_AB_DB_PREFIX (bench_ab) _a or _b on it), BENCH_AB_ENV (extra settings for both
 * servers, `NAME=value,NAME=value`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serverSettings, wholeSetting } from './ab-settings.js';
import { adminQuery } from './admin.js';
import { MIXED_USERS, writeMixedScript } from './mixed.js';
import { serverEnvironment, startChild, stopChild, waitUntilReady } from './processes.js';
import { median } from './readings.js';
import { checkWrk, runWrk, type WrkResult } from './wrk.js';

const THIS = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const THREADS = 2;

const other = process.env.BENCH_AB_OTHER;
if (!other) throw new Error('BENCH_AB_OTHER: the path of the checkout to compare with, e.g. /work/main');
const pairs = wholeSetting('BENCH_AB_PAIRS', 4);
const seconds = wholeSetting('BENCH_SECONDS', 10);
const warmupSeconds = Number(process.env.BENCH_WARMUP_SECONDS ?? 2);
const basePort = wholeSetting('BENCH_AB_PORT', 4100);
const adminUrl = process.env.BENCH_AB_DATABASE_URL;
const prefix = process.env.BENCH_AB_DB_PREFIX ?? 'bench_ab';
const extraEnv = serverSettings(process.env.BENCH_AB_ENV);

type Side = 'A' | 'B';
const sides: Record<Side, { root: string; port: number; database: string }> = {
  A: { root: THIS, port: basePort, database: `${prefix}_a` },
  B: { root: resolve(other), port: basePort + 1, database: `${prefix}_b` },
};

/** One run: a fresh database and server from `side`'s checkout, the warm-up, then the measured wrk. */
async function runOnce(side: Side): Promise<WrkResult> {
  const { root, port, database } = sides[side];
  const dataDir = mkdtempSync(join(tmpdir(), `bench-ab-${side}-`));
  let databaseUrl = `sqlite:${join(dataDir, 'statistics.db')}`;
  if (adminUrl) {
    await adminQuery(adminUrl, `drop database if exists "${database}" with (force)`);
    await adminQuery(adminUrl, `create database "${database}"`);
    const url = new URL(adminUrl);
    url.pathname = `/${database}`;
    databaseUrl = url.href;
  }
  const server = startChild(process.execPath, ['--import', 'tsx', join('src', 'main.ts')], {
    cwd: root,
    env: { ...serverEnvironment(databaseUrl, port, dataDir), ...extraEnv },
  });
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitUntilReady(`${base}/ready`, server, 120_000);
    const script = await writeMixedScript(base, dataDir);
    const wrk = { url: base, script, connections: MIXED_USERS, threads: THREADS, cwd: THIS };
    if (warmupSeconds > 0) await runWrk({ ...wrk, seconds: warmupSeconds });
    return await runWrk({ ...wrk, seconds });
  } finally {
    await stopChild(server);
    rmSync(dataDir, { recursive: true, force: true });
    if (adminUrl) await adminQuery(adminUrl, `drop database if exists "${database}" with (force)`);
  }
}

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
const figures = (r: WrkResult) =>
  `p50 ${r.latencyMs.p50.toFixed(2)} ms, p95 ${r.latencyMs.p95.toFixed(2)} ms, ` +
  `p99 ${r.latencyMs.p99.toFixed(2)} ms, ${Math.round(r.requestsPerSecond)} req/s` +
  (r.non2xx > 0 ? `, ${r.non2xx} non-2xx` : '') +
  (r.socketErrors.timeout > 0 ? `, ${r.socketErrors.timeout} past wrk's 5 s` : '');

checkWrk();
console.log(
  `mixed 8:1:1, ${MIXED_USERS} users, ${pairs} pairs of ${seconds} s (after ${warmupSeconds} s warm-up) on ` +
    `${adminUrl ? 'PostgreSQL' : 'SQLite'}: A = ${sides.A.root}, B = ${sides.B.root}`,
);
const results: Record<Side, WrkResult[]> = { A: [], B: [] };
const ratios = { p50: [] as number[], p95: [] as number[], p99: [] as number[], rps: [] as number[] };
for (let pair = 0; pair < pairs; pair++) {
  const order: Side[] = pair % 2 === 0 ? ['A', 'B'] : ['B', 'A'];
  const got = {} as Record<Side, WrkResult>;
  for (const side of order) {
    got[side] = await runOnce(side);
    results[side].push(got[side]);
    console.log(`pair ${pair + 1} ${side}: ${figures(got[side])} (load ${load()})`);
  }
  const { A, B } = got;
  ratios.p50.push(A.latencyMs.p50 / B.latencyMs.p50);
  ratios.p95.push(A.latencyMs.p95 / B.latencyMs.p95);
  ratios.p99.push(A.latencyMs.p99 / B.latencyMs.p99);
  ratios.rps.push(A.requestsPerSecond / B.requestsPerSecond);
}
for (const side of ['A', 'B'] as const) {
  const runs = results[side];
  console.log(
    `median ${side}: p50 ${median(runs.map((r) => r.latencyMs.p50)).toFixed(2)} ms, ` +
      `p95 ${median(runs.map((r) => r.latencyMs.p95)).toFixed(2)} ms, ` +
      `p99 ${median(runs.map((r) => r.latencyMs.p99)).toFixed(2)} ms, ` +
      `${Math.round(median(runs.map((r) => r.requestsPerSecond)))} req/s`,
  );
}
console.log(
  `median ratio A/B over ${pairs} pairs: p50 ${median(ratios.p50).toFixed(2)}, p95 ${median(ratios.p95).toFixed(2)}, ` +
    `p99 ${median(ratios.p99).toFixed(2)}, req/s ${median(ratios.rps).toFixed(2)} (load ${load()})`,
);
