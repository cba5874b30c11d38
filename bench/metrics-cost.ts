import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Child, freePort, startChild, stopChild, waitUntilReady } from './processes.js';
import { checkWrk, runWrk, writeWrkScript } from './wrk.js';

/**
 * `npm run bench:metrics`: what metrics cost single-reading ingest. Two servers of the same build,
 * each on its own fresh SQLite database, one with METRICS_TOKEN set (request histogram, process
 * metrics) and one without; wrk sends one reading per POST /data/ with 10 connections to each in
 * turn, ROUNDS times (default 6) for SECONDS each (default 10), so both see the same machine load.
 * Writes bench/metrics-cost-results.json.
 */
const ROOT = new URL('..', import.meta.url).pathname;
const rounds = Number(process.env.ROUNDS ?? 6);
const seconds = Number(process.env.SECONDS ?? 10);

async function start(dir: string, metrics: boolean): Promise<{ child: Child; base: string }> {
  const port = await freePort();
  const child = startChild(process.execPath, [join('dist', 'src', 'cli', 'main.js'), 'serve'], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_ENV: 'development',
      DATABASE_URL: `sqlite:${join(dir, 'statistics.db')}`,
      DATA_DIR: dir,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'warn',
      ...(metrics ? { METRICS_TOKEN: 'bench-metrics-token-0123' } : {}),
    },
  });
  const base = `http://127.0.0.1:${port}`;
  await waitUntilReady(`${base}/ready`, child);
  const device = await fetch(`${base}/device/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"name":"bench"}',
  });
  if (device.status !== 200) throw new Error(`device: ${device.status}`);
  return { child, base };
}

checkWrk();
const work = mkdtempSync(join(tmpdir(), 'statistics-bench-metrics-'));
const servers: Child[] = [];
try {
  const off = await start(mkdtempSync(join(work, 'off-')), false);
  const on = await start(mkdtempSync(join(work, 'on-')), true);
  servers.push(off.child, on.child);
  const script = writeWrkScript(work, 'single', JSON.stringify({ device_id: 1, x: 1.5, y: 2.5, z: 3.5 }));
  const results: { round: number; metrics: boolean; requestsPerSecond: number; p99Ms: number }[] = [];
  for (let round = 1; round <= rounds; round++) {
    // Alternate which goes first, so neither always follows the other's writes.
    const order = round % 2 === 1 ? [off, on] : [on, off];
    for (const server of order) {
      const result = await runWrk({
        url: `${server.base}/data/`,
        script,
        connections: 10,
        threads: 2,
        seconds,
        cwd: work,
      });
      if (result.non2xx > 0) throw new Error(`${result.non2xx} failed requests`);
      results.push({
        round,
        metrics: server === on,
        requestsPerSecond: Math.round(result.requestsPerSecond),
        p99Ms: result.latencyMs.p99,
      });
    }
  }
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2
      ? (sorted[mid] as number)
      : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  };
  const rate = (metrics: boolean) =>
    median(results.filter((r) => r.metrics === metrics).map((r) => r.requestsPerSecond));
  const ratios = Array.from({ length: rounds }, (_, i) => {
    const pair = results.filter((r) => r.round === i + 1);
    return (
      (pair.find((r) => r.metrics)?.requestsPerSecond ?? 0) /
      (pair.find((r) => !r.metrics)?.requestsPerSecond ?? 1)
    );
  });
  const summary = {
    date: new Date().toISOString(),
    rounds,
    seconds,
    medianWithout: rate(false),
    medianWith: rate(true),
    ratio: Math.round((rate(true) / rate(false)) * 1000) / 1000,
    ratioPerRound: ratios.map((r) => Math.round(r * 1000) / 1000),
    results,
  };
  console.table(results);
  console.log(JSON.stringify({ ...summary, results: undefined }, null, 2));
  writeFileSync(join(ROOT, 'bench', 'metrics-cost-results.json'), `${JSON.stringify(summary, null, 2)}\n`);
} finally {
  for (const child of servers) await stopChild(child);
  rmSync(work, { recursive: true, force: true });
}
