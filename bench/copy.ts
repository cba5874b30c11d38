/**
 * npm run bench:copy: imports on PostgreSQL, today's statement (one prepared INSERT ... unnest chained
 * to the minute-rollup upsert, src/data/reading-store.ts) against COPY into a temporary table, then
 * INSERT ... SELECT and the rollup upsert in the same transaction (src/data/copy-readings.ts). Both store
 * the readings in chunks of 5,000, as `POST /data/import` and `statistics import` do, on a fresh
 * database with 100 devices, readings 100 ms apart (6 per device and minute). For each size of
 * BENCH_SIZES (100000,1000000) the two paths alternate over BENCH_ROUNDS (3) rounds, the tables
 * emptied before each run; prints the median readings/s of each and the ratio. BENCH_CHUNK (5000)
 * changes the chunk size (where COPY starts to pay: COPY_FROM_READINGS). Needs BENCH_DATABASE_URL
 * (a PostgreSQL server the bench may create a database on).
 */
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import type pg from 'pg';
import { copyReadings } from '../src/data/copy-readings.js';
import { type ReadingRow, readingStore } from '../src/data/reading-store.js';
import { openDatabase } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { adminQuery } from './admin.js';

const adminUrl = process.env.BENCH_DATABASE_URL;
if (!adminUrl) {
  console.error(
    'BENCH_DATABASE_URL=postgres://... is required (a server the bench may create a database on)',
  );
  process.exit(2);
}
const sizes = (process.env.BENCH_SIZES ?? '100000,1000000').split(',').map(Number);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const CHUNK = Number(process.env.BENCH_CHUNK ?? 5000);
const DEVICES = 100;
const START = Date.UTC(2026, 0, 1);

const admin = (text: string) => adminQuery(adminUrl, text);

function readings(count: number, deviceIds: number[]): ReadingRow[] {
  let seed = 42;
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    return seed / 2_147_483_648;
  };
  return Array.from({ length: count }, (_, i) => ({
    device_id: deviceIds[i % deviceIds.length] as number,
    x: random() * 1000,
    y: random() * 2 - 1,
    z: Math.round(random() * 1e6),
    created_at: START + i * 100,
  }));
}

const name = `statistics_bench_copy_${process.pid}`;
await admin(`drop database if exists ${name} with (force)`);
await admin(`create database ${name}`);
const url = new URL(adminUrl);
url.pathname = `/${name}`;
const database = openDatabase(url.toString());
try {
  const { db, pool } = database;
  await migrateToLatest(db);
  const devices = await db
    .insertInto('devices')
    .values(Array.from({ length: DEVICES }, (_, i) => ({ name: `bench-${i}`, created_at: START })))
    .returning('id')
    .execute();
  const deviceIds = devices.map((d) => Number(d.id));
  const paths = {
    statements: (rows: ReadingRow[]) => readingStore(db, 'postgres').insert(rows),
    copy: copyReadings(db, pool as pg.Pool),
  };
  console.log(`PostgreSQL import, chunks of ${CHUNK}, ${DEVICES} devices, ${rounds} rounds`);
  for (const size of sizes) {
    const rows = readings(size, deviceIds);
    const rates: Record<keyof typeof paths, number[]> = { statements: [], copy: [] };
    for (let round = 0; round < rounds; round++) {
      const order = (
        round % 2 === 0 ? ['statements', 'copy'] : ['copy', 'statements']
      ) as (keyof typeof paths)[];
      for (const path of order) {
        await sql`truncate data, reading_minutes restart identity`.execute(db);
        await sql`checkpoint`.execute(db);
        const started = performance.now();
        for (let at = 0; at < rows.length; at += CHUNK) await paths[path](rows.slice(at, at + CHUNK));
        const seconds = (performance.now() - started) / 1000;
        rates[path].push(size / seconds);
        const stored = await db
          .selectFrom('data')
          .select((eb) => eb.fn.countAll<string>().as('n'))
          .executeTakeFirstOrThrow();
        if (Number(stored.n) !== size) throw new Error(`${path} stored ${stored.n} of ${size}`);
        console.log(
          `  ${size} readings, ${path}: ${Math.round(size / seconds)} readings/s (${seconds.toFixed(1)} s)`,
        );
      }
    }
    const median = (values: number[]) => {
      const sorted = [...values].sort((a, b) => a - b);
      return sorted[Math.floor(sorted.length / 2)] as number;
    };
    const statements = median(rates.statements);
    const copy = median(rates.copy);
    console.log(
      `${size} readings: statements ${Math.round(statements)}/s, COPY ${Math.round(copy)}/s (medians), ` +
        `COPY/statements ${(copy / statements).toFixed(2)}`,
    );
  }
} finally {
  await database.close();
  await admin(`drop database if exists ${name} with (force)`);
}
