/**
 * A bounded soak test: `npm run soak` (not part of `npm test`).
 *
 * Builds the service (npm run build), starts the real server (node dist/src/main.js) on 127.0.0.1 with a
 * fresh SQLite database in a temporary folder, and drives mixed traffic at a fixed rate from this process
 * (open loop: each request leaves at its scheduled time, whether or not earlier ones have been answered):
 * 60% single readings, 10% batches of 100, 10% statistics with filters, 5% time series, 5% pages of
 * readings, 5% logins, 5% bad inputs. The server's RSS is sampled from /proc every second.
 *
 * The filters select recent readings (the last 2 to 60 s). At 300 requests/s the batches alone store
 * 3,000 readings a second, and on SQLite every query runs on the server's one event loop: statistics
 * over a minute of a user's readings (~40,000 rows, exact medians) take 100-250 ms each, and 30 of them a
 * second would saturate it, which measures overload rather than a steady state.
 *
 * Goals: RSS growth after the warm-up (the first 30 s) of at most 10%, zero 5xx, the target rate held,
 * every request answered (within 10 s). Prints a table, writes bench/soak-results.json, exits 1 when a
 * goal is missed. Also shown, to tell the server's limits from the machine's: the CPU of the server and
 * of this driver, the load average, and the most connections waiting in the server's accept queue (when
 * it is full, at 511, the kernel drops new connections and their clients retry 1, 3, 7 s later).
 *
 * SOAK_SECONDS (default 150; a soak is at least 120 s, a lower value is a quick try that says so),
 * SOAK_RATE (requests per second, default 300), SOAK_CONNECTIONS (keep-alive connections, default 256),
 * SOAK_SEED (the request sequence). The server runs with
 * NODE_ENV=production, LOG_LEVEL=warn and LOGIN_LIMIT_PER_ADDRESS=0 (all traffic comes from one
 * address). Everything is bounded in time; the server is stopped at the end, on error and on Ctrl-C.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { prng } from './readings.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS_FILE = join(ROOT, 'bench', 'soak-results.json');

const MIN_SOAK_SECONDS = 120;
const SECONDS = numberSetting('SOAK_SECONDS', 150);
const RATE = numberSetting('SOAK_RATE', 300);
const CONNECTIONS = numberSetting('SOAK_CONNECTIONS', 256);
const QUICK_TRY = SECONDS < MIN_SOAK_SECONDS;
const WARMUP_SECONDS = Math.min(30, Math.floor(SECONDS / 3));
const GROWTH_GOAL_PERCENT = 10;

const BUILD_TIMEOUT_MS = 10 * 60_000;
const START_TIMEOUT_MS = 30_000;
const REQUEST_TIMEOUT_MS = 10_000;
const DRAIN_TIMEOUT_MS = 15_000;
/** Beyond this many requests in flight the scheduler drops (and counts) new ones instead of piling up. */
const MAX_IN_FLIGHT = 2000;

const DEVICES = 20;
const USERS = 5;
const BATCH_SIZE = 100;
const PASSWORD = 'soak-password-that-is-long-enough';

type Kind = 'ingest' | 'batch' | 'statistics' | 'series' | 'list' | 'login' | 'bad';
const MIX: [Kind, number][] = [
  ['ingest', 0.6],
  ['batch', 0.1],
  ['statistics', 0.1],
  ['series', 0.05],
  ['list', 0.05],
  ['login', 0.05],
  ['bad', 0.05],
];

function numberSetting(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`${name} must be a positive number, got "${text}"`);
    process.exit(2);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------------
// The server process, and stopping it whatever happens.

let server: ChildProcess | undefined;
let workDir: string | undefined;
let cleaningUp: Promise<void> | undefined;
const serverOutput: string[] = [];
let serverErrorLines = 0;

function cleanup(): Promise<void> {
  cleaningUp ??= (async () => {
    const child = server;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolveExit) => child.once('exit', resolveExit));
      child.kill('SIGTERM');
      const outcome = await Promise.race([exited, sleep(5000, 'timeout', { ref: false })]);
      if (outcome === 'timeout') {
        child.kill('SIGKILL');
        await Promise.race([exited, sleep(2000, undefined, { ref: false })]);
      }
    }
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  })();
  return cleaningUp;
}

process.once('exit', () => {
  if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the server`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolvePort(port));
    });
  });
}

function build(): void {
  console.log('building (npm run build) ...');
  const result = spawnSync('npm', ['run', 'build'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: BUILD_TIMEOUT_MS,
    encoding: 'utf8',
  });
  if (result.status !== 0) {
    throw new Error(
      `npm run build failed (${result.error?.message ?? `status ${result.status}`}):\n${result.stdout}\n${result.stderr}`,
    );
  }
}

async function startServer(): Promise<{ base: string; pid: number }> {
  workDir = mkdtempSync(join(tmpdir(), 'statistics-soak-'));
  const port = await freePort();
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'src', 'main.js')], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATABASE_URL: `sqlite:${join(workDir, 'soak.db')}`,
      DATA_DIR: workDir,
      LOG_LEVEL: 'warn',
      JWT_SECRET: randomBytes(32).toString('hex'),
      // All traffic comes from one address: the per-address login limit would refuse the steady logins.
      LOGIN_LIMIT_PER_ADDRESS: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server = child;
  const keep = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line === '') continue;
      if (/"level":(50|60)/.test(line)) serverErrorLines++;
      serverOutput.push(line);
      if (serverOutput.length > 50) serverOutput.shift();
    }
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  if (child.pid === undefined) throw new Error('the server did not start');
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `the server exited (${child.exitCode ?? child.signalCode}):\n${serverOutput.join('\n')}`,
      );
    }
    try {
      const health = await fetch(`${base}/ready`, { signal: AbortSignal.timeout(1000) });
      await health.arrayBuffer();
      if (health.status === 200) return { base, pid: child.pid };
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(
    `the server was not ready (/ready) within ${START_TIMEOUT_MS} ms:\n${serverOutput.join('\n')}`,
  );
}

/**
 * Kernel TCP counters (system-wide, from /proc/net/netstat): connections dropped because the server's
 * accept queue was full, and the SYNs clients then sent again (1, 3, 7 s later) explain latency spikes.
 */
function tcpCounters(): Record<string, number> {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
    const index = lines.findIndex((line) => line.startsWith('TcpExt:'));
    const names = (lines[index] ?? '').split(/\s+/).slice(1);
    const values = (lines[index + 1] ?? '').split(/\s+/).slice(1).map(Number);
    const wanted = ['ListenOverflows', 'ListenDrops', 'TCPSynRetrans'];
    return Object.fromEntries(
      names.flatMap((name, i) => (wanted.includes(name) ? [[name, values[i] ?? 0]] : [])),
    );
  } catch {
    return {};
  }
}
let tcp: Record<string, number> = {};

/** How many connections wait in the accept queue of the socket listening on 127.0.0.1:port. */
function acceptQueue(port: number): number | undefined {
  try {
    const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
    for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n')) {
      const fields = line.trim().split(/\s+/);
      if (fields[1] === local && fields[3] === '0A')
        return Number.parseInt(fields[4]?.split(':')[1] ?? '0', 16);
    }
  } catch {
    // not Linux
  }
  return undefined;
}

/** The size of the database and its write-ahead log, in bytes. */
function databaseBytes(): number | undefined {
  if (!workDir) return undefined;
  let total = 0;
  for (const name of ['soak.db', 'soak.db-wal']) {
    try {
      total += statSync(join(workDir, name)).size;
    } catch {
      // not there (yet)
    }
  }
  return total;
}

/** CPU time (user + system) a process has used, in seconds, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number | undefined {
  try {
    // The command name (field 2) may hold spaces: count the fields after its closing parenthesis.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** The resident set size of a process, in bytes (VmRSS from /proc). */
function rssBytes(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------
// Traffic.

// Seeded, so that two runs send the same sequence of requests.
const random = prng(Number(process.env.SOAK_SEED ?? 20_261_127));
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
const value = () => Math.round((random() * 2000 - 1000) * 1000) / 1000;

interface World {
  base: string;
  deviceIds: number[];
  users: { id: number; email: string; token: string }[];
  victim: string;
}

interface Planned {
  kind: Kind;
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /** Bad inputs must be refused: a 2xx for one is counted as unexpected. */
  expectRefusal?: boolean;
}

const json = { 'content-type': 'application/json' };
const isoAgo = (seconds: number) => new Date(Date.now() - seconds * 1000).toISOString();

function plan(kind: Kind, world: World): Planned {
  const device = pick(world.deviceIds);
  switch (kind) {
    case 'ingest':
      return {
        kind,
        method: 'POST',
        path: '/data/',
        headers: json,
        body: JSON.stringify({ device_id: device, x: value(), y: value(), z: value() }),
      };
    case 'batch': {
      const readings = Array.from({ length: BATCH_SIZE }, (_, i) => ({
        device_id: pick(world.deviceIds),
        x: value(),
        y: value(),
        z: value(),
        ...(i % 2 === 0 ? { timestamp: isoAgo(random() * 5) } : {}),
      }));
      return { kind, method: 'POST', path: '/data/', headers: json, body: JSON.stringify(readings) };
    }
    case 'statistics': {
      const roll = random();
      if (roll < 0.1) {
        return { kind, method: 'GET', path: `/analyze_statistics/?group_by=device&start_date=${isoAgo(2)}` };
      }
      const attr = pick(['x', 'all', 'x,z', 'y']);
      const percentiles = roll < 0.4 ? '&percentiles=5,50,95,99' : '';
      if (roll < 0.3) {
        const owner = pick(world.users);
        return {
          kind,
          method: 'GET',
          path: `/analyze_statistics/${owner.id}?attr=${attr}&start_date=${isoAgo(5)}${percentiles}`,
        };
      }
      return {
        kind,
        method: 'GET',
        path: `/analyze_statistics/?attr=${attr}&device_id=${device}&start_date=${isoAgo(5 + random() * 10)}${percentiles}`,
      };
    }
    case 'series':
      return {
        kind,
        method: 'GET',
        path:
          `/analyze_statistics/series?device_id=${device}&bucket=${pick(['1m', '5m', '15m'])}` +
          `&start_date=${isoAgo(60)}&tz=${pick(['UTC', 'Europe/Berlin', 'America/New_York'])}` +
          `&fill=${pick(['none', 'null', 'previous'])}${random() < 0.3 ? '&median=true' : ''}`,
      };
    case 'list':
      return {
        kind,
        method: 'GET',
        path: `/data/?device_id=${device}&limit=${pick([10, 100, 500])}&start_date=${isoAgo(30)}`,
      };
    case 'login': {
      const user = pick(world.users);
      return {
        kind,
        method: 'POST',
        path: '/auth/jwt/login',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ username: user.email, password: PASSWORD }).toString(),
      };
    }
    case 'bad': {
      const bad: Omit<Planned, 'kind' | 'expectRefusal'>[] = [
        { method: 'POST', path: '/data/', headers: json, body: '{"device_id": 1, "x": ' },
        {
          method: 'POST',
          path: '/data/',
          headers: json,
          body: '{"device_id": 2147483647, "x": 1, "y": 2, "z": 3}',
        },
        {
          method: 'POST',
          path: '/data/',
          headers: json,
          body: '{"device_id": 1, "x": "1", "y": 1e400, "z": null}',
        },
        { method: 'POST', path: '/data/', headers: { 'content-type': 'text/xml' }, body: '<reading/>' },
        {
          method: 'POST',
          path: '/data/',
          headers: json,
          body: JSON.stringify([
            { device_id: device, x: 1, y: 2, z: 3 },
            { device_id: device, x: 'bad' },
          ]),
        },
        { method: 'GET', path: "/analyze_statistics/?device_id=1' OR 1=1 --" },
        { method: 'GET', path: '/analyze_statistics/?start_date=2026-02-30&attr=w' },
        { method: 'GET', path: '/analyze_statistics/series?bucket=0m&tz=Not/AZone' },
        { method: 'GET', path: '/data/?cursor=abc&limit=100000' },
        { method: 'GET', path: '/device/..%2F..%2Fetc%2Fpasswd' },
        { method: 'GET', path: '/users/me', headers: { authorization: 'Bearer not-a-token' } },
        { method: 'POST', path: '/device/', headers: json, body: JSON.stringify({ name: 'x'.repeat(51) }) },
        {
          method: 'POST',
          path: '/auth/jwt/login',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ username: world.victim, password: 'wrong password' }).toString(),
        },
      ];
      return { kind, expectRefusal: true, ...pick(bad) };
    }
  }
}

function chooseKind(): Kind {
  let roll = random();
  for (const [kind, share] of MIX) {
    roll -= share;
    if (roll < 0) return kind;
  }
  return 'ingest';
}

/**
 * fetch's connection pool, capped at SOAK_CONNECTIONS keep-alive connections, like a fleet of that many
 * clients. Uncapped (fetch's default), every request that finds all connections busy opens one more: a
 * stall of the server turns into a burst of hundreds of new connections, which overflows its accept
 * queue, and the dropped ones wait on SYN retries for seconds; the figures then show that storm rather
 * than the server. Requests beyond the cap wait in the pool, and their wait counts in their latency.
 * Built from the class of fetch's own global dispatcher (undici's Agent, which Node does not export).
 */
let dispatcher: object | undefined;
function capConnections(): void {
  const global = (globalThis as Record<symbol, unknown>)[Symbol.for('undici.globalDispatcher.1')];
  const Agent = (global as { constructor?: new (options: object) => object } | undefined)?.constructor;
  if (!Agent || Agent === Object) throw new Error("fetch's dispatcher not found: cannot cap its connections");
  dispatcher = new Agent({ connections: CONNECTIONS });
}

async function call(base: string, planned: Planned): Promise<{ status: number; body: string }> {
  const response = await fetch(`${base}${planned.path}`, {
    method: planned.method,
    headers: planned.headers,
    body: planned.body,
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    // `dispatcher` is Node's own addition to fetch's options (not in the DOM's RequestInit).
    ...(dispatcher ? { dispatcher } : {}),
  } as RequestInit);
  return { status: response.status, body: await response.text() };
}

async function prepareWorld(base: string): Promise<World> {
  const users: World['users'] = [];
  for (let i = 0; i < USERS + 1; i++) {
    const email = `soak${i}.${randomBytes(3).toString('hex')}@example.com`;
    const registered = await call(base, {
      kind: 'login',
      method: 'POST',
      path: '/auth/register',
      headers: json,
      body: JSON.stringify({ email, password: PASSWORD }),
    });
    if (registered.status !== 201) throw new Error(`register: ${registered.status} ${registered.body}`);
    const token = await call(base, {
      kind: 'login',
      method: 'POST',
      path: '/auth/jwt/login',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username: email, password: PASSWORD }).toString(),
    });
    if (token.status !== 200) throw new Error(`login: ${token.status} ${token.body}`);
    users.push({ id: JSON.parse(registered.body).id, email, token: JSON.parse(token.body).access_token });
  }
  // The last account is only ever sent wrong passwords (the bad inputs): its login limit kicks in.
  const victim = (users.pop() as World['users'][number]).email;
  const deviceIds: number[] = [];
  for (let i = 0; i < DEVICES; i++) {
    const owner = i % 4 === 3 ? undefined : users[i % users.length];
    const created = await call(base, {
      kind: 'ingest',
      method: 'POST',
      path: '/device/',
      headers: { ...json, ...(owner ? { authorization: `Bearer ${owner.token}` } : {}) },
      body: JSON.stringify({ name: `soak-${i}` }),
    });
    if (created.status !== 200) throw new Error(`device: ${created.status} ${created.body}`);
    deviceIds.push(JSON.parse(created.body).id);
  }
  return { base, deviceIds, users, victim };
}

// ---------------------------------------------------------------------------------------------------
// Measuring.

interface KindStats {
  sent: number;
  latencies: number[];
  statuses: Map<number, number>;
  unexpected: number;
  failures: number;
  failureReasons: Map<string, number>;
  example5xx?: string;
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0
    ? Number.NaN
    : (sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number);

const mb = (bytes: number | undefined) => (bytes === undefined ? Number.NaN : bytes / 1024 / 1024);
const fixed = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '-');

async function soak(world: World, pid: number) {
  const stats = new Map<Kind, KindStats>(
    MIX.map(([kind]) => [
      kind,
      { sent: 0, latencies: [], statuses: new Map(), unexpected: 0, failures: 0, failureReasons: new Map() },
    ]),
  );
  const samples: {
    t: number;
    rssMb: number;
    completed: number;
    inFlight: number;
    p50Ms: number;
    p99Ms: number;
    dbMb: number;
  }[] = [];
  /** Latencies of the answers that arrived since the last sample. */
  let window: number[] = [];
  let completed = 0;
  let dropped = 0;
  let maxLagMs = 0;
  const inFlight = new Set<Promise<void>>();

  // What else limits the figures: this process's own event loop and CPU, the server's CPU, the machine's load.
  const driverDelay = monitorEventLoopDelay({ resolution: 10 });
  driverDelay.enable();
  const driverCpuBefore = process.cpuUsage();
  const serverCpuBefore = cpuSeconds(pid);
  const loadBefore = loadavg()[0] ?? 0;
  const started = performance.now();
  const sample = () => {
    const sorted = window.sort((a, b) => a - b);
    window = [];
    samples.push({
      t: Math.round((performance.now() - started) / 100) / 10,
      rssMb: Math.round(mb(rssBytes(pid)) * 10) / 10,
      completed,
      inFlight: inFlight.size,
      p50Ms: Math.round(percentile(sorted, 50) * 10) / 10 || 0,
      p99Ms: Math.round(percentile(sorted, 99) * 10) / 10 || 0,
      dbMb: Math.round(mb(databaseBytes()) * 10) / 10,
    });
  };
  const sampler = setInterval(sample, 1000);
  // The server's accept queue (connections the kernel holds until the server takes them; 511 at most),
  // every 100 ms: when it fills, new connections are dropped and their clients wait 1, 3, 7 s to retry.
  const port = Number(new URL(world.base).port);
  let maxAcceptQueue = 0;
  const queueWatch = setInterval(() => {
    maxAcceptQueue = Math.max(maxAcceptQueue, acceptQueue(port) ?? 0);
  }, 100);

  const fire = (planned: Planned) => {
    const entry = stats.get(planned.kind) as KindStats;
    entry.sent++;
    const sentAt = performance.now();
    const request = call(world.base, planned)
      .then(({ status, body }) => {
        const latency = performance.now() - sentAt;
        entry.latencies.push(latency);
        window.push(latency);
        entry.statuses.set(status, (entry.statuses.get(status) ?? 0) + 1);
        const ok = status >= 200 && status < 300;
        if (status >= 500)
          entry.example5xx ??= `${planned.method} ${planned.path} -> ${status} ${body.slice(0, 200)}`;
        if (planned.expectRefusal ? ok || status >= 500 : !ok) entry.unexpected++;
      })
      .catch((error: Error & { cause?: { code?: string } }) => {
        entry.failures++;
        const reason = error.name === 'TimeoutError' ? 'timeout' : (error.cause?.code ?? error.message);
        entry.failureReasons.set(reason, (entry.failureReasons.get(reason) ?? 0) + 1);
      })
      .finally(() => {
        completed++;
        inFlight.delete(request);
      });
    inFlight.add(request);
  };

  let scheduled = 0;
  for (;;) {
    const elapsedMs = performance.now() - started;
    if (elapsedMs >= SECONDS * 1000) break;
    const due = Math.floor((elapsedMs / 1000) * RATE);
    if (due > scheduled) maxLagMs = Math.max(maxLagMs, elapsedMs - (scheduled / RATE) * 1000);
    while (scheduled < due) {
      scheduled++;
      if (inFlight.size >= MAX_IN_FLIGHT) dropped++;
      else fire(plan(chooseKind(), world));
    }
    await sleep(2);
  }
  const trafficSeconds = (performance.now() - started) / 1000;
  clearInterval(queueWatch);
  driverDelay.disable();
  const driverCpu = process.cpuUsage(driverCpuBefore);
  const machine = {
    cpus: availableParallelism(),
    loadAverageBefore: Number(loadBefore.toFixed(2)),
    loadAverageAfter: Number((loadavg()[0] ?? 0).toFixed(2)),
    serverCpuPercent: Number(
      ((((cpuSeconds(pid) ?? 0) - (serverCpuBefore ?? 0)) / trafficSeconds) * 100).toFixed(1),
    ),
    driverCpuPercent: Number((((driverCpu.user + driverCpu.system) / 1e6 / trafficSeconds) * 100).toFixed(1)),
    driverEventLoopDelayP99Ms: Number((driverDelay.percentile(99) / 1e6).toFixed(1)),
    driverEventLoopDelayMaxMs: Number((driverDelay.max / 1e6).toFixed(1)),
    serverAcceptQueueMax: maxAcceptQueue,
  };
  await Promise.race([Promise.allSettled([...inFlight]), sleep(DRAIN_TIMEOUT_MS, undefined, { ref: false })]);
  clearInterval(sampler);
  sample();
  return { stats, samples, scheduled, dropped, maxLagMs, trafficSeconds, unfinished: inFlight.size, machine };
}

function report(result: Awaited<ReturnType<typeof soak>>) {
  const { stats, samples, scheduled, dropped, maxLagMs, trafficSeconds, unfinished, machine } = result;
  const afterWarmup = samples.filter((s) => s.t >= WARMUP_SECONDS && Number.isFinite(s.rssMb));
  const warmupEnd = afterWarmup[0]?.rssMb ?? Number.NaN;
  const finalRss = samples.at(-1)?.rssMb ?? Number.NaN;
  const maxRss = Math.max(...afterWarmup.map((s) => s.rssMb));
  const growth = ((finalRss - warmupEnd) / warmupEnd) * 100;
  const maxGrowth = ((maxRss - warmupEnd) / warmupEnd) * 100;
  // RSS swings by tens of MB between collections, so one sample against another is noisy: the mean of
  // the first 15 s after the warm-up against the mean of the last 15 s says the same more steadily.
  const mean = (list: typeof afterWarmup) => list.reduce((sum, s) => sum + s.rssMb, 0) / list.length;
  const firstWindow = mean(afterWarmup.slice(0, 15));
  const lastWindow = mean(afterWarmup.slice(-15));
  const windowGrowth = ((lastWindow - firstWindow) / firstWindow) * 100;
  // Least-squares slope of RSS after the warm-up, in MB per minute: a leak shows as a steady climb.
  const n = afterWarmup.length;
  const meanT = afterWarmup.reduce((sum, s) => sum + s.t, 0) / n;
  const meanR = afterWarmup.reduce((sum, s) => sum + s.rssMb, 0) / n;
  const slope =
    (afterWarmup.reduce((sum, s) => sum + (s.t - meanT) * (s.rssMb - meanR), 0) /
      afterWarmup.reduce((sum, s) => sum + (s.t - meanT) ** 2, 0)) *
    60;

  const classes = { '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0, 'no answer': 0 };
  const all: number[] = [];
  const rows: string[][] = [];
  for (const [kind, entry] of stats) {
    for (const [status, count] of entry.statuses) {
      const name = `${Math.floor(status / 100)}xx` as keyof typeof classes;
      if (name in classes) classes[name] += count;
    }
    classes['no answer'] += entry.failures;
    const sorted = [...entry.latencies].sort((a, b) => a - b);
    all.push(...entry.latencies);
    rows.push([
      kind,
      String(entry.sent),
      [...entry.statuses]
        .sort(([a], [b]) => a - b)
        .map(([status, count]) => `${status}:${count}`)
        .join(' '),
      String(entry.unexpected + entry.failures),
      fixed(percentile(sorted, 50)),
      fixed(percentile(sorted, 99)),
      fixed(sorted.at(-1) ?? Number.NaN),
    ]);
  }
  all.sort((a, b) => a - b);
  const reasons = new Map<string, number>();
  for (const entry of stats.values())
    for (const [reason, count] of entry.failureReasons)
      reasons.set(reason, (reasons.get(reason) ?? 0) + count);
  const noAnswerReasons = [...reasons].map(([reason, count]) => `${reason}: ${count}`).join(', ');
  const total = [...stats.values()].reduce((sum, entry) => sum + entry.sent, 0);
  const answered = all.length;
  const achievedRate = answered / trafficSeconds;
  const readingsStored = (() => {
    const ingest = stats.get('ingest')?.statuses.get(200) ?? 0;
    const batches = stats.get('batch')?.statuses.get(200) ?? 0;
    return ingest + batches * BATCH_SIZE;
  })();

  const goals = {
    rssGrowthWithinGoal:
      Number.isFinite(growth) &&
      Number.isFinite(windowGrowth) &&
      Math.max(growth, windowGrowth) <= GROWTH_GOAL_PERCENT,
    zero5xx: classes['5xx'] === 0,
    rateHeld: achievedRate >= RATE * 0.95 && dropped === 0,
    everyRequestAnswered: classes['no answer'] === 0 && unfinished === 0,
  };

  const table = (header: string[], body: string[][]) => {
    const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] ?? '').length)));
    const line = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ');
    return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
  };
  console.log('');
  console.log(
    `soak: ${fixed(trafficSeconds, 0)} s at ${RATE} requests/s over ${CONNECTIONS} connections (warm-up ${WARMUP_SECONDS} s), SQLite, node ${process.version}` +
      (QUICK_TRY ? `  [QUICK TRY: below the ${MIN_SOAK_SECONDS} s of a soak, not a valid result]` : ''),
  );
  if (machine.loadAverageBefore > machine.cpus * 0.5) {
    console.log(
      `note: the 1-minute load average was ${machine.loadAverageBefore} on ${machine.cpus} cores before the run: ` +
        'other processes (or a run just before) may have competed with the server and this driver',
    );
  }
  console.log('');
  console.log(table(['kind', 'sent', 'statuses', 'unexpected', 'p50 ms', 'p99 ms', 'max ms'], rows));
  console.log('');
  console.log(
    table(
      ['measure', 'value', 'goal'],
      [
        ['requests scheduled', String(scheduled), ''],
        ['requests sent / answered', `${total} / ${answered}`, ''],
        ['dropped (over in-flight cap)', String(dropped), '0'],
        ['achieved rate', `${fixed(achievedRate)} /s`, `>= ${fixed(RATE * 0.95)} /s`],
        ['scheduler max lag', `${fixed(maxLagMs)} ms`, ''],
        [
          'CPU: server / this driver',
          `${machine.serverCpuPercent}% / ${machine.driverCpuPercent}% of one core (${machine.cpus} cores)`,
          '',
        ],
        [
          'driver event-loop delay',
          `p99 ${machine.driverEventLoopDelayP99Ms} ms, max ${machine.driverEventLoopDelayMaxMs} ms`,
          '',
        ],
        ['load average before / after', `${machine.loadAverageBefore} / ${machine.loadAverageAfter}`, ''],
        ["server's accept queue, max", `${machine.serverAcceptQueueMax} (of 511)`, ''],
        ['2xx / 3xx / 4xx', `${classes['2xx']} / ${classes['3xx']} / ${classes['4xx']}`, ''],
        ['5xx', String(classes['5xx']), '0'],
        [
          'no answer (timeout/error)',
          `${classes['no answer']}${noAnswerReasons ? ` (${noAnswerReasons})` : ''}`,
          '0',
        ],
        [
          'latency p50 / p99 / max',
          `${fixed(percentile(all, 50))} / ${fixed(percentile(all, 99))} / ${fixed(all.at(-1) ?? Number.NaN)} ms`,
          '',
        ],
        ['readings stored', String(readingsStored), ''],
        ['RSS at end of warm-up', `${fixed(warmupEnd)} MB`, ''],
        ['RSS max after warm-up', `${fixed(maxRss)} MB (${fixed(maxGrowth)}%)`, ''],
        ['RSS final', `${fixed(finalRss)} MB`, ''],
        ['RSS growth after warm-up', `${fixed(growth)}%`, `<= ${GROWTH_GOAL_PERCENT}%`],
        [
          'RSS growth, 15-s means',
          `${fixed(firstWindow)} -> ${fixed(lastWindow)} MB: ${fixed(windowGrowth)}%`,
          `<= ${GROWTH_GOAL_PERCENT}%`,
        ],
        ['RSS slope after warm-up', `${fixed(slope, 2)} MB/min`, ''],
        // SQLite keeps up to 64 MB of pages in memory (cache_size = -65536): RSS follows the database up to that.
        ['database files at the end', `${fixed(samples.at(-1)?.dbMb ?? Number.NaN)} MB`, ''],
        ['server error log lines', String(serverErrorLines), '0'],
        [
          'TCP during the run (system)',
          Object.entries(tcp)
            .map(([name, value]) => `${name} ${value}`)
            .join(', '),
          '',
        ],
      ],
    ),
  );
  const timeline = samples.filter((_, i) => i % 10 === 9 || i === samples.length - 1);
  console.log('');
  console.log(
    table(
      ['t s', 'RSS MB', 'database MB', 'answers/s', 'p50 ms', 'p99 ms', 'in flight'],
      timeline.map((s) => {
        const previous = samples[samples.indexOf(s) - 1];
        return [
          fixed(s.t, 0),
          fixed(s.rssMb),
          fixed(s.dbMb),
          previous ? fixed((s.completed - previous.completed) / (s.t - previous.t), 0) : '-',
          fixed(s.p50Ms),
          fixed(s.p99Ms),
          String(s.inFlight),
        ];
      }),
    ),
  );
  const example5xx = [...stats.values()].map((entry) => entry.example5xx).filter(Boolean);
  if (example5xx.length > 0) console.log(`\nfirst 5xx: ${example5xx.join('\n')}`);
  console.log(
    `\ngoals: ${Object.entries(goals)
      .map(([goal, met]) => `${goal} ${met ? 'met' : 'MISSED'}`)
      .join(', ')}`,
  );

  return {
    when: new Date().toISOString(),
    valid: !QUICK_TRY,
    settings: {
      seconds: SECONDS,
      rate: RATE,
      connections: CONNECTIONS,
      warmupSeconds: WARMUP_SECONDS,
      mix: Object.fromEntries(MIX),
      batchSize: BATCH_SIZE,
      devices: DEVICES,
      users: USERS,
      engine: 'sqlite',
      node: process.version,
    },
    goals,
    requests: {
      scheduled,
      sent: total,
      answered,
      dropped,
      unfinished,
      achievedRate: Number(fixed(achievedRate)),
      schedulerMaxLagMs: Number(fixed(maxLagMs)),
      statusClasses: classes,
      readingsStored,
    },
    latencyMs: {
      p50: Number(fixed(percentile(all, 50), 2)),
      p99: Number(fixed(percentile(all, 99), 2)),
      max: Number(fixed(all.at(-1) ?? Number.NaN, 2)),
    },
    byKind: Object.fromEntries(
      [...stats].map(([kind, entry]) => {
        const sorted = [...entry.latencies].sort((a, b) => a - b);
        return [
          kind,
          {
            sent: entry.sent,
            statuses: Object.fromEntries(entry.statuses),
            unexpected: entry.unexpected,
            noAnswer: entry.failures,
            ...(entry.failures > 0 ? { noAnswerReasons: Object.fromEntries(entry.failureReasons) } : {}),
            p50Ms: Number(fixed(percentile(sorted, 50), 2)),
            p99Ms: Number(fixed(percentile(sorted, 99), 2)),
            ...(entry.example5xx ? { first5xx: entry.example5xx } : {}),
          },
        ];
      }),
    ),
    rssMb: {
      warmupEnd,
      maxAfterWarmup: maxRss,
      final: finalRss,
      growthPercent: Number(fixed(growth, 2)),
      meanFirst15sAfterWarmup: Number(fixed(firstWindow)),
      meanLast15s: Number(fixed(lastWindow)),
      windowGrowthPercent: Number(fixed(windowGrowth, 2)),
      maxGrowthPercent: Number(fixed(maxGrowth, 2)),
      slopeMbPerMinute: Number(fixed(slope, 3)),
    },
    serverErrorLogLines: serverErrorLines,
    machine,
    tcpDuringRun: tcp,
    samples,
  };
}

async function main(): Promise<number> {
  if (QUICK_TRY) {
    console.log(`SOAK_SECONDS=${SECONDS}: a quick try, below the ${MIN_SOAK_SECONDS} s of a soak`);
  }
  build();
  // From here on everything is bounded: start, traffic, drain and stop, with room to spare.
  const watchdog = setTimeout(
    () => {
      console.error('soak: overall time limit reached, stopping');
      void cleanup().finally(() => process.exit(1));
    },
    START_TIMEOUT_MS + SECONDS * 1000 + DRAIN_TIMEOUT_MS + 60_000,
  );
  watchdog.unref();
  const { base, pid } = await startServer();
  capConnections();
  const tcpBefore = tcpCounters();
  console.log(`server ${base} (pid ${pid}), database in ${workDir}`);
  const world = await prepareWorld(base);
  console.log(
    `${world.users.length} users, ${world.deviceIds.length} devices; ${SECONDS} s of traffic at ${RATE}/s ...`,
  );
  const result = await soak(world, pid);
  const tcpAfter = tcpCounters();
  tcp = Object.fromEntries(
    Object.entries(tcpAfter).map(([name, value]) => [name, value - (tcpBefore[name] ?? 0)]),
  );
  const summary = report(result);
  await cleanup();
  writeFileSync(RESULTS_FILE, `${JSON.stringify(summary, null, 2)}\n`);
  // Formatted as the repository's formatter wants it, so that `npm run lint` stays clean.
  const biome = join(ROOT, 'node_modules', '.bin', 'biome');
  if (existsSync(biome))
    spawnSync(biome, ['format', '--write', RESULTS_FILE], { cwd: ROOT, stdio: 'ignore', timeout: 30_000 });
  console.log(`\nwritten to ${RESULTS_FILE}`);
  return Object.values(summary.goals).every(Boolean) ? 0 : 1;
}

main()
  .then(async (code) => {
    await cleanup();
    process.exit(code);
  })
  .catch(async (error: unknown) => {
    console.error('soak failed:', error instanceof Error ? error.message : error);
    if (serverOutput.length > 0) console.error(`server output (last lines):\n${serverOutput.join('\n')}`);
    await cleanup();
    process.exit(1);
  });
