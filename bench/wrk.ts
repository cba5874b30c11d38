import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startChild, stopChild } from './processes.js';

export interface WrkResult {
  connections: number;
  threads: number;
  seconds: number;
  requests: number;
  requestsPerSecond: number;
  /** Responses with a status of 400 or more (wrk's own count; these routes never redirect). */
  non2xx: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  latencyMs: {
    mean: number;
    p50: number;
    p90: number;
    p95: number;
    p99: number;
    p999: number;
    max: number;
  };
}

/** wrk is a Debian package; say how to get it rather than failing somewhere in the middle. */
export function checkWrk(): string {
  const probe = spawnSync('wrk', ['-v'], { encoding: 'utf8' });
  if (probe.error) {
    throw new Error(
      'wrk (the load generator) is not installed. Install it with:\n' +
        '  apt-get update && apt-get install -y wrk      (Debian/Ubuntu, as root)\n' +
        'or build it from https://github.com/wg/wrk and put it on the PATH.',
    );
  }
  const version = /wrk\s+(\S+)/.exec(`${probe.stdout}${probe.stderr}`);
  return version?.[1] ?? 'unknown';
}

/** Lua long-bracket string that cannot be closed by its content (JSON never holds "]====]"). */
export const luaString = (text: string) => `[====[${text}]====]`;

/** The done() of every script: one line of JSON, so nothing depends on wrk's human-readable output. */
const DONE = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.3f,"max":%d,"p50":%d,"p90":%d,"p95":%d,"p99":%d,"p999":%d}}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99),
    latency:percentile(99.9)))
end
`;

/** A wrk script sending `body` as a JSON POST (or a plain GET when body is undefined). */
export function writeWrkScript(dir: string, name: string, body: string | undefined): string {
  const request =
    body === undefined
      ? 'wrk.method = "GET"\n'
      : `wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = ${luaString(body)}\n`;
  return writeLua(dir, name, request);
}

/** A wrk script of its own Lua (a request() function, say) with the common done(). */
export function writeLua(dir: string, name: string, lua: string): string {
  const path = join(dir, `${name}.lua`);
  writeFileSync(path, lua + DONE);
  return path;
}

interface DoneJson {
  requests: number;
  duration_us: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  latency_us: { mean: number; max: number; p50: number; p90: number; p95: number; p99: number; p999: number };
}

/** One bounded wrk run against 127.0.0.1; killed if it overstays its duration. */
export async function runWrk(options: {
  url: string;
  script: string;
  connections: number;
  threads: number;
  seconds: number;
  cwd: string;
}): Promise<WrkResult> {
  const { url, script, connections, threads, seconds } = options;
  if (!new URL(url).hostname.startsWith('127.0.0.1'))
    throw new Error(`refusing to load ${url}: not 127.0.0.1`);
  const args = [
    `-t${Math.min(threads, connections)}`,
    `-c${connections}`,
    `-d${seconds}s`,
    '--timeout',
    '5s',
    '-s',
    script,
    url,
  ];
  let output = '';
  const child = startChild('wrk', args, {
    cwd: options.cwd,
    env: process.env,
    onLine: (line) => {
      if (line.startsWith('BENCH_JSON ')) output = line.slice('BENCH_JSON '.length);
    },
  });
  const watchdog = setTimeout(() => void stopChild(child, 2000), (seconds + 20) * 1000);
  const how = await child.exited;
  clearTimeout(watchdog);
  if (output === '') throw new Error(`wrk ${args.join(' ')} gave no result (${how}):\n${child.tail()}`);
  const done = JSON.parse(output) as DoneJson;
  const ms = (us: number) => us / 1000;
  return {
    connections,
    threads: Math.min(threads, connections),
    seconds: done.duration_us / 1e6,
    requests: done.requests,
    requestsPerSecond: done.requests / (done.duration_us / 1e6),
    non2xx: done.errors.status,
    socketErrors: {
      connect: done.errors.connect,
      read: done.errors.read,
      write: done.errors.write,
      timeout: done.errors.timeout,
    },
    latencyMs: {
      mean: ms(done.latency_us.mean),
      p50: ms(done.latency_us.p50),
      p90: ms(done.latency_us.p90),
      p95: ms(done.latency_us.p95),
      p99: ms(done.latency_us.p99),
      p999: ms(done.latency_us.p999),
      max: ms(done.latency_us.max),
    },
  };
}
