import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { makeReadings, type Rate, type RawEngine, type Reading, rate } from './readings.js';

const DAY_MS = 86_400_000;
const PARALLEL_CONNECTIONS = [1, 2, 4];
const INSERT_UNNEST = `insert into data (device_id, x, y, z, created_at)
  select * from unnest($1::int[], $2::float8[], $3::float8[], $4::float8[], $5::int8[])`;
const INSERT_ONE = 'insert into data (device_id, x, y, z, created_at) values ($1, $2, $3, $4, $5)';
/** The statement the API runs for GET /analyze_statistics/ (attr x, no filter). */
const AGGREGATE = `select count(*) as count, min(x) as min, max(x) as max, sum(x) as sum, avg(x) as mean,
  percentile_cont(0.5) within group (order by x) as median from data`;

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
export async function postgresEngine(adminUrl: string): Promise<RawEngine> {
  const name = `statistics_bench_${process.pid}_${Date.now()}`;
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
      // Set hint bits and the visibility map now, so the first statistics do not pay for it.
      await db.query('vacuum analyze data');
      return rate(rows, (performance.now() - began) / 1000);
    },

    aggregateSql: AGGREGATE.replace(/\s+/g, ' '),

    async aggregate() {
      const db = await open();
      const began = performance.now();
      const result: unknown = (await db.query(AGGREGATE)).rows[0];
      return { ms: performance.now() - began, result };
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
        await db.query({
          name: 'bench_insert_one',
          text: INSERT_ONE,
          values: [r.device_id, r.x, r.y, r.z, Date.now()],
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
                  text: INSERT_UNNEST,
                  values: columns(readings, () => at),
                });
                rows += batchSize;
              }
            }),
          );
          results.push({
            method: `INSERT ... SELECT FROM unnest($1::int[], ...) per batch, ${connections} connection${connections > 1 ? 's' : ''}`,
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
