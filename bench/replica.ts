/**
 * npm run bench:replica: statistics from the primary against statistics from a streaming replica.
 *
 * The bench starts a PostgreSQL cluster of its own (the primary) in a temporary directory on a free
 * port of 127.0.0.1, and a streaming replica of it (`pg_basebackup -R -X stream`) on another, from the
 * machine's newest /usr/lib/postgresql/N/bin (as the `postgres` OS user when run as root). Server A
 * (DATABASE_URL=primary) migrates the primary; BENCH_STATS_ROWS (1,000,000) readings over 10 devices
 * are loaded there with set-based SQL and their minute rollups rebuilt from them; once the replica has
 * replayed the primary's WAL, server B starts with DATABASE_URL=primary and DATABASE_READ_URL=replica.
 * Then BENCH_STATS_REQUESTS (20) sequential `GET /analyze_statistics/?device_id=D&attr=x` and
 * `?attr=x` on each, A and B alternating (which goes first alternates too), after one warm-up each:
 * medians; the answers of A and B must agree, and B's `/metrics` show that the replica served them.
 * Then single-reading ingest on A (wrk, 10 connections): idle, beside statistics through A, and
 * beside statistics through B, BENCH_INGEST_ROUNDS (6, 0 for none) rotating rounds of
 * BENCH_INGEST_SECONDS (8). Both clusters are stopped and the directory removed at the end, on error
 * and Ctrl-C too. Writes bench/replica-results.json.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { adminRows, loadReadings } from './admin.js';
import { createDevice, timedGet } from './api.js';
import {
  type Child,
  freePort,
  killAllChildren,
  runVisible,
  serverEnvironment,
  startChild,
  stopAllChildren,
  waitUntilReady,
} from './processes.js';
import { median } from './readings.js';
import { checkWrk, runWrk, writeWrkScript } from './wrk.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const statsRows = Number(process.env.BENCH_STATS_ROWS ?? 1_000_000);
const statsRequests = Number(process.env.BENCH_STATS_REQUESTS ?? 20);
const DEVICES = 10;
const METRICS_TOKEN = 'bench-metrics-token-0123';
const REPLAY_TIMEOUT_MS = 120_000;
const ingestRounds = Number(process.env.BENCH_INGEST_ROUNDS ?? 6);
const ingestSeconds = Number(process.env.BENCH_INGEST_SECONDS ?? 8);

const isRoot = process.getuid?.() === 0;
const pgBin = readdirSync('/usr/lib/postgresql')
  .sort((a, b) => Number(b) - Number(a))
  .map((version) => join('/usr/lib/postgresql', version, 'bin'))[0];

/** Runs a PostgreSQL program (as `postgres` when root: initdb refuses root); throws with its output. */
function pg(program: string, args: string[]): void {
  if (pgBin === undefined) throw new Error('no PostgreSQL under /usr/lib/postgresql');
  const command = join(pgBin, program);
  const [file, argv] = isRoot ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
  const result = spawnSync(file, argv, { encoding: 'utf8', timeout: 120_000 });
  if (result.status !== 0)
    throw new Error(`${program} ${args.join(' ')} failed:\n${result.stdout}${result.stderr}`);
}

/** One cluster (primary or replica) in `dir`/`name`, started on `port`. */
class Cluster {
  readonly data: string;
  running = false;

  constructor(
    readonly dir: string,
    readonly name: string,
    readonly port: number,
  ) {
    this.data = join(dir, name);
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  start(): void {
    const options = `-p ${this.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${this.dir}`;
    const log = join(this.dir, `${this.name}.log`);
    pg('pg_ctl', ['start', '-D', this.data, '-l', log, '-w', '-t', '60', '-o', options]);
    this.running = true;
  }

  stop(): void {
    if (!this.running) return;
    this.running = false;
    try {
      pg('pg_ctl', ['stop', '-D', this.data, '-m', 'immediate', '-w', '-t', '30']);
    } catch {
      // already gone
    }
  }
}

/** The primary (initdb) and its streaming replica (pg_basebackup -R), in one temporary directory. */
async function startClusters(dir: string): Promise<{ primary: Cluster; replica: Cluster }> {
  if (isRoot) {
    const id = (flag: string) =>
      Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
    chownSync(dir, id('-u'), id('-g'));
  }
  const primary = new Cluster(dir, 'primary', await freePort());
  pg('initdb', ['-D', primary.data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync']);
  primary.start();
  const replica = new Cluster(dir, 'replica', await freePort());
  const from = ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres'];
  pg('pg_basebackup', [...from, '-D', replica.data, '-R', '-X', 'stream', '-c', 'fast', '--no-sync']);
  replica.start();
  return { primary, replica };
}

/** Waits until the replica has replayed the primary's WAL as of now; answers the seconds it took. */
async function waitForReplay(primary: Cluster, replica: Cluster): Promise<number> {
  const started = performance.now();
  const [current] = await adminRows<{ lsn: string }>(primary.url, 'select pg_current_wal_lsn()::text as lsn');
  while (performance.now() - started < REPLAY_TIMEOUT_MS) {
    const [replayed] = await adminRows<{ behind: string | null }>(
      replica.url,
      'select pg_wal_lsn_diff($1::pg_lsn, pg_last_wal_replay_lsn())::text as behind',
      [current?.lsn],
    );
    if (replayed?.behind !== null && Number(replayed?.behind) <= 0)
      return (performance.now() - started) / 1000;
    await sleep(200);
  }
  throw new Error(`the replica did not replay ${current?.lsn} within ${REPLAY_TIMEOUT_MS / 1000} s`);
}

/** statistics_database_reads_total of B's /metrics, by target, and statistics_replica_fallbacks_total. */
async function readsByTarget(base: string): Promise<{ replica: number; primary: number; fallbacks: number }> {
  const response = await fetch(`${base}/metrics`, {
    headers: { authorization: `Bearer ${METRICS_TOKEN}` },
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`GET /metrics answered ${response.status}: ${text.slice(0, 300)}`);
  const count = (metric: string) =>
    Number(new RegExp(`^${metric.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return {
    replica: count('statistics_database_reads_total{target="replica"}'),
    primary: count('statistics_database_reads_total{target="primary"}'),
    fallbacks: count('statistics_replica_fallbacks_total'),
  };
}

/**
 * Where two answers differ (a JSON path), or undefined when they agree, numbers to a relative 1e-9:
 * PostgreSQL's parallel workers add a million doubles in no fixed order, so sums differ in the last bits.
 */
function difference(a: unknown, b: unknown, path = '$'): string | undefined {
  if (typeof a === 'number' && typeof b === 'number')
    return Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b))
      ? undefined
      : `${path}: ${a} against ${b}`;
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const key of keys) {
      const found = difference(
        (a as Record<string, unknown>)[key],
        (b as Record<string, unknown>)[key],
        `${path}.${key}`,
      );
      if (found !== undefined) return found;
    }
    return undefined;
  }
  return a === b ? undefined : `${path}: ${JSON.stringify(a)} against ${JSON.stringify(b)}`;
}

async function startServer(name: string, env: NodeJS.ProcessEnv): Promise<{ base: string; child: Child }> {
  const port = Number(env.PORT);
  const child = startChild(process.execPath, [join('dist', 'src', 'cli', 'main.js'), 'serve'], {
    cwd: ROOT,
    env,
  });
  const base = `http://127.0.0.1:${port}`;
  await waitUntilReady(`${base}/ready`, child, 60_000);
  console.log(`server ${name} ready on ${base}`);
  return { base, child };
}

type Query = 'oneDevice' | 'allDevices';
type Server = 'primary' | 'replica';
/** What runs beside the ingest on A: nothing, or one client repeating every device's statistics. */
type Beside = 'idle' | 'statisticsOnPrimary' | 'statisticsOnReplica';

/**
 * Single-reading ingest on A (wrk, 10 connections, BENCH_INGEST_SECONDS) with nothing beside it, with
 * one client repeating every device's statistics through A (the primary), and through B (the replica),
 * over BENCH_INGEST_ROUNDS rounds whose order rotates: medians of requests/s, and statistics answered.
 */
async function ingestBesideStatistics(
  dir: string,
  ingestUrl: string,
  body: string,
  statistics: Record<Server, string>,
  loadAverages: number[],
) {
  const script = writeWrkScript(dir, 'single', body);
  const wrk = (seconds: number) =>
    runWrk({ url: ingestUrl, script, connections: 10, threads: 2, seconds, cwd: ROOT });
  await wrk(2);
  const besides: Beside[] = ['idle', 'statisticsOnPrimary', 'statisticsOnReplica'];
  const runs: { beside: Beside; rps: number; p99: number; statisticsAnswered: number }[] = [];
  for (let round = 0; round < ingestRounds; round++) {
    for (const beside of [...besides.slice(round % 3), ...besides.slice(0, round % 3)]) {
      let stopped = false;
      let statisticsAnswered = 0;
      const url = beside === 'statisticsOnPrimary' ? statistics.primary : statistics.replica;
      const loop = (async () => {
        while (beside !== 'idle' && !stopped) {
          await timedGet(url);
          statisticsAnswered += 1;
        }
      })();
      const result = await wrk(ingestSeconds);
      stopped = true;
      await loop;
      if (result.non2xx > 0) throw new Error(`ingest: ${result.non2xx} answers were errors`);
      runs.push({ beside, rps: result.requestsPerSecond, p99: result.latencyMs.p99, statisticsAnswered });
      loadAverages.push(loadavg()[0] ?? 0);
      console.log(
        `ingest round ${round + 1}, ${beside}: ${Math.round(result.requestsPerSecond)} req/s, ${statisticsAnswered} statistics`,
      );
    }
  }
  const medians = Object.fromEntries(
    besides.map((beside) => {
      const of = runs.filter((run) => run.beside === beside);
      return [
        beside,
        {
          rps: median(of.map((run) => run.rps)),
          p99: median(of.map((run) => run.p99)),
          statisticsAnswered: median(of.map((run) => run.statisticsAnswered)),
        },
      ];
    }),
  ) as Record<Beside, { rps: number; p99: number; statisticsAnswered: number }>;
  return { medians, runs };
}

async function main(): Promise<void> {
  if (ingestRounds > 0) checkWrk();
  runVisible('npx', ['tsc', '-p', 'tsconfig.build.json'], ROOT);
  const dir = mkdtempSync(join(tmpdir(), 'statistics-bench-replica-'));
  let clusters: { primary: Cluster; replica: Cluster } | undefined;
  const cleanUp = () => {
    killAllChildren();
    clusters?.replica.stop();
    clusters?.primary.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', cleanUp);
  // Ctrl-C: exit through the 'exit' handlers (this one, and the children's), not past them.
  const interrupted = () => process.exit(130);
  process.once('SIGINT', interrupted);
  const began = new Date();
  const loadAverages: number[] = [loadavg()[0] ?? 0];
  try {
    clusters = await startClusters(dir);
    const { primary, replica } = clusters;
    const portA = await freePort();
    const a = await startServer('A (primary only)', serverEnvironment(primary.url, portA, join(dir, 'a')));
    const devices: number[] = [];
    for (let i = 0; i < DEVICES; i++) devices.push(await createDevice(a.base));
    const loadSeconds = await loadReadings(primary.url, devices, statsRows);
    const replaySeconds = await waitForReplay(primary, replica);
    console.log(
      `${statsRows} readings loaded in ${loadSeconds.toFixed(1)} s, replayed ${replaySeconds.toFixed(1)} s later`,
    );
    const portB = await freePort();
    const b = await startServer('B (reads on the replica)', {
      ...serverEnvironment(primary.url, portB, join(dir, 'b')),
      DATABASE_READ_URL: replica.url,
      METRICS_TOKEN,
    });
    // B reads the replica's replay position every second: let it learn that the replica is caught up.
    await sleep(2500);

    const bases: Record<Server, string> = { primary: a.base, replica: b.base };
    const paths: Record<Query, string> = {
      oneDevice: `/analyze_statistics/?device_id=${devices[2]}&attr=x`,
      allDevices: '/analyze_statistics/?attr=x',
    };
    const times: Record<Query, Record<Server, number[]>> = {
      oneDevice: { primary: [], replica: [] },
      allDevices: { primary: [], replica: [] },
    };
    const answerDifferences: Record<Query, string | null> = { oneDevice: null, allDevices: null };
    for (const query of ['oneDevice', 'allDevices'] as const) {
      const fromA = await timedGet(bases.primary + paths[query]);
      const fromB = await timedGet(bases.replica + paths[query]);
      answerDifferences[query] = difference(fromA.body, fromB.body) ?? null;
    }
    const before = await readsByTarget(b.base);
    for (let i = 0; i < statsRequests; i++) {
      const order: Server[] = i % 2 === 0 ? ['primary', 'replica'] : ['replica', 'primary'];
      for (const query of ['oneDevice', 'allDevices'] as const)
        for (const server of order)
          times[query][server].push((await timedGet(bases[server] + paths[query])).ms);
      if (i % 5 === 4) loadAverages.push(loadavg()[0] ?? 0);
    }
    const after = await readsByTarget(b.base);
    const replicaReads = after.replica - before.replica;
    const primaryReadsOfB = after.primary - before.primary;

    const medians = Object.fromEntries(
      (['oneDevice', 'allDevices'] as const).map((query) => [
        query,
        { primaryMs: median(times[query].primary), replicaMs: median(times[query].replica) },
      ]),
    ) as Record<Query, { primaryMs: number; replicaMs: number }>;
    console.log(
      `\nmedians of ${statsRequests} sequential requests each, A and B alternating, ${statsRows} readings over ${DEVICES} devices`,
    );
    console.log(
      `${'statistics of x'.padEnd(24)}${'A: primary'.padStart(14)}${'B: replica'.padStart(14)}${'B/A'.padStart(8)}`,
    );
    for (const [query, label] of [
      ['oneDevice', 'one device, ms'],
      ['allDevices', 'all devices, ms'],
    ] as const) {
      const { primaryMs, replicaMs } = medians[query];
      console.log(
        `${label.padEnd(24)}${primaryMs.toFixed(1).padStart(14)}${replicaMs.toFixed(1).padStart(14)}${(replicaMs / primaryMs).toFixed(2).padStart(8)}`,
      );
    }
    console.log(
      `B's reads during the timed requests: ${replicaReads} on the replica, ${primaryReadsOfB} on the primary ` +
        `(${2 * statsRequests} requests); answers of A and B: ${answerDifferences.oneDevice ?? answerDifferences.allDevices ?? 'the same'}`,
    );
    if (replicaReads < 2 * statsRequests)
      throw new Error(`the replica served ${replicaReads} of B's ${2 * statsRequests} statistics requests`);

    const beforeIngest = await readsByTarget(b.base);
    const ingest =
      ingestRounds > 0
        ? await ingestBesideStatistics(
            dir,
            `${a.base}/data/`,
            JSON.stringify({ device_id: devices[0], x: 1.5, y: 2.5, z: 3.5 }),
            { primary: a.base + paths.allDevices, replica: b.base + paths.allDevices },
            loadAverages,
          )
        : undefined;
    const afterIngest = await readsByTarget(b.base);
    if (ingest !== undefined) {
      console.log(
        `B's reads beside the ingest: ${afterIngest.replica - beforeIngest.replica} on the replica, ` +
          `${afterIngest.primary - beforeIngest.primary} on the primary ` +
          `(${afterIngest.fallbacks - beforeIngest.fallbacks} of them after failing on the replica)`,
      );
      const idle = ingest.medians.idle.rps;
      console.log(
        `\nsingle-reading ingest on A, 10 connections, medians of ${ingestRounds} rounds of ${ingestSeconds} s`,
      );
      for (const [beside, label] of [
        ['idle', 'idle'],
        ['statisticsOnPrimary', "statistics on A's primary"],
        ['statisticsOnReplica', "statistics on B's replica"],
      ] as const) {
        const { rps, p99, statisticsAnswered } = ingest.medians[beside];
        console.log(
          `${label.padEnd(28)}${rps.toFixed(0).padStart(8)} req/s${(rps / idle).toFixed(2).padStart(7)}  p99 ${p99.toFixed(1)} ms, ${statisticsAnswered} statistics`,
        );
      }
    }
    console.log(`load average: ${loadAverages.map((l) => l.toFixed(1)).join(', ')}`);
    writeFileSync(
      join(ROOT, 'bench', 'replica-results.json'),
      `${JSON.stringify(
        {
          date: began.toISOString(),
          seconds: (Date.now() - began.getTime()) / 1000,
          settings: { statsRows, statsRequests, devices: DEVICES, ingestRounds, ingestSeconds },
          loadAverages,
          loadSeconds,
          replaySeconds,
          medians,
          readsOfB: { replica: replicaReads, primary: primaryReadsOfB },
          answerDifferences,
          times,
          ingest: ingest ?? null,
          readsOfBBesideIngest: {
            replica: afterIngest.replica - beforeIngest.replica,
            primary: afterIngest.primary - beforeIngest.primary,
            fallbacks: afterIngest.fallbacks - beforeIngest.fallbacks,
          },
        },
        null,
        2,
      )}\n`,
    );
    console.log('written to bench/replica-results.json');
  } finally {
    await stopAllChildren();
    cleanUp();
    process.off('exit', cleanUp);
    process.off('SIGINT', interrupted);
  }
}

await main();
