import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import PQueue from 'p-queue';
import { Piscina } from 'piscina';
import type { HeavyQuerySettings } from '../config.js';
import { type OpenedDatabase, POSTGRES_QUERY_TIMEOUT_MS } from '../db/database.js';
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

/**
 * Runs the queries that may scan many readings (heavy-queries.ts) off the event loop: at most
 * `concurrency` at once, at most `queue` waiting (beyond that a 503 with Retry-After at once), and
 * each answered within `timeoutMs` of its arrival, waiting included (a 503 then, never a hang).
 */
export interface HeavyQueries {
  run<Name extends HeavyQueryName>(name: Name, input: HeavyInput<Name>): Promise<HeavyOutput<Name>>;
  /**
   * A task of the service's own (the rollup folder's plan, one at a time): on the same threads and
   * with the same deadline, but outside the bounds on requests, so that it never takes a request's
   * place in the queue nor makes one a 503.
   */
  background<Name extends HeavyQueryName>(name: Name, input: HeavyInput<Name>): Promise<HeavyOutput<Name>>;
  close(): Promise<void>;
}

/** Runs one task within `remainingMs`; `deadline` aborts when the time is up. */
type Execute = (task: HeavyTask, deadline: AbortSignal, remainingMs: number) => Promise<unknown>;

/** The engine's way is chosen once: SQLite's worker threads, or PostgreSQL's pool with a statement_timeout. */
export function createHeavyQueries(
  database: OpenedDatabase,
  settings: HeavyQuerySettings,
  metrics: Metrics,
  reads: Reads,
): HeavyQueries {
  const engine = database.engine === 'sqlite' ? sqliteWorkers(database, settings) : postgresPool(reads);
  const queue = new PQueue({ concurrency: settings.concurrency });
  const counts = () => {
    metrics.heavyQueriesWaiting.set(queue.size);
    metrics.heavyQueriesRunning.set(queue.pending);
  };
  return {
    async run(name, input) {
      if (queue.pending >= settings.concurrency && queue.size >= settings.queue) {
        metrics.heavyQueryRejections.inc({ query: name });
        throw new DomainError(
          'STATISTICS_BUSY',
          `${settings.concurrency} statistics queries are running and ${settings.queue} waiting: retry shortly`,
          1,
        );
      }
      const arrived = performance.now();
      const deadline = AbortSignal.timeout(settings.timeoutMs);
      let started: number | undefined;
      try {
        const answer = queue.add(
          () => {
            started = performance.now();
            metrics.heavyQueryWait.observe({ query: name }, (started - arrived) / 1000);
            counts();
            return engine.execute({ name, input }, deadline, settings.timeoutMs - (started - arrived));
          },
          { signal: deadline },
        );
        counts();
        const output = (await answer) as HeavyOutput<typeof name>;
        observeRun(metrics, name, 'ok', started);
        return output;
      } catch (error) {
        const timedOut = deadline.aborted || isStatementTimeout(error);
        observeRun(metrics, name, timedOut ? 'timeout' : 'error', started);
        if (!timedOut) throw error;
        metrics.heavyQueryTimeouts.inc({ query: name });
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
    async background(name, input) {
      const output = await engine.execute(
        { name, input },
        AbortSignal.timeout(settings.timeoutMs),
        settings.timeoutMs,
      );
      return output as HeavyOutput<typeof name>;
    },
    async close() {
      queue.clear();
      await engine.close();
    },
  };
}

/** How long a query ran, if it started at all (one that timed out waiting did not). */
function observeRun(metrics: Metrics, query: string, outcome: string, started: number | undefined): void {
  if (started !== undefined)
    metrics.heavyQueryRun.observe({ query, outcome }, (performance.now() - started) / 1000);
}

/** The young generation of each heavy-query thread's V8 heap, in MB (see sqliteWorkers). */
const WORKER_YOUNG_GENERATION_MB = 8;

/**
 * SQLite: a piscina pool of worker threads (heavy-worker.ts), each with its own read-only connection,
 * at a lower CPU priority than the event loop. One thread starts with the pool, the others when
 * queries come, and end after a minute idle. At the deadline the task's
 * worker is terminated: statistics stop at once (their collect_values aggregate runs JavaScript per
 * row, where termination takes effect); a statement without JavaScript in it runs on to its end in
 * the dying thread, but the request is answered at the deadline all the same.
 */
function sqliteWorkers(database: OpenedDatabase, settings: HeavyQuerySettings) {
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
    maxThreads: settings.concurrency,
    idleTimeout: 60_000,
    // A small young generation per thread (V8's default lets each grow to 16 MB semi-spaces): a query's
    // garbage is the numbers SQLite hands collect_values, dead at once, which a small one sweeps as
    // cheaply. attr=x,y,z with 5 percentiles over 1M readings, the folder catching up meanwhile, three
    // alternating rounds at load 10: the server's peak RSS 410-435 MB by default, 388-399 MB at 8 MB.
    resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
    // Below the event loop's priority (Linux nice +10, per thread): ingest and /health get the cores
    // first, the heavy queries what is left.
    niceIncrement: 10,
    workerData: { path },
  });
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
function postgresPool(reads: Reads) {
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
