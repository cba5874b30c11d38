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
  /** One row per transaction (per statement, autocommit). */
  singleRowTransactions(deviceId: number, budget: Budget): Promise<Rate>;
  /** 1,000-row batches, every reasonable way this engine has; the caller takes the fastest. */
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
