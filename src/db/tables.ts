import type { Generated } from 'kysely';

/** Times are stored as UTC epoch milliseconds: exact, compact and the same on both engines. */
export type EpochMs = number;

/** A minute in EpochMs: the grain of the minute rollups (`reading_minutes`). */
export const MINUTE_MS = 60_000;

export interface UsersTable {
  id: Generated<number>;
  email: string;
  hashed_password: string;
  is_active: boolean;
  is_superuser: boolean;
  is_verified: boolean;
}

export interface DevicesTable {
  id: Generated<number>;
  name: string | null;
  user_id: number | null;
  created_at: EpochMs;
  /** SHA-256 of the device's ingest secret, when it has one (INGEST_AUTH=token). */
  ingest_token_digest: string | null;
}

export interface ReadingsTable {
  id: Generated<number>;
  device_id: number;
  x: number;
  y: number;
  z: number;
  created_at: EpochMs;
}

/**
 * One device's readings in one UTC minute (`minute` is its start): kept by every insert, read by
 * charts, which would otherwise aggregate every reading of a long range. A sum beyond the double
 * range is ±Infinity or NaN, or null on SQLite.
 */
/**
 * SQLite only: a device's last minute that has readings, and the count of its readings before that
 * minute, kept by triggers (migration 0008); its count is these plus its last minute's. No row for a
 * device without any.
 */
export interface DeviceReadingTotalsTable {
  device_id: number;
  last_minute: EpochMs;
  readings_before: number;
}

export interface ReadingMinutesTable {
  device_id: number;
  minute: EpochMs;
  readings: number;
  x_min: number;
  x_max: number;
  x_sum: number | null;
  y_min: number;
  y_max: number;
  y_sum: number | null;
  z_min: number;
  z_max: number;
  z_sum: number | null;
  /** 0 when the minute changed since the folder last recomputed its hour (statistics/rollup-folder.ts). */
  folded: Generated<number>;
}

/**
 * One device's readings in one UTC hour, day or month (`start`): count, and per value min, max, sum,
 * the sum of squared deviations from the mean (`m2`) and a DDSketch (statistics/value-sketch.ts).
 * Kept by the folder, off the ingest path; a period is current only once all its minutes are folded.
 */
export interface ReadingRollupsTable {
  device_id: number;
  start: EpochMs;
  readings: number;
  x_min: number;
  x_max: number;
  x_sum: number | null;
  x_m2: number | null;
  x_sketch: Uint8Array;
  y_min: number;
  y_max: number;
  y_sum: number | null;
  y_m2: number | null;
  y_sketch: Uint8Array;
  z_min: number;
  z_max: number;
  z_sum: number | null;
  z_m2: number | null;
  z_sketch: Uint8Array;
}

/** Tokens ended by logout, kept (as a SHA-256 digest) until they would have expired anyway. */
export interface RevokedTokensTable {
  token_digest: string;
  expires_at: EpochMs;
}

/**
 * The idempotency key of a write and, once the write is committed, its answer (in the same
 * transaction as its readings). `progress` is what an import stored so far, until it ends.
 */
export interface IdempotencyKeysTable {
  scope: string;
  key: string;
  /** SHA-256 of the request; null while an import is stored (its body is not read whole yet). */
  fingerprint: string | null;
  status: number | null;
  /** The answer's JSON body. */
  answer: string | null;
  /** An import's report so far, as JSON. */
  progress: string | null;
  created_at: EpochMs;
}

export interface Database {
  users: UsersTable;
  devices: DevicesTable;
  data: ReadingsTable;
  reading_minutes: ReadingMinutesTable;
  device_reading_totals: DeviceReadingTotalsTable;
  reading_hours: ReadingRollupsTable;
  reading_days: ReadingRollupsTable;
  reading_months: ReadingRollupsTable;
  revoked_tokens: RevokedTokensTable;
  idempotency_keys: IdempotencyKeysTable;
}
