import { performance } from 'node:perf_hooks';
import SQLite from 'better-sqlite3';
import { type Budget, makeReadings, type Rate, type RawEngine, rate } from './readings.js';

const DAY_MS = 86_400_000;
const INSERT = 'insert into data (device_id, x, y, z, created_at) values (?, ?, ?, ?, ?)';
const INSERT_JSON = `insert into data (device_id, x, y, z, created_at)
  select value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 from json_each(?)`;
/** The statement the API runs for GET /analyze_statistics/ (attr x, no filter). */
const AGGREGATE =
  'select count(*) as count, min(x) as min, max(x) as max, sum(x) as sum, avg(x) as mean, median(x) as median from data';

/** better-sqlite3 on the server's own file, with the server's pragmas (WAL, synchronous=NORMAL, foreign keys). */
export function sqliteEngine(path: string): RawEngine {
  let connection: SQLite.Database | undefined;
  const open = () => {
    if (connection) return connection;
    connection = new SQLite(path);
    connection.pragma('journal_mode = WAL');
    connection.pragma('synchronous = NORMAL');
    connection.pragma('foreign_keys = ON');
    connection.pragma('busy_timeout = 5000');
    return connection;
  };

  return {
    engine: 'sqlite',
    databaseUrl: `sqlite:${path}`,

    async bulkLoad(deviceId, rows) {
      const db = open();
      const insert = db.prepare(INSERT);
      const chunk = 10_000;
      const start = Date.now() - 30 * DAY_MS;
      const step = (30 * DAY_MS) / rows;
      const writeChunk = db.transaction((offset: number, readings: ReturnType<typeof makeReadings>) => {
        readings.forEach((r, i) => {
          insert.run(r.device_id, r.x, r.y, r.z, Math.floor(start + (offset + i) * step));
        });
      });
      const began = performance.now();
      for (let offset = 0; offset < rows; offset += chunk) {
        writeChunk(offset, makeReadings(Math.min(chunk, rows - offset), deviceId, offset + 1));
      }
      db.pragma('wal_checkpoint(TRUNCATE)');
      return rate(rows, (performance.now() - began) / 1000);
    },

    aggregateSql: AGGREGATE,

    async aggregate() {
      const statement = open().prepare(AGGREGATE);
      const began = performance.now();
      const result: unknown = statement.get();
      return { ms: performance.now() - began, result };
    },

    async singleRowTransactions(deviceId, budget) {
      const insert = open().prepare(INSERT);
      const readings = makeReadings(1000, deviceId, 7);
      return timed(budget, 1, (done) => {
        const r = readings[done % readings.length] ?? readings[0];
        if (r) insert.run(r.device_id, r.x, r.y, r.z, Date.now());
      });
    },

    async batchedInserts(deviceId, batchSize, budget) {
      const db = open();
      const readings = makeReadings(batchSize, deviceId, 11);
      const insert = db.prepare(INSERT);
      const prepared = db.transaction((at: number) => {
        for (const r of readings) insert.run(r.device_id, r.x, r.y, r.z, at);
      });
      const insertJson = db.prepare(INSERT_JSON);
      // Building the JSON text is part of the cost: the values start as JS objects in both methods.
      const viaJson = db.transaction((at: number) => {
        insertJson.run(JSON.stringify(readings.map((r) => [r.device_id, r.x, r.y, r.z, at])));
      });
      const results: Array<{ method: string } & Rate> = [];
      results.push({
        method: 'prepared INSERT per row, one transaction per batch',
        ...timed(budget, batchSize, () => prepared(Date.now())),
      });
      results.push({
        method: 'INSERT ... SELECT FROM json_each(?) per batch',
        ...timed(budget, batchSize, () => viaJson(Date.now())),
      });
      return results;
    },

    async close() {
      connection?.close();
      connection = undefined;
    },

    async dispose() {
      connection?.close();
      connection = undefined;
    },
  };
}

/** Calls `step` (which stores `rowsPerStep` rows) until the time or the row budget runs out. */
function timed(budget: Budget, rowsPerStep: number, step: (done: number) => void): Rate {
  const began = performance.now();
  const deadline = began + budget.seconds * 1000;
  let rows = 0;
  while (rows < budget.maxRows) {
    step(rows);
    rows += rowsPerStep;
    if (rows % 256 < rowsPerStep && performance.now() >= deadline) break;
  }
  return rate(rows, (performance.now() - began) / 1000);
}
