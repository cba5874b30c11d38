import type pg from 'pg';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** How a reading reached the database. */
export type IngestPath = 'single' | 'batch' | 'import';

/**
 * The one owner of the Prometheus registry. Features get it explicitly (never a global) and record
 * into the instruments below; a new feature adds its own instruments to `registry`, named
 * `statistics_<feature>_...`. Recording costs a few nanoseconds, so the instruments always exist;
 * only the request hook and the process metrics wait for `/metrics` to be turned on.
 */
export interface Metrics {
  readonly registry: Registry;
  /** Request latency per method, route template and status (its count is the request rate). */
  readonly httpRequests: Histogram<'method' | 'route' | 'status_code'>;
  readonly readingsStored: Counter<'path'>;
  /** Readings written by each group commit of single readings. */
  readonly groupCommitReadings: Histogram;
  /** Rows of reading_minutes merged (inserted or updated) by the inserts. */
  readonly minuteRollupsMerged: Counter;
  /** Heavy queries (statistics, series) waiting for a slot, and running, by lane (light, heavy). */
  readonly heavyQueriesWaiting: Gauge<'lane'>;
  readonly heavyQueriesRunning: Gauge<'lane'>;
  /** Slots that rest after a query while readings arrive (STATISTICS_BUSY_SHARE): taken, running nothing. */
  readonly heavySlotsResting: Gauge<'lane'>;
  /** How long each heavy query waited for a slot, and how long it ran (by outcome: ok, error, timeout, out_of_memory). */
  readonly heavyQueryWait: Histogram<'query' | 'lane'>;
  readonly heavyQueryRun: Histogram<'query' | 'lane' | 'outcome'>;
  /** Heavy queries stopped at STATISTICS_TIMEOUT_MS, and refused because their lane's queue was full. */
  readonly heavyQueryTimeouts: Counter<'query' | 'lane'>;
  readonly heavyQueryRejections: Counter<'query' | 'lane'>;
}

export function createMetrics(pool?: pg.Pool): Metrics {
  const registry = new Registry();
  const registers = [registry];
  if (pool) poolGauges(pool, registry);
  return {
    registry,
    httpRequests: new Histogram({
      name: 'statistics_http_request_duration_seconds',
      help: 'HTTP requests by method, route template and status, and how long they took',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    readingsStored: new Counter({
      name: 'statistics_readings_stored_total',
      help: 'Readings stored, by path: single (POST /data/ one reading), batch, import',
      labelNames: ['path'],
      registers,
    }),
    groupCommitReadings: new Histogram({
      name: 'statistics_group_commit_readings',
      help: 'Single readings written together by one group commit',
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000],
      registers,
    }),
    minuteRollupsMerged: new Counter({
      name: 'statistics_minute_rollups_merged_total',
      help: 'Per-minute rollup rows (reading_minutes) inserted or updated by the reading inserts',
      registers,
    }),
    heavyQueriesWaiting: new Gauge({
      name: 'statistics_heavy_queries_waiting',
      help: 'Heavy queries (statistics, series) waiting for a slot (at most STATISTICS_QUEUE per lane), by lane',
      labelNames: ['lane'],
      registers,
    }),
    heavyQueriesRunning: new Gauge({
      name: 'statistics_heavy_queries_running',
      help: 'Heavy queries running (at most STATISTICS_CONCURRENCY in each lane, less the slots resting), by lane',
      labelNames: ['lane'],
      registers,
    }),
    heavySlotsResting: new Gauge({
      name: 'statistics_heavy_slots_resting',
      help:
        'Heavy-query slots resting after a query while readings arrive (STATISTICS_BUSY_SHARE): taken, ' +
        'running nothing, by lane',
      labelNames: ['lane'],
      registers,
    }),
    heavyQueryWait: new Histogram({
      name: 'statistics_heavy_query_wait_seconds',
      help: 'How long a heavy query waited for a slot, by query and lane',
      labelNames: ['query', 'lane'],
      buckets: [0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    heavyQueryRun: new Histogram({
      name: 'statistics_heavy_query_run_seconds',
      help: 'How long a heavy query ran, by query, lane and outcome (ok, error, timeout, out_of_memory: its thread passed STATISTICS_THREAD_MEMORY_MB)',
      labelNames: ['query', 'lane', 'outcome'],
      buckets: [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    heavyQueryTimeouts: new Counter({
      name: 'statistics_heavy_query_timeouts_total',
      help: 'Heavy queries stopped at STATISTICS_TIMEOUT_MS (answered 503), by query and lane',
      labelNames: ['query', 'lane'],
      registers,
    }),
    heavyQueryRejections: new Counter({
      name: 'statistics_heavy_query_rejections_total',
      help: 'Heavy queries refused with a 503 because STATISTICS_QUEUE were already waiting in their lane, by query and lane',
      labelNames: ['query', 'lane'],
      registers,
    }),
  };
}

/** Event-loop lag, memory, CPU, handles and GC of this process (prom-client's default set). */
export function collectProcessMetrics(metrics: Metrics): void {
  collectDefaultMetrics({ register: metrics.registry, eventLoopMonitoringPrecision: 10 });
}

/** PostgreSQL's connection pool, read when scraped. */
function poolGauges(pool: pg.Pool, registry: Registry): void {
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  gauge('statistics_db_pool_connections', 'PostgreSQL connections open in the pool', () => pool.totalCount);
  gauge(
    'statistics_db_pool_idle_connections',
    'PostgreSQL connections idle in the pool',
    () => pool.idleCount,
  );
  gauge(
    'statistics_db_pool_waiting_requests',
    'Queries waiting for a PostgreSQL connection',
    () => pool.waitingCount,
  );
}
