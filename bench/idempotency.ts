/**
 * npm run bench:idempotency: what the Idempotency-Key costs single-reading ingest (POST /data/, one
 * reading a request). One server (the build, `npm run build` is run first) on a fresh SQLite database,
 * or on BENCH_DATABASE_URL (a PostgreSQL database of its own: the bench writes into it); wrk runs
 * without a key and with a new key on every request (both made by the same Lua), alternated over BENCH_ROUNDS (3) rounds of
 * BENCH_SECONDS (10) after BENCH_WARMUP_SECONDS (2). Prints the medians of each and their ratio.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
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
import { checkWrk, luaString, runWrk, writeLua } from './wrk.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const warmupSeconds = Number(process.env.BENCH_WARMUP_SECONDS ?? 2);
const CONNECTIONS = 10;
const THREADS = 2;

/**
 * A wrk script that sends `body` with a header `name` no other request of the run has (thread id, then
 * a count). Both sides of the A/B make their requests so, so that wrk's own work is the same.
 */
function uniqueHeaderScript(dir: string, name: string, body: string): string {
  return writeLua(
    dir,
    name,
    `local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("id", threads)
end
local sent = 0
request = function()
  sent = sent + 1
  local headers = { ["Content-Type"] = "application/json",
    ["${name}"] = string.format("bench-%d-%d-%d", os.time(), id, sent) }
  return wrk.format("POST", nil, headers, ${luaString(body)})
end
`,
  );
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};

async function main(): Promise<void> {
  checkWrk();
  runVisible('npx', ['tsc', '-p', 'tsconfig.build.json'], ROOT);
  const dir = mkdtempSync(join(tmpdir(), 'statistics-bench-idempotency-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const databaseUrl = process.env.BENCH_DATABASE_URL ?? `sqlite:${join(dir, 'bench.db')}`;
  const child = startChild(process.execPath, [join('dist', 'src', 'cli', 'main.js'), 'serve'], {
    cwd: ROOT,
    env: serverEnvironment(databaseUrl, port, dir),
  });
  const runs: Record<'plain' | 'keyed', { rps: number; p99: number }[]> = { plain: [], keyed: [] };
  try {
    await waitUntilReady(`${base}/ready`, child);
    const device = await createDevice(base);
    const body = JSON.stringify({ device_id: device, x: 1.5, y: 2.5, z: 3.5 });
    // Without a key, the same unique value goes in a header the service ignores.
    const scripts = {
      plain: uniqueHeaderScript(dir, 'X-Bench-Request', body),
      keyed: uniqueHeaderScript(dir, 'Idempotency-Key', body),
    };
    const run = (script: string, runSeconds: number) =>
      runWrk({
        url: `${base}/data/`,
        script,
        connections: CONNECTIONS,
        threads: THREADS,
        seconds: runSeconds,
        cwd: ROOT,
      });
    for (const script of Object.values(scripts)) await run(script, warmupSeconds);
    for (let round = 0; round < rounds; round++) {
      for (const kind of ['plain', 'keyed'] as const) {
        const result = await run(scripts[kind], seconds);
        if (result.non2xx > 0) throw new Error(`${kind}: ${result.non2xx} answers were errors`);
        runs[kind].push({ rps: result.requestsPerSecond, p99: result.latencyMs.p99 });
        console.log(
          `round ${round + 1}, ${kind}: ${Math.round(result.requestsPerSecond)} req/s, p99 ${result.latencyMs.p99} ms`,
        );
      }
    }
  } finally {
    await stopChild(child);
    await stopAllChildren();
    rmSync(dir, { recursive: true, force: true });
  }
  const plain = median(runs.plain.map((r) => r.rps));
  const keyed = median(runs.keyed.map((r) => r.rps));
  console.log(
    `single-reading ingest on ${databaseUrl.startsWith('sqlite:') ? 'SQLite' : 'PostgreSQL'}, ${CONNECTIONS} connections, ` +
      `median of ${rounds} x ${seconds} s: without a key ${Math.round(plain)} req/s (p99 ${median(runs.plain.map((r) => r.p99))} ms), ` +
      `with an Idempotency-Key ${Math.round(keyed)} req/s (p99 ${median(runs.keyed.map((r) => r.p99))} ms), ratio ${(keyed / plain).toFixed(2)}`,
  );
}

await main();
