import type { FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import { type Engine, isForeignKeyViolation } from '../db/dialect.js';
import type { Database, EpochMs } from '../db/tables.js';
import { INGEST_TOKEN_HEADER } from '../devices/ingest-tokens.js';
import type { KnownDevices } from '../devices/known-devices.js';
import { toIsoString } from '../http/dates.js';
import { DomainError, notFound, RequestValidationError, type ValidationIssue } from '../http/errors.js';
import type { IngestPath, Metrics } from '../metrics/metrics.js';
import { type BulkStore, COPY_FROM_READINGS } from './copy-readings.js';
import { IdempotencyKeys, type KeyUse } from './idempotency.js';
import { type Alongside, type ReadingRow, readingStore } from './reading-store.js';
import { ReadingWriter } from './reading-writer.js';
import type { BatchResult, Reading, ReadingCreate } from './schemas.js';

/**
 * What vouches for the devices of a write: the X-Device-Token a request carries (or none), or the MQTT
 * broker, which authenticated the publisher and let it publish only to its own topic
 * (MQTT_DEVICE_AUTH=broker).
 */
export type DeviceCredential = string | undefined | typeof BROKER_AUTHENTICATED;
export const BROKER_AUTHENTICATED = Symbol('the broker authenticated the device');

/** Batches up to this size list the ids they were given. */
const LISTED_IDS = 1000;

export interface Ingest {
  /**
   * One reading, group-committed with others arriving at the same time. With `key`, the request's
   * idempotency key is recorded with the answer in the same transaction (see IdempotencyKeys.once).
   */
  one(reading: ReadingCreate, deviceToken: DeviceCredential, key?: KeyUse): Promise<Reading>;
  /** Many readings, all stored in one statement or none; bad items are named by index and field. */
  batch(readings: ReadingCreate[], deviceToken: DeviceCredential, key?: KeyUse): Promise<BatchResult>;
  /** With INGEST_AUTH=token, the (existing) devices among `ids` that `deviceToken` does not open. */
  refused(ids: Iterable<number>, deviceToken: DeviceCredential): number[];
  /**
   * Rows already checked by `prepare`, stored in one statement (imports use this), with the statements
   * `alongside` in the same transaction; answers their ids.
   */
  store(rows: ReadingRow[], alongside?: Alongside): Promise<number[]>;
  /** Turns a reading into a row, or says what is wrong with it. */
  prepare(
    reading: ReadingCreate,
    receivedAt: EpochMs,
  ): ReadingRow | { field: keyof ReadingCreate | 'created_at'; msg: string; type: string };
  devices: KnownDevices;
  /** The idempotency keys of writes, recorded by `one`, `batch` and `store` with their readings. */
  keys: IdempotencyKeys;
  /**
   * Whether readings arrived within the last INGEST_BUSY_MS: the rollup folder paces itself and the
   * heavy queries rest between them meanwhile.
   */
  busy(): boolean;
}

/** Ingest counts as busy this long after readings last arrived to be stored. */
export const INGEST_BUSY_MS = 1000;

export interface IngestOptions {
  devices: KnownDevices;
  maxFutureSkewSeconds: number;
  ingestAuth: 'open' | 'token';
  metrics: Metrics;
  /** Large writes (imports, big batches) through COPY, on PostgreSQL (copy-readings.ts). */
  bulkStore?: BulkStore;
}

export function createIngest(
  db: Kysely<Database>,
  engine: Engine,
  { devices, maxFutureSkewSeconds, ingestAuth, metrics, bulkStore }: IngestOptions,
): Ingest {
  const store = readingStore(db, engine);
  const keys = new IdempotencyKeys(db, engine);
  const writer = new ReadingWriter(store, metrics, keys);
  let lastStoredAt = Number.NEGATIVE_INFINITY;
  const insert = async (rows: ReadingRow[], path: IngestPath, alongside?: Alongside) => {
    lastStoredAt = performance.now();
    const stored =
      bulkStore && rows.length >= COPY_FROM_READINGS
        ? await bulkStore(rows, alongside)
        : await store.insert(rows, undefined, alongside);
    metrics.readingsStored.inc({ path }, stored.ids.length);
    metrics.minuteRollupsMerged.inc(stored.minuteRollups);
    return stored.ids;
  };
  const maxSkewMs = maxFutureSkewSeconds * 1000;
  const refused: Ingest['refused'] = (ids, deviceToken) =>
    ingestAuth === 'token' && deviceToken !== BROKER_AUTHENTICATED ? devices.refusing(ids, deviceToken) : [];
  const requireTokens = (ids: Iterable<number>, deviceToken: DeviceCredential) => {
    const closed = refused(ids, deviceToken);
    if (closed.length > 0) {
      const which =
        closed.length === 1 ? `Device ${closed[0]} needs its` : `Devices ${closed.join(', ')} need their`;
      throw new DomainError('UNAUTHORIZED', `${which} ingest token in the X-Device-Token header`);
    }
  };

  const prepare: Ingest['prepare'] = (reading, receivedAt) => {
    // The answers' old name for the time: taking it silently would store the server's time instead.
    if (Object.hasOwn(reading, 'created_at'))
      return {
        field: 'created_at',
        msg: "a reading's time is `timestamp` (ISO 8601 with a zone); `created_at` is not taken",
        type: 'value_error.renamed_field',
      };
    let createdAt = receivedAt;
    if (reading.timestamp !== undefined) {
      createdAt = Date.parse(reading.timestamp);
      if (Number.isNaN(createdAt))
        return { field: 'timestamp', msg: 'invalid datetime format', type: 'value_error.datetime' };
      if (createdAt > receivedAt + maxSkewMs) {
        return {
          field: 'timestamp',
          msg: `timestamp is more than ${maxFutureSkewSeconds} s ahead of the server's clock`,
          type: 'value_error.datetime.future',
        };
      }
    }
    return { device_id: reading.device_id, x: reading.x, y: reading.y, z: reading.z, created_at: createdAt };
  };

  return {
    devices,
    keys,
    prepare,
    refused,
    busy: () => performance.now() - lastStoredAt < INGEST_BUSY_MS,
    store: (rows, alongside) => insert(rows, 'import', alongside),

    async one(reading, deviceToken, key) {
      const row = prepare(reading, Date.now());
      if (!('device_id' in row))
        throw new RequestValidationError([{ loc: ['body', row.field], msg: row.msg, type: row.type }]);
      // A device seen before needs no look-up, nor the promise and microtask of an await.
      if (!devices.has(row.device_id) && (await devices.missing([row.device_id])).length > 0)
        throw notFound(`Device ${row.device_id} not found`);
      requireTokens([row.device_id], deviceToken);
      const { device_id, x, y, z, created_at } = row;
      const answer = (id: number): Reading => ({
        id,
        device_id,
        x,
        y,
        z,
        timestamp: toIsoString(created_at),
      });
      lastStoredAt = performance.now();
      return answer(await writer.write(row, key && { use: key, answer }));
    },

    async batch(readings, deviceToken, key) {
      const receivedAt = Date.now();
      const issues: ValidationIssue[] = [];
      const rows: ReadingRow[] = [];
      readings.forEach((reading, index) => {
        const row = prepare(reading, receivedAt);
        if ('device_id' in row) rows.push(row);
        else issues.push({ loc: ['body', index, row.field], msg: row.msg, type: row.type });
      });
      const missing = new Set(await devices.missing(readings.map((r) => r.device_id)));
      readings.forEach((reading, index) => {
        if (missing.has(reading.device_id)) {
          issues.push({
            loc: ['body', index, 'device_id'],
            msg: `device ${reading.device_id} not found`,
            type: 'value_error.device_not_found',
          });
        }
      });
      if (issues.length > 0) throw new RequestValidationError(issues);
      requireTokens(
        readings.map((r) => r.device_id),
        deviceToken,
      );
      const answer = (ids: number[]): BatchResult =>
        ids.length <= LISTED_IDS ? { stored: ids.length, ids } : { stored: ids.length };
      try {
        const alongside: Alongside | undefined =
          key && ((ids) => keys.recording([{ use: key, answer: answer(ids) }]));
        return answer(await insert(rows, 'batch', alongside));
      } catch (error) {
        if (isForeignKeyViolation(error))
          throw notFound('A device of this batch was deleted while it was stored');
        throw error;
      }
    },
  };
}

/** The device secret a request carries, for INGEST_AUTH=token. */
export function deviceToken(request: FastifyRequest): string | undefined {
  const value = request.headers[INGEST_TOKEN_HEADER];
  return typeof value === 'string' ? value : undefined;
}
