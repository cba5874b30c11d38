import { extname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { FastifyBaseLogger } from 'fastify';
import { sql } from 'kysely';
import PQueue from 'p-queue';
import { Piscina } from 'piscina';
import type { HeavyQuerySettings } from '../config.js';
import type { OpenedDatabase } from '../db/database.js';
import { POSTGRES_QUERY_TIMEOUT_MS } from '../db/postgres-pool.js';
import { isStatementTimeout, type Reads } from '../db/read-replicas.js';
import { DomainError } from '../http/errors.js';
import type { Metrics } from '../metrics/metrics.js';
import {
  type HeavyInput,
  type HeavyOutput,
  type HeavyQueryName,
  type HeavyTask,
  runHeavyQuery,
} from './heavy-queries.js';
import { logPoolErrors, threadOutOfMemory } from './query-threads.js';
import type { Lane } from './query-weight.js';

/**
 * Runs the queries that may scan many readings (heavy-queries.ts) off the event loop, in two lanes of
 * their own, each running at most `concurrency` at once: 'heavy', and 'light' (a query over few readings,
 * chosen by query-weight.ts), so that a small query never waits behind a long one. In each lane at
 * most `queue` wait (beyond that a 503 with Retry-After at once), and each query is answered within
 * `timeoutMs` of its arrival, waiting included (a 503 then, never a hang).
 */
export interface HeavyQueries {
  run<Name extends HeavyQueryName>(
    name: Name,
    input: HeavyInput<Name>,
    lane: Lane,
  ): Promise<HeavyOutput<Name>>;
  /**
   * A task of the service's own (the rollup folder's plan, one at a time): on the heavy lane's threads
   * and with the same deadline, but outside the bounds on requests, so that it never takes a request's
   * place in the queue nor makes one a 503.
   */
  background<Name extends HeavyQueryName>(name: Name, input: HeavyInput<Name>): Promise<HeavyOutput<Name>>;
  /** STATISTICS_TIMEOUT_MS: every query is answered within this long of its arrival. */
  readonly timeoutMs: number;
  close(): Promise<void>;
}

/** Runs one task within `remainingMs`; `deadline` aborts when the time is up. */
type Execute = (task: HeavyTask, deadline: AbortSignal, remainingMs: number) => Promise<unknown>;

interface Engine {
  execute: Execute;
  close(): Promise<void>;
}

/**
 * The engine's way is chosen once: SQLite's worker threads (the light lane threads of its own at the
 * server's priority), or PostgreSQL's pool with a statement_timeout. Each lane runs up to
 * `concurrency` queries at once: with one light thread, the mixed scenario's statistics (each user's
 * own device, all light) queued behind each other, and its p95 was 1.30 of the build without a light
 * lane; with two (SQLite's default concurrency on 2 cores), 0.78 (`npm run bench:ab`, 4-5 pairs on a
 * quiet machine, README). STATISTICS_LIGHT_READINGS=0: no light lane at all.
 */
export function createHeavyQueries(
  database: OpenedDatabase,
  settings: HeavyQuerySettings,
  metrics: Metrics,
  reads: Reads,
  ingestBusy: () => boolean,
  log: FastifyBaseLogger,
): HeavyQueries {
  const sqlite = database.engine === 'sqlite';
  const threads = (niceIncrement: number) =>
    sqliteWorkers(database, settings.concurrency, niceIncrement, settings.threadMemoryMb, log);
  const heavyEngine = sqlite ? threads(HEAVY_NICE_INCREMENT) : postgresPool(reads);
  const heavyRest = (ranMs: number) => (ingestBusy() ? ranMs * (1 / settings.busyShare - 1) : 0);
  const lanes: Partial<Record<Lane, QueryLane>> = {
    heavy: queryLane('heavy', heavyEngine, settings.concurrency, settings, metrics, heavyRest),
  };
  if (settings.lightReadings > 0) {
    const lightEngine = sqlite ? threads(0) : postgresPool(reads);
    lanes.light = queryLane('light', lightEngine, settings.concurrency, settings, metrics, () => 0);
  }
  return {
    run(name, input, lane) {
      // Without a light lane (STATISTICS_LIGHT_READINGS=0), every query is heavy.
      return (lanes[lane] ?? (lanes.heavy as QueryLane)).run(name, input);
    },
    async background(name, input) {
      const output = await heavyEngine.execute(
        { name, input },
        AbortSignal.timeout(settings.timeoutMs),
        settings.timeoutMs,
      );
      return output as HeavyOutput<typeof name>;
    },
    timeoutMs: settings.timeoutMs,
    async close() {
      await Promise.all(Object.values(lanes).map((lane) => lane.close()));
    },
  };
}

interface QueryLane {
  run<Name extends HeavyQueryName>(name: Name, input: HeavyInput<Name>): Promise<HeavyOutput<Name>>;
  close(): Promise<void>;
}

/**
 * One lane: its own queue (at most `concurrency` running, `settings.queue` waiting) in front of `engine`.
 * A query's slot rests `restMs(how long it ran)` after it, ahead of every query waiting, while its
 * answer goes out at once: STATISTICS_BUSY_SHARE. The SQLite heavy threads yield to ingest by their
 * nice +10; a PostgreSQL backend cannot be reniced from here and runs at the priority of ingest's own,
 * so on PostgreSQL the heavy lane yields by resting while ingest is busy (README, Performance).
 */
function queryLane(
  lane: Lane,
  engine: Engine,
  concurrency: number,
  settings: HeavyQuerySettings,
  metrics: Metrics,
  restMs: (ranMs: number) => number,
): QueryLane {
  const queue = new PQueue({ concurrency });
  const counts = () => {
    const slots = occupancy(queue);
    metrics.heavyQueriesWaiting.set({ lane }, slots.waiting);
    metrics.heavyQueriesRunning.set({ lane }, slots.running);
    metrics.heavySlotsResting.set({ lane }, slots.resting);
  };
  return {
    async run(name, input) {
      const slots = occupancy(queue);
      if (queue.pending >= concurrency && slots.waiting >= settings.queue) {
        metrics.heavyQueryRejections.inc({ query: name, lane });
        throw new DomainError('STATISTICS_BUSY', busyDetail(slots), 1);
      }
      const arrived = performance.now();
      const deadline = AbortSignal.timeout(settings.timeoutMs);
      let started: number | undefined;
      try {
        const answer = queue.add(
          () => {
            started = performance.now();
            metrics.heavyQueryWait.observe({ query: name, lane }, (started - arrived) / 1000);
            counts();
            const ran = started;
            return engine
              .execute({ name, input }, deadline, settings.timeoutMs - (started - arrived))
              .finally(() => {
                const rest = restMs(performance.now() - ran);
                // Queued before this query's slot frees (p-queue picks the next one after this settles),
                // and ahead of every query waiting; an unreferenced timer does not hold up a stop.
                if (rest > 0)
                  void queue
                    .add(() => sleep(rest, undefined, { ref: false }), { priority: REST_PRIORITY })
                    .finally(counts);
              });
          },
          { signal: deadline },
        );
        counts();
        const output = (await answer) as HeavyOutput<typeof name>;
        observeRun(metrics, name, lane, 'ok', started);
        return output;
      } catch (error) {
        if (threadOutOfMemory(error)) {
          observeRun(metrics, name, lane, 'out_of_memory', started);
          throw new DomainError(
            'STATISTICS_OUT_OF_MEMORY',
            `The query needed more memory than STATISTICS_THREAD_MEMORY_MB (${settings.threadMemoryMb} MB) ` +
              'allows a statistics thread, and was stopped: narrow the date range or the devices, ask for ' +
              'fewer values or wider buckets, or use accuracy=approx',
          );
        }
        const timedOut = deadline.aborted || isStatementTimeout(error);
        observeRun(metrics, name, lane, timedOut ? 'timeout' : 'error', started);
        if (!timedOut) throw error;
        metrics.heavyQueryTimeouts.inc({ query: name, lane });
        throw new DomainError(
          'STATISTICS_TIMEOUT',
          `The query took longer than STATISTICS_TIMEOUT_MS (${settings.timeoutMs} ms) and was stopped: ` +
            'narrow the date range or the devices, or ask for fewer values',
          5,
        );
      } finally {
        counts();
      }
    },
    async close() {
      queue.clear();
      await engine.close();
    },
  };
}

/**
 * A slot's rest (STATISTICS_BUSY_SHARE) is a task of its lane's queue at this priority, ahead of the
 * queries waiting (priority 0): how the lane tells a resting slot from a running query.
 */
const REST_PRIORITY = 1;

/** What a lane's slots are doing: queries running, slots resting after one, and queries waiting. */
interface Occupancy {
  running: number;
  resting: number;
  waiting: number;
}

function occupancy(queue: PQueue): Occupancy {
  const tasks = queue.runningTasks;
  const restingNow = tasks.filter((task) => task.priority === REST_PRIORITY).length;
  return {
    running: tasks.length - restingNow,
    // A rest queued takes the slot its query has just left, before any query waiting.
    resting: restingNow + queue.sizeBy({ priority: REST_PRIORITY }),
    waiting: queue.sizeBy({ priority: 0 }),
  };
}

/**
 * The 503's detail: what holds the lane's slots, so that a client (or an operator) sees why. A slot that
 * rests after its query (STATISTICS_BUSY_SHARE) runs nothing, and is said to rest, not to run.
 */
function busyDetail({ running, resting, waiting }: Occupancy): string {
  const resters =
    resting === 0
      ? ''
      : `, ${resting} ${resting === 1 ? 'slot rests' : 'slots rest'} after a query while readings arrive ` +
        '(STATISTICS_BUSY_SHARE)';
  const runners = running === 1 ? 'statistics query is' : 'statistics queries are';
  return `${running} ${runners} running${resters} and ${waiting} ${waiting === 1 ? 'is' : 'are'} waiting: retry shortly`;
}

/** How long a query ran, if it started at all (one that timed out waiting did not). */
function observeRun(
  metrics: Metrics,
  query: string,
  lane: Lane,
  outcome: string,
  started: number | undefined,
): void {
  if (started !== undefined)
    metrics.heavyQueryRun.observe({ query, lane, outcome }, (performance.now() - started) / 1000);
}

/**
 * The heavy lane's threads run below the event loop's priority (Linux nice +10, per thread): ingest
 * and /health get the cores first, the heavy queries what is left.
 */
const HEAVY_NICE_INCREMENT = 10;

/** The young generation of each heavy-query thread's V8 heap, in MB (see sqliteWorkers). */
const WORKER_YOUNG_GENERATION_MB = 8;

/**
 * SQLite: a piscina pool of at most `threads` worker threads (heavy-worker.ts), each with its own
 * read-only connection, `niceIncrement` below the event loop's CPU priority (the heavy lane's
 * HEAVY_NICE_INCREMENT; the light lane's threads 0, since its queries are short and a request waits
 * on each). One thread starts with the pool, the others when
 * queries come, and end after a minute idle. At the deadline the task's
 * worker is terminated: statistics stop at once (their collect_values aggregate runs JavaScript per
 * row, where termination takes effect); a statement without JavaScript in it runs on to its end in
 * the dying thread, but the request is answered at the deadline all the same.
 */
function sqliteWorkers(
  database: OpenedDatabase,
  threads: number,
  niceIncrement: number,
  memoryMb: number,
  log: FastifyBaseLogger,
): Engine {
  const path = database.sqlitePath;
  if (path === undefined || path === ':memory:') {
    throw new Error('heavy queries on SQLite need a database file that worker threads can open');
  }
  // The worker is TypeScript under tsx (tests, npm run dev) and JavaScript once built (npm start).
  const here = fileURLToPath(import.meta.url);
  const pool = new Piscina({
    filename: new URL(`./heavy-worker${extname(here)}`, import.meta.url).href,
    // One thread from the start, so that the first query does not wait for a thread to start.
    minThreads: 1,
    maxThreads: threads,
    idleTimeout: 60_000,
    // A small young generation per thread (V8's default lets each grow to 16 MB semi-spaces): a query's
    // garbage is the numbers SQLite hands collect_values, dead at once, which a small one sweeps as
    // cheaply. attr=x,y,z with 5 percentiles over 1M readings, the folder catching up meanwhile, three
    // alternating rounds at load 10: the server's peak RSS 410-435 MB by default, 388-399 MB at 8 MB.
    // STATISTICS_THREAD_MEMORY_MB: a query past it ends its thread (query-threads.ts).
    resourceLimits: {
      maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB,
      maxOldGenerationSizeMb: memoryMb,
    },
    niceIncrement,
    workerData: { path },
  });
  logPoolErrors(pool, log, 'statistics');
  return {
    execute: ((task, deadline) => pool.run(task, { signal: deadline })) satisfies Execute,
    close: () => pool.destroy(),
  };
}

/**
 * PostgreSQL's work_mem in a heavy query: each sort of a million values (24 bytes each in PostgreSQL's
 * sort) stays in memory, about 0.6 of the time of one spilled to disk (attr=x over 1M readings, both
 * one pass); a query sorts once per value asked, so attr=all may use three times this.
 */
const SORT_MEMORY = '64MB';

/**
 * PostgreSQL: the pool's connections (a read replica's when one is fit: db/read-replicas.ts), each
 * query in a read-only repeatable-read transaction (one
 * snapshot for all its statements) whose statement_timeout is the time left to the deadline, and at
 * most a second less than the driver waits for any answer, so that PostgreSQL stops the query (and
 * the answer names the deadline) before the driver would give up on a query still running. Its sorts
 * (the exact percentiles' one per value) may use SORT_MEMORY: at PostgreSQL's default of 4 MB a sort of
 * a million readings spills to disk.
 */
function postgresPool(reads: Reads): Engine {
  return {
    execute: ((task, _deadline, remainingMs) =>
      reads.read((db) =>
        db
          .transaction()
          .setIsolationLevel('repeatable read')
          .setAccessMode('read only')
          .execute(async (trx) => {
            const limit = Math.min(remainingMs, POSTGRES_QUERY_TIMEOUT_MS - 1000);
            const timeout = String(Math.max(1, Math.floor(limit)));
            await sql`select set_config('statement_timeout', ${timeout}, true),
              set_config('work_mem', ${SORT_MEMORY}, true)`.execute(trx);
            return runHeavyQuery({ engine: 'postgres', db: trx }, task);
          }),
      )) satisfies Execute,
    close: async () => {},
  };
}
