/**
 * npm run bench:wal (issue 10): how large SQLite's write-ahead log grows under sustained ingest with
 * statistics read alongside. Starts the server on a fresh SQLite file, sends 10,000-reading batches
 * (BENCH_WAL_SENDERS at a time, 2) and exact statistics of the same devices (BENCH_WAL_READERS at a
 * time, 2) for BENCH_WAL_SECONDS (20), samples the `-wal` file's size every second, and prints its
 * largest and final sizes (at the end of the load, and after 3 idle seconds), the readings stored per
 * second, the statistics answered, and every 5xx.
 *
 * A/B: BENCH_WAL_ROOTS lists checkouts to run the server from (`/work/main,.`: the current checkout by
 * default), BENCH_WAL_ROUNDS (3) rounds alternate them (A, B, A, B, ...); each run has a fresh file.
 * The server listens on BENCH_WAL_PORT (4500). Other settings reach the server through the environment
 * (SQLITE_WAL_LIMIT_MB, for instance).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createDevice } from './api.js';
import { serverEnvironment, startChild, stopChild, waitUntilReady } from './processes.js';
import { median } from './readings.js';

const ROOTS = (process.env.BENCH_WAL_ROOTS ?? '.').split(',').map((root) => resolve(root));
const ROUNDS = Number(process.env.BENCH_WAL_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_WAL_SECONDS ?? 20);
const SENDERS = Number(process.env.BENCH_WAL_SENDERS ?? 2);
const READERS = Number(process.env.BENCH_WAL_READERS ?? 2);
const PORT = Number(process.env.BENCH_WAL_PORT ?? 4500);
const DEVICES = 10;
const BATCH = 10_000;
const MB = 1024 * 1024;

interface Run {
  root: string;
  maxMb: number;
  endMb: number;
  idleMb: number;
  readingsPerSecond: number;
  statistics: number;
  /** Answers by status, 200 left out (0: no answer). */
  others: Record<string, number>;
}

const log = (line: string) => console.log(`[bench:wal] ${line}`);

function walMb(databaseFile: string): number {
  try {
    return statSync(`${databaseFile}-wal`).size / MB;
  } catch {
    return 0; // no log (yet, or removed at close)
  }
}

/** One request; status 0 when no answer came (a connection closed or reset, or 60 s passed). */
async function attempt(url: string, init: RequestInit): Promise<{ status: number; text: string }> {
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(60_000) });
    return { status: response.status, text: await response.text() };
  } catch (error) {
    return { status: 0, text: String(error) };
  }
}

function batchBody(deviceIds: number[], seed: number): string {
  const rows = [];
  for (let i = 0; i < BATCH; i++) {
    rows.push({
      device_id: deviceIds[i % deviceIds.length],
      x: ((i * 7 + seed) % 4000) / 100 - 20,
      y: ((i * 13 + seed) % 1000) / 10,
      z: ((i * 31 + seed) % 5000) / 100,
    });
  }
  return JSON.stringify(rows);
}

async function runOnce(root: string): Promise<Run> {
  const work = mkdtempSync(join(tmpdir(), 'bench-wal-'));
  const file = join(work, 'wal.db');
  const base = `http://127.0.0.1:${PORT}`;
  const child = startChild(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve'], {
    cwd: root,
    env: serverEnvironment(`sqlite:${file}`, PORT, work),
  });
  try {
    await waitUntilReady(`${base}/ready`, child, 180_000);
    const deviceIds: number[] = [];
    for (let d = 0; d < DEVICES; d++) deviceIds.push(await createDevice(base));
    const bodies = [0, 1, 2, 3].map((seed) => batchBody(deviceIds, seed));
    const others: Record<string, number> = {};
    const count = (status: number) => {
      others[status] = (others[status] ?? 0) + 1;
    };
    let stored = 0;
    let statistics = 0;
    let maxMb = 0;
    const began = performance.now();
    const running = () => performance.now() - began < SECONDS * 1000;
    const sampler = (async () => {
      while (running()) {
        maxMb = Math.max(maxMb, walMb(file));
        await sleep(1000);
      }
    })();
    const send = async (sender: number) => {
      for (let n = 0; running(); n++) {
        const answer = await attempt(`${base}/data/`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: bodies[(n + sender) % bodies.length] as string,
        });
        if (answer.status === 200) stored += (JSON.parse(answer.text) as { stored: number }).stored;
        else {
          count(answer.status);
          await sleep(100);
        }
      }
    };
    const read = async (reader: number) => {
      for (let n = 0; running(); n++) {
        const device = deviceIds[(n + reader) % DEVICES] as number;
        const answer = await attempt(`${base}/analyze_statistics/?device_id=${device}&attr=all`, {});
        if (answer.status === 200) statistics++;
        else {
          count(answer.status);
          await sleep(100);
        }
      }
    };
    await Promise.all([
      sampler,
      ...Array.from({ length: SENDERS }, (_, i) => send(i)),
      ...Array.from({ length: READERS }, (_, i) => read(i)),
    ]);
    const seconds = (performance.now() - began) / 1000;
    const endMb = walMb(file);
    maxMb = Math.max(maxMb, endMb);
    await sleep(3000);
    const idleMb = walMb(file);
    return { root, maxMb, endMb, idleMb, readingsPerSecond: stored / seconds, statistics, others };
  } finally {
    await stopChild(child);
    rmSync(work, { recursive: true, force: true });
  }
}

const runs: Run[] = [];
for (let round = 0; round < ROUNDS; round++) {
  for (const root of ROOTS) {
    const run = await runOnce(root);
    runs.push(run);
    log(
      `${root} round ${round + 1}: -wal max ${run.maxMb.toFixed(0)} MB, end ${run.endMb.toFixed(0)} MB, ` +
        `idle ${run.idleMb.toFixed(0)} MB; ${run.readingsPerSecond.toFixed(0)} readings/s, ` +
        `${run.statistics} statistics; other answers ${JSON.stringify(run.others)}`,
    );
  }
}
for (const root of ROOTS) {
  const mine = runs.filter((run) => run.root === root);
  const m = (pick: (run: Run) => number) => median(mine.map(pick)).toFixed(0);
  log(
    `${root} median of ${mine.length}: -wal max ${m((r) => r.maxMb)} MB, end ${m((r) => r.endMb)} MB, ` +
      `idle ${m((r) => r.idleMb)} MB; ${m((r) => r.readingsPerSecond)} readings/s, ${m((r) => r.statistics)} statistics`,
  );
}
