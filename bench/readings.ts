/** One reading as the API takes it. */
export interface Reading {
  device_id: number;
  x: number;
  y: number;
  z: number;
}

/** A small deterministic PRNG (mulberry32), so every run stores the same values. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Readings with values to two decimals in [0, 1000), like a sensor would send them. */
export function makeReadings(count: number, deviceId: number, seed = 1): Reading[] {
  const random = prng(seed);
  const value = () => Math.round(random() * 100_000) / 100;
  return Array.from({ length: count }, () => ({ device_id: deviceId, x: value(), y: value(), z: value() }));
}

/** A rate over a bounded loop. */
export interface Rate {
  rows: number;
  seconds: number;
  rowsPerSecond: number;
}

export const rate = (rows: number, seconds: number): Rate => ({
  rows,
  seconds,
  rowsPerSecond: seconds > 0 ? rows / seconds : 0,
});

/** Every raw loop stops at whichever comes first. */
export interface Budget {
  seconds: number;
  maxRows: number;
}

export const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const upper = sorted[middle] ?? Number.NaN;
  return sorted.length % 2 === 1 ? upper : ((sorted[middle - 1] ?? Number.NaN) + upper) / 2;
};

const DAY_MS = 86_400_000;

/**
 * The large dataset: `rows` readings of `deviceIds` over the `days` whole UTC days that end at
 * today's midnight UTC. Every device reports at a fixed interval (about 78 s for 10M readings from
 * 100 devices over 90 days) with its own phase and a little jitter, so the devices interleave the way
 * live traffic does and created_at (epoch milliseconds) only roughly increases.
 */
export interface LargePlan {
  rows: number;
  deviceIds: number[];
  days: number;
  startMs: number;
  endMs: number;
  /** Readings per device (the last tick may stop short of some devices to total `rows`). */
  perDevice: number;
  intervalMs: number;
}

export function largePlan(rows: number, deviceIds: number[], days: number, now = Date.now()): LargePlan {
  const endMs = Math.floor(now / DAY_MS) * DAY_MS;
  const perDevice = Math.ceil(rows / deviceIds.length);
  return {
    rows,
    deviceIds,
    days,
    startMs: endMs - days * DAY_MS,
    endMs,
    perDevice,
    intervalMs: (days * DAY_MS) / perDevice,
  };
}

/** One reading as stored: [device_id, x, y, z, created_at]. */
export type ReadingTuple = [number, number, number, number, number];

/**
 * The large dataset in time order, `ticksPerBatch` report intervals (of every device) per batch.
 * x is a temperature with a daily cycle, y a humidity, z a pressure, all to two decimals.
 */
export function* largeBatches(plan: LargePlan, ticksPerBatch: number): Generator<ReadingTuple[]> {
  const random = prng(4242);
  const devices = plan.deviceIds.length;
  const round2 = (value: number) => Math.round(value * 100) / 100;
  let produced = 0;
  for (let tick = 0; tick < plan.perDevice && produced < plan.rows; tick += ticksPerBatch) {
    const batch: ReadingTuple[] = [];
    const lastTick = Math.min(plan.perDevice, tick + ticksPerBatch);
    for (let k = tick; k < lastTick && produced < plan.rows; k++) {
      for (let d = 0; d < devices && produced < plan.rows; d++) {
        const phase = (d / devices) * plan.intervalMs;
        const jitter = (random() - 0.5) * 0.2 * plan.intervalMs;
        const at = Math.floor(plan.startMs + k * plan.intervalMs + phase + jitter);
        const createdAt = Math.min(plan.endMs - 1, Math.max(plan.startMs, at));
        const dayAngle = (2 * Math.PI * (createdAt % DAY_MS)) / DAY_MS;
        batch.push([
          plan.deviceIds[d] as number,
          round2(20 + d / 10 + 5 * Math.sin(dayAngle) + random() * 2),
          round2(40 + 30 * random()),
          round2(1000 + 20 * random()),
          createdAt,
        ]);
        produced += 1;
      }
    }
    yield batch;
  }
}

const ROLLUP_COLUMNS =
  'device_id, minute, readings, x_min, x_max, x_sum, y_min, y_max, y_sum, z_min, z_max, z_sum';

/**
 * The per-minute rollups (reading_minutes) rebuilt from the data table, as migration 0003 fills
 * them: a bulk load straight through the driver bypasses the API, which keeps them at every insert.
 * The same text runs on both engines (the bench's values never overflow a sum).
 */
export const REBUILD_MINUTE_ROLLUPS = [
  'delete from reading_minutes',
  `insert into reading_minutes (${ROLLUP_COLUMNS})
   select device_id, created_at - ((created_at % 60000) + 60000) % 60000, count(*),
     min(x), max(x), sum(x), min(y), max(y), sum(y), min(z), max(z), sum(z)
   from data group by 1, 2`,
];

/**
 * Readings summed up per device and UTC minute, in key order, as src/data/reading-store.ts does before
 * each insert: rows of reading_minutes' columns (device_id, minute, readings, then min, max and sum
 * of x, y and z).
 */
export function minuteRollups(readings: Reading[], at: (i: number) => number): number[][] {
  const byKey = new Map<string, number[]>();
  readings.forEach((r, i) => {
    const time = at(i);
    const minute = time - (((time % 60_000) + 60_000) % 60_000);
    const key = `${r.device_id}/${minute}`;
    let rollup = byKey.get(key);
    if (!rollup) {
      rollup = [r.device_id, minute, 0, r.x, r.x, 0, r.y, r.y, 0, r.z, r.z, 0];
      byKey.set(key, rollup);
    }
    rollup[2] = (rollup[2] as number) + 1;
    [r.x, r.y, r.z].forEach((value, v) => {
      const c = 3 + v * 3;
      rollup[c] = Math.min(rollup[c] as number, value);
      rollup[c + 1] = Math.max(rollup[c + 1] as number, value);
      rollup[c + 2] = (rollup[c + 2] as number) + value;
    });
  });
  return [...byKey.values()].sort(
    (a, b) => (a[0] as number) - (b[0] as number) || (a[1] as number) - (b[1] as number),
  );
}

/**
 * Merges `source` (a relation with reading_minutes' columns) into the rows already there, as the API
 * does on every insert. `lesser`/`greater` name the engine's two-argument min and max. The API's
 * PostgreSQL sums also guard against overflow; the bench's values never need it.
 */
export function upsertRollupsSql(source: string, lesser: string, greater: string): string {
  const merged = ['x', 'y', 'z'].flatMap((v) => [
    `${v}_min = ${lesser}(reading_minutes.${v}_min, excluded.${v}_min)`,
    `${v}_max = ${greater}(reading_minutes.${v}_max, excluded.${v}_max)`,
    `${v}_sum = reading_minutes.${v}_sum + excluded.${v}_sum`,
  ]);
  return `insert into reading_minutes (${ROLLUP_COLUMNS})
    select * from ${source} as incoming where true
    on conflict (device_id, minute) do update set
      readings = reading_minutes.readings + excluded.readings, ${merged.join(', ')}`;
}

/** A statement with its parameters, run straight through a driver. */
export interface RawStatement {
  text: string;
  values: unknown[];
}

/** The selection and statistics of one GET /analyze_statistics/ request, for the hand-written SQL. */
export interface StatisticsSpec {
  attrs: Array<'x' | 'y' | 'z'>;
  /** 0 to 100; the median is always computed. */
  percentiles: number[];
  deviceId?: number;
  /** Inclusive bounds in epoch milliseconds. */
  start?: number;
  end?: number;
  /** group_by=device: one row per device, in device order. */
  groupByDevice?: boolean;
}

/** One GET /analyze_statistics/series request of one device, with the bucket boundaries it computes. */
export interface SeriesSpec {
  attr: 'x' | 'y' | 'z';
  deviceId: number;
  start: number;
  end: number;
  /** One more than the buckets: the start of each, then the end of the last. */
  boundaries: number[];
}

/** The raw side of an engine: direct loading, and the ceilings measured straight through its driver. */
export interface RawEngine {
  readonly engine: 'sqlite' | 'postgres';
  /** What the server gets as DATABASE_URL. */
  readonly databaseUrl: string;
  /** Writes `rows` readings of `deviceId` directly, spread over the last 30 days. */
  bulkLoad(deviceId: number, rows: number): Promise<Rate>;
  /** The SQL the API runs for GET /analyze_statistics/ (attr x, no filter). */
  readonly aggregateSql: string;
  /** Runs that SQL once straight through the driver. */
  aggregate(): Promise<{ ms: number; result: unknown }>;
  /** The SQL GET /analyze_statistics/ runs for `spec`, written out by hand for this engine. */
  statisticsSql(spec: StatisticsSpec): RawStatement;
  /** The SQL GET /analyze_statistics/series runs for `spec`, written out by hand for this engine. */
  seriesSql(spec: SeriesSpec): RawStatement;
  /** Runs a statement once (prepared once and kept, as the server keeps its statements), timed. */
  run(statement: RawStatement, rows: 'one' | 'all'): Promise<{ ms: number; result: unknown }>;
  /** The engine's plan of a statement (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN), one line each. */
  explain(statement: RawStatement): Promise<string[]>;
  /**
   * Writes the large dataset straight through the driver, in batches; the data indexes are dropped
   * first and rebuilt from their own definitions afterwards (how a bulk load is done).
   */
  bulkLoadLarge(plan: LargePlan): Promise<Rate & { method: string }>;
  /** The size of the data on disk (SQLite: the database file; PostgreSQL: the data table and its indexes). */
  sizeBytes(): Promise<number>;
  /** One reading per transaction, with its rollup (per statement, autocommit). */
  singleRowTransactions(deviceId: number, budget: Budget): Promise<Rate>;
  /** 1,000-row batches with their rollups, every reasonable way this engine has; the caller takes the fastest. */
  batchedInserts(
    deviceId: number,
    batchSize: number,
    budget: Budget,
  ): Promise<Array<{ method: string } & Rate>>;
  /** Closes the bench's own connections (before or after the server runs). */
  close(): Promise<void>;
  /** Removes what the run created (PostgreSQL: the database); the temp dir goes with run.ts. */
  dispose(): Promise<void>;
}
