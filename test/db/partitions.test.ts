import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { buildApp } from '../../src/app.js';
import { openDatabase } from '../../src/db/database.js';
import { MAINTENANCE_LOCK_KEY, maintain } from '../../src/db/maintenance.js';
import { migrateTo, migrateToLatest } from '../../src/db/migrate.js';
import {
  engineSkipReason,
  type FreshDatabase,
  freshDatabase,
  Harness,
  testConfig,
} from '../helpers/harness.js';
import { rollupValues } from '../helpers/rollups.js';

const DAY = 86_400_000;
const dayOf = (time: number) => Math.floor(time / DAY) * DAY;
const dayName = (time: number) => `data_${new Date(time).toISOString().slice(0, 10).replaceAll('-', '')}`;
const monthName = (time: number) =>
  `reading_minutes_${new Date(time).toISOString().slice(0, 7).replace('-', '')}`;

/** A row's table as the partition's name: on Citus it is a shard of it, named with the shard id after. */
const partitionNamed = (table: string) => table.replace(/^(\w+?_(?:default|\d{6}|\d{8}))_\d+$/, '$1');

const partitionOf = async (h: Harness, table: string) =>
  (
    await sql<{ name: string }>`
      select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
      where i.inhparent = ${table}::regclass order by 1`.execute(h.db)
  ).rows.map((r) => r.name);

describe('time partitions [postgres]', { skip: engineSkipReason('postgres') }, () => {
  const h = new Harness('postgres');
  before(() => h.start({ RETENTION_DAYS: '30', ROLLUP_RETENTION_DAYS: '60' }));
  after(() => h.stop());

  it('creates a week of daily and two months of monthly partitions ahead, once', async () => {
    const now = Date.now();
    const report = await maintain(h.db, 'postgres', h.config.retention, now);
    const days = Array.from({ length: 8 }, (_, i) => dayName(dayOf(now) + i * DAY));
    assert.deepEqual(await partitionOf(h, 'data'), ['data_default', ...days].sort());
    const month = new Date(now);
    const months = [0, 1, 2].map((i) =>
      monthName(Date.UTC(month.getUTCFullYear(), month.getUTCMonth() + i, 1)),
    );
    assert.deepEqual(await partitionOf(h, 'reading_minutes'), ['reading_minutes_default', ...months].sort());
    assert.deepEqual(report.created, [...days, ...months]);
    assert.deepEqual((await maintain(h.db, 'postgres', h.config.retention, now)).created, []);
  });

  it('drops the daily partitions wholly past the retention, keeping their rollups and the newer readings', async () => {
    const device = await h.createDevice();
    const today = dayOf(Date.now());
    const stored = await h.post('/data/', [{ device_id: device, x: 1, y: 2, z: 3 }]);
    assert.equal(stored.statusCode, 200, stored.body);
    // Tomorrow's reading, beyond what the API takes ahead of the clock, straight into the table.
    const tomorrow = today + DAY;
    await h.db
      .insertInto('data')
      .values({ device_id: device, x: 8, y: 8, z: 8, created_at: tomorrow + 5000 })
      .execute();
    // Their values, not `folded`: the folder (every 2 s) may mark a minute folded between the reads.
    const deviceRollups = async () =>
      (await h.db.selectFrom('reading_minutes').selectAll().where('device_id', '=', device).execute()).map(
        rollupValues,
      );
    const rollups = await deviceRollups();

    // 31 days on: today's partition is past the retention, tomorrow's is not.
    const later = today + 31 * DAY + 1000;
    const report = await maintain(h.db, 'postgres', h.config.retention, later);
    assert.ok(report.dropped.includes(dayName(today)), JSON.stringify(report));
    assert.ok(!report.dropped.includes(dayName(tomorrow)));
    assert.equal(report.deletedReadings, 0, 'nothing left for batched deletes');
    const left = await h.db.selectFrom('data').select('created_at').where('device_id', '=', device).execute();
    assert.deepEqual(
      left.map((r) => Number(r.created_at)),
      [tomorrow + 5000],
    );
    assert.ok(!(await partitionOf(h, 'data')).includes(dayName(today)));
    // Rollups are not maintained by this direct insert; those of the API's readings must be untouched.
    assert.deepEqual(await deviceRollups(), rollups);
  });

  it('moves rows that landed in the default partition into the partition made for them', async () => {
    const device = await h.createDevice();
    const farAhead = dayOf(Date.now()) + 100 * DAY + 1234;
    const { id } = await h.db
      .insertInto('data')
      .values({ device_id: device, x: 4, y: 4, z: 4, created_at: farAhead })
      .returning('id')
      .executeTakeFirstOrThrow();
    const where = async () =>
      (
        await sql<{
          part: string;
        }>`select tableoid::regclass::text as part from data where id = ${id}`.execute(h.db)
      ).rows.map((row) => partitionNamed(row.part))[0];
    assert.equal(await where(), 'data_default');
    await maintain(h.db, 'postgres', { readingsDays: undefined, rollupsDays: undefined }, farAhead);
    assert.equal(await where(), dayName(farAhead));
  });

  it('stores every reading written while its partition is being made', async () => {
    const device = await h.createDevice();
    const when = dayOf(Date.now()) + 40 * DAY;
    let writing = true;
    let written = 0;
    // Rows of the day about to get its partition, written meanwhile (the first ones into the default).
    const writer = (async () => {
      while (writing) {
        await h.db
          .insertInto('data')
          .values({ device_id: device, x: 1, y: 1, z: 1, created_at: when + written })
          .execute();
        written++;
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const report = await maintain(
      h.db,
      'postgres',
      { readingsDays: undefined, rollupsDays: undefined },
      when,
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    writing = false;
    await writer;
    assert.ok(report.created.includes(dayName(when)), JSON.stringify(report));
    const { rows } = await sql<{ part: string; n: string }>`
      select tableoid::regclass::text as part, count(*) as n from data where device_id = ${device} group by 1`.execute(
      h.db,
    );
    assert.deepEqual(
      rows.map((r) => [partitionNamed(r.part), Number(r.n)]),
      [[dayName(when), written]],
    );
  });

  it('lets one process at a time run the maintenance (advisory lock)', async () => {
    const holder = new pg.Client({ connectionString: h.databaseUrl });
    await holder.connect();
    try {
      await holder.query('select pg_advisory_lock($1)', [MAINTENANCE_LOCK_KEY]);
      assert.equal((await maintain(h.db, 'postgres', h.config.retention)).ran, false);
      await holder.query('select pg_advisory_unlock($1)', [MAINTENANCE_LOCK_KEY]);
    } finally {
      await holder.end();
    }
    // Two processes at once, a week ahead of the partitions made so far: each partition is made once.
    const other = openDatabase(h.databaseUrl);
    try {
      const when = Date.now() + 20 * DAY;
      const reports = await Promise.all([
        maintain(h.db, 'postgres', h.config.retention, when),
        maintain(other.db, 'postgres', h.config.retention, when),
      ]);
      const created = reports.flatMap((r) => r.created);
      assert.equal(new Set(created).size, created.length);
      assert.ok(created.includes(dayName(dayOf(when) + 7 * DAY)));
    } finally {
      await other.close();
    }
  });
});

describe('migration 0006 of an existing database [postgres]', { skip: engineSkipReason('postgres') }, () => {
  let database: FreshDatabase;
  before(async () => {
    database = await freshDatabase('postgres');
  });
  after(() => database.drop());

  it('keeps every reading and id, and the ids go on increasing', async () => {
    const opened = openDatabase(database.url);
    await migrateTo(opened.db, '0004-idempotency-keys');
    const { db } = opened;
    await sql`insert into devices (name, created_at) select 'd', 0 from generate_series(1, 3)`.execute(db);
    // 3,000 readings over the last 50 days, then a gap in the ids (a rolled-back insert used some).
    await sql`
      insert into data (device_id, x, y, z, created_at)
      select 1 + i % 3, i * 0.5, -i, i % 7, ${Date.now()}::bigint - i::bigint * 1440000
      from generate_series(1, 3000) as i`.execute(db);
    await sql`select setval(pg_get_serial_sequence('data', 'id'), 3100)`.execute(db);
    const before = await db.selectFrom('data').selectAll().orderBy('id').execute();
    await migrateToLatest(db);
    const after = await db.selectFrom('data').selectAll().orderBy('id').execute();
    assert.deepEqual(after, before);
    const { rows } = await sql<{ kind: string }>`
      select relkind as kind from pg_class where relname = 'data'`.execute(db);
    assert.equal(rows[0]?.kind, 'p', 'data is partitioned');
    await opened.close();

    const config = testConfig(database.url);
    const server = openDatabase(database.url, 'server');
    const app = await buildApp(config, server);
    try {
      await app.ready();
      const single = await app.inject({
        method: 'POST',
        url: '/data/',
        payload: { device_id: 1, x: 1, y: 1, z: 1 },
      });
      assert.equal(single.statusCode, 200, single.body);
      assert.ok(single.json().id > 3100, `id ${single.json().id} after the old sequence's 3100`);
      const batch = await app.inject({
        method: 'POST',
        url: '/data/',
        payload: [1, 2, 3].map((device_id) => ({ device_id, x: 2, y: 2, z: 2 })),
      });
      const ids: number[] = batch.json().ids;
      assert.ok((ids[0] as number) > single.json().id);
      assert.deepEqual(
        [...ids].sort((a, b) => a - b),
        ids,
      );
      const statistics = await app.inject({ method: 'GET', url: '/analyze_statistics/?device_id=2' });
      assert.equal(statistics.json().count, 1001);
      const report = await maintain(server.db, 'postgres', { readingsDays: 30, rollupsDays: undefined });
      // Readings older than 30 days sat in the old table (one partition): deleted in batches.
      const old = before.filter((r) => Number(r.created_at) < dayOf(Date.now() - 30 * DAY)).length;
      assert.equal(report.deletedReadings, old);
    } finally {
      await app.close();
      await server.close();
    }
  });
});
