import { performance } from 'node:perf_hooks';
import SQLite from 'better-sqlite3';
import {
  type Budget,
  largeBatches,
  makeReadings,
  minuteRollups,
  type Rate,
  type RawEngine,
  type RawStatement,
  REBUILD_MINUTE_ROLLUPS,
  type ReadingTuple,
  rate,
  type SeriesSpec,
  type StatisticsSpec,
  upsertRollupsSql,
} from './readings.js';

const DAY_MS = 86_400_000;
const INSERT = 'insert into data (device_id, x, y, z, created_at) values (?, ?, ?, ?, ?)';
const INSERT_JSON = `insert into data (device_id, x, y, z, created_at)
  select value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 from json_each(?)`;
/** Per-minute rollups, grouped in JS, merged from a JSON array of rows, as the API does. */
const UPSERT_ROLLUPS_JSON = upsertRollupsSql(
  `(select ${Array.from({ length: 12 }, (_, i) => `value ->> ${i}`).join(', ')} from json_each(?))`,
  'min',
  'max',
);
/** The server's page cache (src/db/database.ts: cache_size = -65536, 64 MiB). */
const CACHE_SIZE = -65_536;
/** Rows per transaction when loading the large dataset. */
const LARGE_BATCH_ROWS = 20_000;

/**
 * GET /analyze_statistics/ by hand, as src/statistics/reading-statistics.ts builds it for SQLite: the
 * filtered rows as CTE `selected`, the mean of each value as CTE `means`, then per value count, min,
 * max, the median and each percentile (percentile_cont, interpolated), the sum, and the sum of
 * squared deviations from the mean (the variance's second pass).
 */
function statisticsSql(spec: StatisticsSpec): RawStatement {
  const where: string[] = [];
  const values: unknown[] = [];
  if (spec.deviceId !== undefined) {
    where.push('data.device_id = ?');
    values.push(spec.deviceId);
  }
  if (spec.start !== undefined) {
    where.push('data.created_at >= ?');
    values.push(spec.start);
  }
  if (spec.end !== undefined) {
    where.push('data.created_at <= ?');
    values.push(spec.end);
  }
  const filter = where.length > 0 ? ` where ${where.join(' and ')}` : '';
  const grouped = spec.groupByDevice === true;
  const means = [
    ...(grouped ? ['selected.device_id'] : []),
    ...spec.attrs.map((a) => `avg(selected.${a}) as ${a}_mean`),
  ].join(', ');
  const columns = [...(grouped ? ['selected.device_id as device_id'] : [])].concat(
    spec.attrs.flatMap((a) => [
      `count(selected.${a}) as ${a}_count`,
      `min(selected.${a}) as ${a}_min`,
      `max(selected.${a}) as ${a}_max`,
      `percentile_cont(selected.${a}, 0.5) as ${a}_median`,
      ...spec.percentiles.map((p, i) => `percentile_cont(selected.${a}, ${p / 100}) as ${a}_p${i}`),
      `sum(selected.${a}) as ${a}_sum`,
      `sum((selected.${a} - means.${a}_mean) * (selected.${a} - means.${a}_mean)) as ${a}_squares`,
    ]),
  );
  return {
    text:
      `with selected as (select data.device_id, data.x, data.y, data.z from data${filter}), ` +
      `means as (select ${means} from selected${grouped ? ' group by selected.device_id' : ''}) ` +
      `select ${columns.join(', ')} from selected ` +
      (grouped
        ? 'join means on means.device_id = selected.device_id group by selected.device_id order by 1'
        : 'cross join means'),
    values,
  };
}

/**
 * GET /analyze_statistics/series by hand, as src/statistics/reading-series.ts builds it for SQLite
 * when the buckets and the range fall on whole minutes (the bench's do): the device's per-minute
 * rollups in [start, end + 1), each numbered by arithmetic on its minute.
 */
function seriesSql(spec: SeriesSpec): RawStatement {
  const a = spec.attr;
  const first = spec.boundaries[0] as number;
  const width = (spec.boundaries[1] as number) - first;
  return {
    text:
      'select cast((minute - ?) / ? as integer) as bucket, sum(readings) as count, ' +
      `min(${a}_min) as min, max(${a}_max) as max, sum(${a}_sum) as sum ` +
      'from reading_minutes where minute >= ? and minute < ? and device_id = ? group by 1 order by 1',
    values: [
      first,
      width,
      Math.max(first, spec.start),
      Math.min(spec.boundaries.at(-1) as number, spec.end + 1),
      spec.deviceId,
    ],
  };
}

/**
 * The statement the API runs for GET /analyze_statistics/ (attr x, no filter): since the variance
 * arrived it is the statistics query above, with the means CTE and a second pass for the squared
 * deviations.
 */
const AGGREGATE = statisticsSql({ attrs: ['x'], percentiles: [] }).text;

/** better-sqlite3 on the server's own file, with the server's pragmas (WAL, synchronous=NORMAL, foreign keys, 64 MiB cache). */
export function sqliteEngine(path: string): RawEngine {
  let connection: SQLite.Database | undefined;
  const statements = new Map<string, SQLite.Statement>();
  const open = () => {
    if (connection) return connection;
    connection = new SQLite(path);
    connection.pragma('journal_mode = WAL');
    connection.pragma('synchronous = NORMAL');
    connection.pragma('foreign_keys = ON');
    connection.pragma('busy_timeout = 5000');
    connection.pragma(`cache_size = ${CACHE_SIZE}`);
    return connection;
  };
  const cached = (text: string) => {
    let statement = statements.get(text);
    if (!statement) {
      statement = open().prepare(text);
      statements.set(text, statement);
    }
    return statement;
  };
  const shut = () => {
    statements.clear();
    connection?.close();
    connection = undefined;
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
      for (const statement of REBUILD_MINUTE_ROLLUPS) db.exec(statement);
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

    statisticsSql,
    seriesSql,

    async run(statement, rows) {
      const cachedStatement = cached(statement.text);
      const began = performance.now();
      const result: unknown =
        rows === 'one' ? cachedStatement.get(...statement.values) : cachedStatement.all(...statement.values);
      return { ms: performance.now() - began, result };
    },

    async explain(statement) {
      const steps = open()
        .prepare(`explain query plan ${statement.text}`)
        .all(...statement.values) as Array<{ id: number; parent: number; detail: string }>;
      // Indented like the sqlite3 shell's tree: each step under its parent.
      const depth = new Map<number, number>([[0, 0]]);
      return steps.map((step) => {
        const level = (depth.get(step.parent) ?? 0) + 1;
        depth.set(step.id, level);
        return `${'  '.repeat(level - 1)}${step.detail}`;
      });
    },

    async bulkLoadLarge(plan) {
      const db = open();
      const indexes = db
        .prepare(
          "select name, sql from sqlite_master where type = 'index' and tbl_name = 'data' and sql is not null",
        )
        .all() as Array<{ name: string; sql: string }>;
      const insert = db.prepare(INSERT);
      const write = db.transaction((batch: ReadingTuple[]) => {
        for (const r of batch) insert.run(r[0], r[1], r[2], r[3], r[4]);
      });
      const ticks = Math.max(1, Math.floor(LARGE_BATCH_ROWS / plan.deviceIds.length));
      db.pragma('cache_size = -262144'); // 256 MiB while loading and sorting the indexes
      const began = performance.now();
      for (const index of indexes) db.exec(`drop index "${index.name}"`);
      for (const batch of largeBatches(plan, ticks)) write(batch);
      for (const index of indexes) db.exec(index.sql);
      for (const statement of REBUILD_MINUTE_ROLLUPS) db.exec(statement);
      db.pragma('wal_checkpoint(TRUNCATE)');
      const seconds = (performance.now() - began) / 1000;
      db.pragma(`cache_size = ${CACHE_SIZE}`);
      statements.clear();
      return {
        method:
          `prepared INSERT per row, ${(ticks * plan.deviceIds.length).toLocaleString('en-US')} rows per ` +
          `transaction, ${indexes.map((index) => index.name).join(' and ')} dropped and rebuilt from their definitions, ` +
          'then the per-minute rollups built from the data',
        ...rate(plan.rows, seconds),
      };
    },

    async sizeBytes() {
      const db = open();
      return (
        Number(db.pragma('page_count', { simple: true })) * Number(db.pragma('page_size', { simple: true }))
      );
    },

    // The ceilings do the API's work: each insert also adds its readings to the per-minute rollups.
    async singleRowTransactions(deviceId, budget) {
      const db = open();
      const insert = db.prepare(INSERT);
      const upsert = db.prepare(UPSERT_ROLLUPS_JSON);
      const readings = makeReadings(1000, deviceId, 7);
      const store = db.transaction((r: (typeof readings)[number], at: number) => {
        insert.run(r.device_id, r.x, r.y, r.z, at);
        upsert.run(JSON.stringify(minuteRollups([r], () => at)));
      });
      return timed(budget, 1, (done) => {
        const r = readings[done % readings.length] ?? readings[0];
        if (r) store(r, Date.now());
      });
    },

    async batchedInserts(deviceId, batchSize, budget) {
      const db = open();
      const readings = makeReadings(batchSize, deviceId, 11);
      const insert = db.prepare(INSERT);
      const insertJson = db.prepare(INSERT_JSON);
      const upsert = db.prepare(UPSERT_ROLLUPS_JSON);
      const rollUp = (at: number) => upsert.run(JSON.stringify(minuteRollups(readings, () => at)));
      const prepared = db.transaction((at: number) => {
        for (const r of readings) insert.run(r.device_id, r.x, r.y, r.z, at);
        rollUp(at);
      });
      // Building the JSON text is part of the cost: the values start as JS objects in both methods.
      const viaJson = db.transaction((at: number) => {
        insertJson.run(JSON.stringify(readings.map((r) => [r.device_id, r.x, r.y, r.z, at])));
        rollUp(at);
      });
      const results: Array<{ method: string } & Rate> = [];
      results.push({
        method: 'prepared INSERT per row, then the rollups grouped in JS, one transaction per batch',
        ...timed(budget, batchSize, () => prepared(Date.now())),
      });
      results.push({
        method: 'INSERT ... SELECT FROM json_each(?), then the rollups grouped in JS, per batch',
        ...timed(budget, batchSize, () => viaJson(Date.now())),
      });
      return results;
    },

    async close() {
      shut();
    },

    async dispose() {
      shut();
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
