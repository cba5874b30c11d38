/**
 * npm run bench:partitions: how long migration 0006 (time partitions, PostgreSQL) takes over an existing
 * database of BENCH_READINGS (1,000,000) readings of 100 devices, one a second, with their minute
 * rollups; then one maintenance run (partitions created ahead, none old enough to drop), and the
 * first run with RETENTION_DAYS=7 (the pre-partition table's older readings deleted in batches). Each
 * round makes a fresh database at 0004 and fills it in SQL; prints the medians of BENCH_ROUNDS (3). Needs BENCH_DATABASE_URL (a server the bench may create a database on).
 */
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import { openDatabase } from '../src/db/database.js';
import { maintain } from '../src/db/maintenance.js';
import { migrateTo, migrateToLatest } from '../src/db/migrate.js';
import { adminQuery } from './admin.js';

const adminUrl = process.env.BENCH_DATABASE_URL;
if (!adminUrl) {
  console.error(
    'BENCH_DATABASE_URL=postgres://... is required (a server the bench may create a database on)',
  );
  process.exit(2);
}
const readings = Number(process.env.BENCH_READINGS ?? 1_000_000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const DEVICES = 100;
const CHUNK = 100_020;
/** The readings span 11.6 days (one a second): a retention of 7 days deletes about 40% of them. */
const RETENTION_DAYS = 7;

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const migrations: number[] = [];
const maintenances: number[] = [];
const retentions: number[] = [];
let deleted = 0;
for (let round = 0; round < rounds; round++) {
  const name = `statistics_bench_partitions_${process.pid}`;
  await adminQuery(adminUrl, `drop database if exists ${name} with (force)`);
  await adminQuery(adminUrl, `create database ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const database = openDatabase(url.toString());
  try {
    const { db } = database;
    await migrateTo(db, '0004-idempotency-keys');
    await sql`insert into devices (name, created_at) select 'bench', 0 from generate_series(1, ${DEVICES})`.execute(
      db,
    );
    // Readings one a second up to now, spread over the devices, and their rollups as migration 0003
    // makes them; in chunks of a minute-aligned 100,000 s, each well inside the driver's query timeout.
    const first = Math.floor((Date.now() - readings * 1000) / 60_000) * 60_000;
    for (let from = 0; from < readings; from += CHUNK) {
      const to = Math.min(readings, from + CHUNK);
      await sql`
        insert into data (device_id, x, y, z, created_at)
        select 1 + i % ${DEVICES}, random() * 1000, random(), i, ${first}::bigint + i::bigint * 1000
        from generate_series(${from}::int, ${to - 1}::int) as i`.execute(db);
      await sql`
        insert into reading_minutes
        select device_id, created_at - created_at % 60000, count(*), min(x), max(x), sum(x), min(y), max(y),
          sum(y), min(z), max(z), sum(z)
        from data where created_at >= ${first + from * 1000}::bigint and created_at < ${first + to * 1000}::bigint
        group by 1, 2`.execute(db);
    }
    await sql`vacuum analyze data`.execute(db);
    let start = performance.now();
    await migrateToLatest(db);
    migrations.push(performance.now() - start);
    start = performance.now();
    await maintain(db, 'postgres', { readingsDays: undefined, rollupsDays: undefined });
    maintenances.push(performance.now() - start);
    // The first run with a retention: the old readings of the pre-partition table go in batches.
    start = performance.now();
    deleted = (await maintain(db, 'postgres', { readingsDays: RETENTION_DAYS, rollupsDays: undefined }))
      .deletedReadings;
    retentions.push(performance.now() - start);
    const { rows } = await sql<{ count: string }>`select count(*) from data`.execute(db);
    console.log(
      `round ${round + 1}: migration ${migrations.at(-1)?.toFixed(0)} ms, maintenance ${maintenances.at(-1)?.toFixed(0)} ms, ` +
        `retention ${retentions.at(-1)?.toFixed(0)} ms for ${deleted} readings, ${rows[0]?.count} readings kept`,
    );
  } finally {
    await database.close();
    await adminQuery(adminUrl, `drop database if exists ${name} with (force)`);
  }
}
console.log(
  `${readings} readings: migration 0006 median ${median(migrations).toFixed(0)} ms, maintenance median ` +
    `${median(maintenances).toFixed(0)} ms, first retention run median ${median(retentions).toFixed(0)} ms ` +
    `(${deleted} readings deleted in batches)`,
);
