import { performance } from 'node:perf_hooks';
import pg from 'pg';
import {
  largeBatches,
  makeReadings,
  minuteRollups,
  type Rate,
  type RawEngine,
  type RawStatement,
  REBUILD_MINUTE_ROLLUPS,
  type Reading,
  type ReadingTuple,
  rate,
  type SeriesSpec,
  type StatisticsSpec,
  upsertRollupsSql,
} from './readings.js';

const DAY_MS = 86_400_000;
const PARALLEL_CONNECTIONS = [1, 2, 4];
const INSERT_UNNEST = `insert into data (device_id, x, y, z, created_at)
  select * from unnest($1::int[], $2::float8[], $3::float8[], $4::float8[], $5::int8[])`;
const INSERT_ONE = 'insert into data (device_id, x, y, z, created_at) values ($1, $2, $3, $4, $5)';
/** An insert chained to its per-minute rollups ($6 to $17, grouped in JS) in one statement, as the API stores readings. */
const withRollUp = (insert: string) =>
  `with inserted as (${insert} returning id), rolled_up as (${upsertRollupsSql(
    `(select * from unnest($6::int[], $7::int8[], $8::int[], ${Array.from({ length: 9 }, (_, i) => `$${9 + i}::float8[]`).join(', ')}))`,
    'least',
    'greatest',
  )}) select count(*) from inserted`;
/** minuteRollups as the twelve column arrays of withRollUp. */
const rollupColumns = (rollups: number[][]) =>
  Array.from({ length: 12 }, (_, c) => rollups.map((rollup) => rollup[c]));
/** Rows per INSERT ... unnest statement when loading the large dataset. */
const LARGE_BATCH_ROWS = 50_000;

/**
 * GET /analyze_statistics/ by hand, as src/statistics/reading-statistics.ts builds it for PostgreSQL:
 * the filtered rows as CTE `selected`, the mean of each value as CTE `means`, then per value count,
 * min, max, the median and each percentile (percentile_cont ... within group), the sum, and the sum of
 * squared deviations from the mean (the variance's second pass).
 */
function statisticsSql(spec: StatisticsSpec): RawStatement {
  const where: string[] = [];
  const values: unknown[] = [];
  if (spec.deviceId !== undefined) {
    values.push(spec.deviceId);
    where.push(`data.device_id = $${values.length}`);
  }
  if (spec.start !== undefined) {
    values.push(spec.start);
    where.push(`data.created_at >= $${values.length}`);
  }
  if (spec.end !== undefined) {
    values.push(spec.end);
    where.push(`data.created_at <= $${values.length}`);
  }
  const filter = where.length > 0 ? ` where ${where.join(' and ')}` : '';
  const grouped = spec.groupByDevice === true;
  const means = [
    ...(grouped ? ['selected.device_id'] : []),
    ...spec.attrs.map((a) => `avg(selected.${a}) as ${a}_mean`),
  ].join(', ');
  const percentile = (a: string, fraction: number) =>
    `percentile_cont(${fraction}) within group (order by selected.${a})`;
  const columns = [...(grouped ? ['selected.device_id as device_id'] : [])].concat(
    spec.attrs.flatMap((a) => [
      `count(selected.${a}) as ${a}_count`,
      `min(selected.${a}) as ${a}_min`,
      `max(selected.${a}) as ${a}_max`,
      `${percentile(a, 0.5)} as ${a}_median`,
      ...spec.percentiles.map((p, i) => `${percentile(a, p / 100)} as ${a}_p${i}`),
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
 * GET /analyze_statistics/series by hand, as src/statistics/reading-series.ts builds it for
 * PostgreSQL when the buckets and the range fall on whole minutes (the bench's do): the device's
 * per-minute rollups in [start, end + 1), each numbered by arithmetic on its minute.
 */
function seriesSql(spec: SeriesSpec): RawStatement {
  const a = spec.attr;
  const first = spec.boundaries[0] as number;
  const width = (spec.boundaries[1] as number) - first;
  return {
    text:
      'select cast((minute - $1) / $2 as integer) as bucket, sum(readings) as count, ' +
      `min(${a}_min) as min, max(${a}_max) as max, sum(${a}_sum) as sum ` +
      'from reading_minutes where minute >= $3 and minute < $4 and device_id = $5 group by 1 order by 1',
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

const tupleColumns = (batch: ReadingTuple[]) => [0, 1, 2, 3, 4].map((i) => batch.map((r) => r[i]));

const columns = (readings: Reading[], at: (i: number) => number) => [
  readings.map((r) => r.device_id),
  readings.map((r) => r.x),
  readings.map((r) => r.y),
  readings.map((r) => r.z),
  readings.map((_, i) => at(i)),
];

/**
 * A fresh database on the server of `adminUrl` for this run (dropped by dispose), and node-postgres
 * straight onto it for loading and for the ceilings.
 */
export async function postgresEngine(
  adminUrl: string,
  name = `statistics_bench_${process.pid}_${Date.now()}`,
): Promise<RawEngine> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const databaseUrl = url.toString();

  let client: pg.Client | undefined;
  const open = async () => {
    if (client) return client;
    const opened = new pg.Client({ connectionString: databaseUrl });
    await opened.connect();
    client = opened;
    return opened;
  };

  return {
    engine: 'postgres',
    databaseUrl,

    async bulkLoad(deviceId, rows) {
      const db = await open();
      const chunk = 50_000;
      const start = Date.now() - 30 * DAY_MS;
      const step = (30 * DAY_MS) / rows;
      const began = performance.now();
      for (let offset = 0; offset < rows; offset += chunk) {
        const readings = makeReadings(Math.min(chunk, rows - offset), deviceId, offset + 1);
        await db.query(
          INSERT_UNNEST,
          columns(readings, (i) => Math.floor(start + (offset + i) * step)),
        );
      }
      for (const statement of REBUILD_MINUTE_ROLLUPS) await db.query(statement);
      // Set hint bits and the visibility map now, so the first statistics do not pay for it.
      await db.query('vacuum analyze data');
      await db.query('vacuum analyze reading_minutes');
      return rate(rows, (performance.now() - began) / 1000);
    },

    aggregateSql: AGGREGATE,

    async aggregate() {
      const db = await open();
      const began = performance.now();
      const result: unknown = (await db.query(AGGREGATE)).rows[0];
      return { ms: performance.now() - began, result };
    },

    statisticsSql,
    seriesSql,

    // Unnamed statements with bound parameters, as the server's pool sends them.
    async run(statement, rows) {
      const db = await open();
      const began = performance.now();
      const answer = await db.query(statement.text, statement.values);
      const result: unknown = rows === 'one' ? answer.rows[0] : answer.rows;
      return { ms: performance.now() - began, result };
    },

    async explain(statement) {
      const db = await open();
      const answer = await db.query<{ 'QUERY PLAN': string }>(`explain ${statement.text}`, statement.values);
      return answer.rows.map((row) => row['QUERY PLAN']);
    },

    async bulkLoadLarge(plan) {
      const db = await open();
      const { rows: indexes } = await db.query<{ name: string; definition: string }>(
        `select i.relname as name, pg_get_indexdef(i.oid) as definition
         from pg_index x join pg_class i on i.oid = x.indexrelid
         where x.indrelid = 'data'::regclass and not x.indisprimary and not x.indisunique`,
      );
      const ticks = Math.max(1, Math.floor(LARGE_BATCH_ROWS / plan.deviceIds.length));
      const began = performance.now();
      for (const index of indexes) await db.query(`drop index "${index.name}"`);
      for (const batch of largeBatches(plan, ticks)) {
        await db.query(INSERT_UNNEST, tupleColumns(batch));
      }
      await db.query("set maintenance_work_mem = '256MB'");
      for (const index of indexes) await db.query(index.definition);
      await db.query('reset maintenance_work_mem');
      for (const statement of REBUILD_MINUTE_ROLLUPS) await db.query(statement);
      await db.query('vacuum analyze data');
      await db.query('vacuum analyze reading_minutes');
      return {
        method:
          `INSERT ... SELECT FROM unnest per ${(ticks * plan.deviceIds.length).toLocaleString('en-US')} rows, ` +
          `${indexes.map((index) => index.name).join(' and ')} dropped and rebuilt from their definitions, ` +
          'the per-minute rollups built from the data, vacuum analyze',
        ...rate(plan.rows, (performance.now() - began) / 1000),
      };
    },

    async sizeBytes() {
      const db = await open();
      const answer = await db.query<{ bytes: string }>("select pg_total_relation_size('data') as bytes");
      return Number(answer.rows[0]?.bytes ?? 0);
    },

    async singleRowTransactions(deviceId, budget) {
      const db = await open();
      const readings = makeReadings(1000, deviceId, 7);
      const began = performance.now();
      const deadline = began + budget.seconds * 1000;
      let rows = 0;
      while (rows < budget.maxRows && performance.now() < deadline) {
        const r = readings[rows % readings.length] ?? readings[0];
        if (!r) break;
        const at = Date.now();
        await db.query({
          name: 'bench_insert_one',
          text: withRollUp(INSERT_ONE),
          values: [r.device_id, r.x, r.y, r.z, at, ...rollupColumns(minuteRollups([r], () => at))],
        });
        rows += 1;
      }
      return rate(rows, (performance.now() - began) / 1000);
    },

    async batchedInserts(deviceId, batchSize, budget) {
      const readings = makeReadings(batchSize, deviceId, 11);
      const results: Array<{ method: string } & Rate> = [];
      // One connection is the plain ceiling; the API overlaps requests on its pool, so the raw
      // insert gets the same chance with a few connections in parallel (the faster one counts).
      for (const connections of PARALLEL_CONNECTIONS) {
        const clients = await Promise.all(
          Array.from({ length: connections }, async () => {
            const opened = new pg.Client({ connectionString: databaseUrl });
            await opened.connect();
            return opened;
          }),
        );
        try {
          const began = performance.now();
          const deadline = began + budget.seconds * 1000;
          let rows = 0;
          await Promise.all(
            clients.map(async (db) => {
              while (rows < budget.maxRows && performance.now() < deadline) {
                const at = Date.now();
                await db.query({
                  name: 'bench_insert_unnest',
                  text: withRollUp(INSERT_UNNEST),
                  values: [
                    ...columns(readings, () => at),
                    ...rollupColumns(minuteRollups(readings, () => at)),
                  ],
                });
                rows += batchSize;
              }
            }),
          );
          results.push({
            method: `INSERT ... SELECT FROM unnest($1::int[], ...) chained to the rollups grouped in JS, per batch, ${connections} connection${connections > 1 ? 's' : ''}`,
            ...rate(rows, (performance.now() - began) / 1000),
          });
        } finally {
          await Promise.all(clients.map((db) => db.end()));
        }
      }
      return results;
    },

    async close() {
      await client?.end();
      client = undefined;
    },

    async dispose() {
      await client?.end().catch(() => {});
      client = undefined;
      const dropper = new pg.Client({ connectionString: adminUrl });
      await dropper.connect();
      try {
        await dropper.query(`drop database if exists "${name}" with (force)`);
      } finally {
        await dropper.end();
      }
    },
  };
}
