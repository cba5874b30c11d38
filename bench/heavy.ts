/**
 * The issue-10 scenarios of `npm run bench`: single-reading ingest watched for stalls over several
 * runs, and ingest and /health while heavy exact statistics run (idle first, in the same run).
 */
import { performance } from 'node:perf_hooks';
import { timedGet } from './api.js';
import { median } from './readings.js';
import { runWrk, type WrkResult, writeLua } from './wrk.js';

/**
 * The /health client of the heavy-load scenario: GET /health on each connection, `pauseMs` after each
 * answer, as a load balancer's probe asks. 0: as fast as answered (closed loop), which on the 2 cores of
 * this project's machine asked 2,600-9,500 times a second, several times the ingest it was measured beside,
 * and asked more often the less the ingest left it (issue 10).
 */
export function writeHealthProbe(dir: string, pauseMs: number): string {
  const pause = pauseMs > 0 ? `delay = function() return ${pauseMs} end\n` : '';
  return writeLua(dir, `health-${pauseMs}`, `wrk.method = "GET"\n${pause}`);
}

/** The pause of writeHealthProbe in the benches: two connections ask at most 200 times a second. */
export const HEALTH_PROBE_PAUSE_MS = 10;

export interface StallRuns {
  runs: WrkResult[];
  /** Worst p99 and max of the runs, in ms. */
  worstP99Ms: number;
  worstMaxMs: number;
}

/** `runs` wrk runs of `seconds` each, one at a time, against one URL. */
export async function stallRuns(options: {
  url: string;
  script: string;
  connections: number;
  runs: number;
  seconds: number;
  cwd: string;
  log: (message: string) => void;
}): Promise<StallRuns> {
  const runs: WrkResult[] = [];
  for (let i = 0; i < options.runs; i++) {
    const wrk = await runWrk({ ...options, threads: 2 });
    options.log(
      `stall check ${i + 1}/${options.runs}: ${Math.round(wrk.requestsPerSecond)} req/s, ` +
        `p99 ${wrk.latencyMs.p99} ms, max ${wrk.latencyMs.max} ms`,
    );
    runs.push(wrk);
  }
  return {
    runs,
    worstP99Ms: Math.max(...runs.map((r) => r.latencyMs.p99)),
    worstMaxMs: Math.max(...runs.map((r) => r.latencyMs.max)),
  };
}

export interface UnderLoad {
  ingest: WrkResult;
  health: WrkResult;
}

export interface HeavyLoad {
  heavyRequest: string;
  heavyLoops: number;
  idle: UnderLoad;
  loaded: UnderLoad;
  /** Heavy queries answered during the loaded run, and their median time. */
  heavyAnswered: number;
  heavyMedianMs: number;
  ingestLoadedToIdle: number;
}

/**
 * Single-reading ingest (10 connections) and /health (2 connections, `healthScript`: writeHealthProbe),
 * two wrk processes side by side: first with nothing else running, then while `loops` clients each
 * repeat the heavy request.
 */
export async function heavyLoad(options: {
  base: string;
  ingestScript: string;
  healthScript: string;
  heavyRequest: string;
  loops: number;
  seconds: number;
  cwd: string;
  log: (message: string) => void;
}): Promise<HeavyLoad> {
  const { base, seconds, cwd } = options;
  const both = async (): Promise<UnderLoad> => {
    const [ingest, health] = await Promise.all([
      runWrk({
        url: `${base}/data/`,
        script: options.ingestScript,
        connections: 10,
        threads: 1,
        seconds,
        cwd,
      }),
      runWrk({
        url: `${base}/health`,
        script: options.healthScript,
        connections: 2,
        threads: 1,
        seconds,
        cwd,
      }),
    ]);
    return { ingest, health };
  };
  const idle = await both();
  options.log(
    `idle: ingest ${Math.round(idle.ingest.requestsPerSecond)} req/s, /health p99 ${idle.health.latencyMs.p99} ms`,
  );
  const heavyMs: number[] = [];
  let running = true;
  // Bounded: each loop stops once the measured run is over.
  const loops = Array.from({ length: options.loops }, async () => {
    while (running) {
      try {
        heavyMs.push((await timedGet(`${base}${options.heavyRequest}`)).ms);
      } catch (error) {
        options.log(`a heavy query failed: ${(error as Error).message.slice(0, 200)}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  });
  // Let the heavy queries start before measuring.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const started = performance.now();
  const loaded = await both();
  running = false;
  await Promise.all(loops);
  options.log(
    `with ${options.loops} heavy queries looping: ingest ${Math.round(loaded.ingest.requestsPerSecond)} req/s, ` +
      `/health p99 ${loaded.health.latencyMs.p99} ms, ${heavyMs.length} heavy answers in ` +
      `${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
  return {
    heavyRequest: options.heavyRequest,
    heavyLoops: options.loops,
    idle,
    loaded,
    heavyAnswered: heavyMs.length,
    heavyMedianMs: heavyMs.length > 0 ? median(heavyMs) : Number.NaN,
    ingestLoadedToIdle: loaded.ingest.requestsPerSecond / idle.ingest.requestsPerSecond,
  };
}
