import type { Kysely } from 'kysely';
import { type Engine, insertReadingRows, isForeignKeyViolation, type ReadingRow } from '../db/dialect.js';
import type { Database, EpochMs } from '../db/tables.js';
import { KnownDevices } from '../devices/known-devices.js';
import { toIsoString } from '../http/dates.js';
import { notFound, RequestValidationError, type ValidationIssue } from '../http/errors.js';
import { ReadingWriter } from './reading-writer.js';
import type { BatchResult, Reading, ReadingCreate } from './schemas.js';

/** Batches up to this size list the ids they were given. */
const LISTED_IDS = 1000;

export interface Ingest {
  /** One reading, group-committed with others arriving at the same time. */
  one(reading: ReadingCreate): Promise<Reading>;
  /** Many readings, all stored in one statement or none; bad items are named by index and field. */
  batch(readings: ReadingCreate[]): Promise<BatchResult>;
  /** Rows already checked by `prepare`, stored in one statement (imports use this). */
  store(rows: ReadingRow[]): Promise<number[]>;
  /** Turns a reading into a row, or says what is wrong with it. */
  prepare(
    reading: ReadingCreate,
    receivedAt: EpochMs,
  ): ReadingRow | { field: keyof ReadingCreate; msg: string; type: string };
  devices: KnownDevices;
}

export function createIngest(db: Kysely<Database>, engine: Engine, maxFutureSkewSeconds: number): Ingest {
  const writer = new ReadingWriter(db, engine);
  const devices = new KnownDevices(db);
  const maxSkewMs = maxFutureSkewSeconds * 1000;

  const prepare: Ingest['prepare'] = (reading, receivedAt) => {
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
    prepare,
    store: (rows) => insertReadingRows(db, engine, rows),

    async one(reading) {
      const row = prepare(reading, Date.now());
      if (!('device_id' in row))
        throw new RequestValidationError([{ loc: ['body', row.field], msg: row.msg, type: row.type }]);
      if ((await devices.missing([row.device_id])).length > 0)
        throw notFound(`Device ${row.device_id} not found`);
      const id = await writer.write(row);
      return { id, ...row, created_at: toIsoString(row.created_at) };
    },

    async batch(readings) {
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
      let ids: number[];
      try {
        ids = await insertReadingRows(db, engine, rows);
      } catch (error) {
        if (isForeignKeyViolation(error))
          throw notFound('A device of this batch was deleted while it was stored');
        throw error;
      }
      return ids.length <= LISTED_IDS ? { stored: ids.length, ids } : { stored: ids.length };
    },
  };
}
