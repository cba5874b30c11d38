import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import SQLite from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import { SignJWT } from 'jose';
import { buildApp } from '../../src/app.js';
import { type OpenedDatabase, openDatabase } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { runCli } from '../helpers/cli.js';
import {
  ENGINES,
  engineSkipReason,
  type FreshDatabase,
  freshDatabase,
  testConfig,
} from '../helpers/harness.js';

/**
 * The original service's database and the facts its README gives (test/fixtures/original/README.md),
 * kept in the repository so that any clone runs this suite.
 */
const FIXTURE = fileURLToPath(new URL('../fixtures/original/statistics-original.db', import.meta.url));
const ORIGINAL_SECRET = 'original-service-secret-for-fixture-0001';
const PASSWORDS = { alice: 'alice-password-1', bob: 'bob-password-2', carol: 'carol-password-3' };

function copyOf(dir: string, name: string): string {
  const path = join(dir, name);
  copyFileSync(FIXTURE, path);
  chmodSync(path, 0o644);
  return path;
}

/** A token exactly as FastAPI Users 10.0.4 issued it: `user_id` as a string, no `sub`, `iat` or `jti`. */
function originalToken(userId: string): Promise<string> {
  return new SignJWT({
    user_id: userId,
    aud: ['fastapi-users:auth'],
    exp: Math.floor(Date.now() / 1000) + 3600,
  })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .sign(new TextEncoder().encode(ORIGINAL_SECRET));
}

/** Each reading of the source, by UTC minute, summed here from the source's rows (November: Berlin is UTC+1). */
function sourceMinutes(
  path: string,
): Map<string, { readings: number; xMin: number; xMax: number; xSum: number }> {
  const source = new SQLite(path, { readonly: true });
  const rows = source.prepare('select device_id, x, create_date from data').all() as {
    device_id: number;
    x: number;
    create_date: string;
  }[];
  source.close();
  const minutes = new Map<string, { readings: number; xMin: number; xMax: number; xSum: number }>();
  for (const row of rows) {
    const at = Date.parse(`${row.create_date.replace(' ', 'T').slice(0, 23)}+01:00`);
    const key = `${row.device_id}/${at - (at % 60_000)}`;
    const minute = minutes.get(key) ?? { readings: 0, xMin: Infinity, xMax: -Infinity, xSum: 0 };
    minute.readings++;
    minute.xMin = Math.min(minute.xMin, row.x);
    minute.xMax = Math.max(minute.xMax, row.x);
    minute.xSum += row.x;
    minutes.set(key, minute);
  }
  return minutes;
}

for (const engine of ENGINES) {
  describe(`statistics import-original: the move from the Python service [${engine}]`, {
    skip: engineSkipReason(engine),
  }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'statistics-original-'));
    let database: FreshDatabase;
    let opened: OpenedDatabase;
    let app: FastifyInstance;
    let source: string;
    const importOriginal = (args: string[], url = database.url) =>
      runCli(['import-original', ...args], { env: { DATABASE_URL: url, JWT_SECRET: ORIGINAL_SECRET } });
    const login = (email: string, password: string) =>
      app.inject({
        method: 'POST',
        url: '/auth/jwt/login',
        payload: new URLSearchParams({ username: email, password }).toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });

    before(async () => {
      database = await freshDatabase(engine);
      source = copyOf(dir, 'original.db');
    });
    after(async () => {
      await app?.close();
      await opened?.db.destroy();
      await database.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('needs to know the time zone of the original server, and refuses a database that is not the original', async () => {
      const noZone = await importOriginal([source]);
      assert.equal(noZone.code, 2);
      assert.match(noZone.stderr, /--source-tz ZONE \(or --assume-utc\)/);
      const badZone = await importOriginal([source, '--source-tz', 'Europe/Atlantis']);
      assert.equal(badZone.code, 2);
      assert.match(badZone.stderr, /unknown time zone "Europe\/Atlantis"/);
      const notOriginal = join(dir, 'other.db');
      new SQLite(notOriginal).exec('create table data (id integer)').close();
      const refused = await importOriginal([notOriginal, '--assume-utc']);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /not a database of the original service: table "user" lacks id, email/);
    });

    it('brings users, devices and readings with their ids, and reports what it did', async () => {
      const run = await importOriginal([
        source,
        '--source-tz',
        'Europe/Berlin',
        '--chunk-size',
        '64',
        '--json',
      ]);
      assert.equal(run.code, 0, run.stderr);
      const report = JSON.parse(run.stdout);
      assert.deepEqual(report.source, { revision: '267b6d4fc858', users: 3, devices: 5, readings: 200 });
      assert.deepEqual(report.users, { imported: 3, unchanged: 0 });
      assert.deepEqual(report.devices, { imported: 5, unchanged: 0, ownerMissing: [], nameCut: [] });
      assert.equal(report.readings.imported, 200);
      assert.deepEqual(report.readings.skipped, { orphan: 0, invalid_value: 0, invalid_time: 0 });
      // Four chunks of 64 readings or fewer: one progress line each phase at least, plain (not a terminal).
      assert.match(run.stderr, /^importing: 200\/200 readings \(100%\)/m);

      opened = openDatabase(database.url);
      app = await buildApp(
        testConfig(database.url, { JWT_SECRET: ORIGINAL_SECRET, STATISTICS_KEYS: 'original' }),
        opened,
      );
      const devices = (await app.inject({ url: '/device/?limit=10' })).json();
      assert.deepEqual(
        devices.map((d: { id: number; name: string | null; user_id: number | null }) => [
          d.id,
          d.name,
          d.user_id,
        ]),
        [
          [1, 'greenhouse', 1],
          [2, 'Датчик 2', 1],
          [3, 'bob-boiler', 2],
          [4, 'anonymous', null],
          [5, null, null],
        ],
      );
      // A device is taken to exist from its first reading on: the original keeps no creation time.
      assert.equal(devices[0].created_at, '2026-11-30T10:55:11.829Z');
      // `2026-11-30 11:55:11.829859` in Berlin is 10:55:11.829859 UTC, kept to the millisecond.
      const first = (await app.inject({ url: '/data/?device_id=1&limit=1' })).json()[0];
      assert.deepEqual(first, {
        id: 1,
        device_id: 1,
        x: 13.943,
        y: 111.8822,
        z: -3,
        timestamp: '2026-11-30T10:55:11.829Z',
      });
    });

    it("answers the original's statistics over the imported data, with its keys and their order", async () => {
      const byDevice = await app.inject({ url: '/analyze_statistics/?attr=x&device_id=1' });
      assert.equal(byDevice.statusCode, 200);
      // The same keys in the same order; the sum may differ from numpy's in the last bits (summation order).
      assert.match(
        byDevice.body,
        /^\{"минимальное значение":-46\.822,"максимальное значение":38\.545,"количество":40,"сумма":97\.11(5|49999+\d*|50000+\d*),"медиана":11\.6045\}$/,
      );
      assert.ok(Math.abs(byDevice.json().сумма - 97.115) < 1e-9);
      const alice = (await app.inject({ url: '/analyze_statistics/1?attr=y' })).json();
      assert.deepEqual(Object.keys(alice), [
        'минимальное значение',
        'максимальное значение',
        'количество',
        'сумма',
        'медиана',
      ]);
      assert.equal(alice['минимальное значение'], 71.5941);
      assert.equal(alice['максимальное значение'], 133.0563);
      assert.equal(alice.количество, 80);
      assert.ok(Math.abs(alice.сумма - 8107.1519) < 1e-9, String(alice.сумма));
      assert.equal(alice.медиана, 101);
      assert.deepEqual((await app.inject({ url: '/analyze_statistics/?attr=z' })).json(), {
        'минимальное значение': -7.5,
        'максимальное значение': 7.5,
        количество: 200,
        сумма: -103.5,
        медиана: -1.5,
      });
    });

    it('keeps the per-minute rollups exact for the imported readings', async () => {
      const expected = sourceMinutes(source);
      const rows = await opened.db.selectFrom('reading_minutes').selectAll().execute();
      assert.equal(rows.length, expected.size);
      for (const row of rows) {
        const minute = expected.get(`${row.device_id}/${Number(row.minute)}`);
        assert.ok(minute, `an unexpected rollup row ${row.device_id}/${row.minute}`);
        assert.equal(Number(row.readings), minute.readings);
        assert.equal(row.x_min, minute.xMin);
        assert.equal(row.x_max, minute.xMax);
        assert.ok(Math.abs(Number(row.x_sum) - minute.xSum) < 1e-9);
      }
    });

    it('lets users log in with their passwords (bcrypt becomes argon2id), and keeps tokens the original issued', async () => {
      const ok = await login('alice@example.com', PASSWORDS.alice);
      assert.equal(ok.statusCode, 200, ok.body);
      const stored = await opened.db
        .selectFrom('users')
        .select('hashed_password')
        .where('id', '=', 1)
        .executeTakeFirstOrThrow();
      assert.match(stored.hashed_password, /^\$argon2id\$/);
      assert.equal(
        (await login('alice@example.com', PASSWORDS.alice)).statusCode,
        200,
        'and again with argon2id',
      );
      assert.equal((await login('bob@example.com', 'wrong')).statusCode, 400);
      assert.equal((await login('bob@example.com', PASSWORDS.bob)).statusCode, 200);
      // carol was deactivated in the original.
      assert.equal(
        (await login('carol@example.com', PASSWORDS.carol)).json().detail,
        'LOGIN_BAD_CREDENTIALS',
      );

      const me = await app.inject({
        url: '/users/me',
        headers: { authorization: `Bearer ${await originalToken('1')}` },
      });
      assert.equal(me.statusCode, 200, me.body);
      assert.deepEqual(me.json(), {
        id: 1,
        email: 'alice@example.com',
        is_active: true,
        is_superuser: true,
        is_verified: false,
      });
      const carol = await app.inject({
        url: '/users/me',
        headers: { authorization: `Bearer ${await originalToken('3')}` },
      });
      assert.equal(carol.statusCode, 401);
    });

    it('changes nothing on a second run and says so', async () => {
      const before = await counts(opened);
      const run = await importOriginal([source, '--source-tz', 'Europe/Berlin']);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /users: imported 0, already there 3/);
      assert.match(run.stdout, /readings: imported 0, already there 200/);
      assert.match(run.stdout, /nothing to do: everything was already imported/);
      assert.deepEqual(await counts(opened), before);
    });

    it('moves the id sequences past the imported ids', async () => {
      const device = await app.inject({ method: 'POST', url: '/device/', payload: { name: 'new' } });
      assert.equal(device.json().id, 6);
      const reading = await app.inject({
        method: 'POST',
        url: '/data/',
        payload: { device_id: 6, x: 1, y: 2, z: 3 },
      });
      assert.equal(reading.json().id, 201);
      const user = await app.inject({
        method: 'POST',
        url: '/auth/register',
        payload: { email: 'dave@example.com', password: 'dave-pw' },
      });
      assert.equal(user.json().id, 4);
    });

    it('refuses a target whose rows differ under the same ids, names them, and writes nothing', async () => {
      // Read with another zone, the same readings are other instants: every one conflicts.
      const utc = await importOriginal([source, '--assume-utc']);
      assert.equal(utc.code, 1);
      assert.match(
        utc.stdout,
        /reading 1: the target holds device 1 \(13.943, 111.8822, -3\) at 2026-11-30T10:55:11.829Z, the original device 1 \(13.943, 111.8822, -3\) at 2026-11-30T11:55:11.829Z/,
      );
      assert.match(utc.stdout, /\.\.\. and 180 more/);
      assert.match(utc.stderr, /refused: the target already holds different rows/);

      const other = await freshDatabase(engine);
      try {
        const target = openDatabase(other.url);
        await migrateToLatest(target.db);
        const otherApp = await buildApp(testConfig(other.url), target);
        await otherApp.inject({
          method: 'POST',
          url: '/auth/register',
          payload: { email: 'BOB@example.com', password: 'x-pw' },
        });
        const run = await importOriginal([source, '--source-tz', 'Europe/Berlin'], other.url);
        assert.equal(run.code, 1);
        assert.match(
          run.stdout,
          /^ {2}user 1: the target holds BOB@example.com under this id, the original alice@example.com$/m,
        );
        assert.match(run.stdout, /^ {2}user 2 \(bob@example.com\): the target holds this e-mail as user 1$/m);
        assert.deepEqual(await counts(target), { users: 1, devices: 0, data: 0, reading_minutes: 0 });
        await otherApp.close();
        await target.db.destroy();
      } finally {
        await other.drop();
      }
    });

    it('skips orphan and broken readings, resolves daylight-saving times as documented, and counts each', async () => {
      const odd = copyOf(dir, 'odd.db');
      const edit = new SQLite(odd);
      // The original ran without foreign keys, so its database can hold orphans.
      edit.pragma('foreign_keys = OFF');
      edit.exec(`
        insert into device (id, name, user_id) values (6, '${'n'.repeat(60)}', 42);
        insert into data (id, device_id, x, y, z, create_date) values
          (201, null, 1, 1, 1, '2026-11-30 12:00:00.000000'),
          (202, 99, 1, 1, 1, '2026-11-30 12:00:00.000000'),
          (203, 6, 'abc', 1, 1, '2026-11-30 12:00:00.000000'),
          (204, 6, 9e999, 1, 1, '2026-11-30 12:00:00.000000'),
          (205, 6, 1, 1, 1, 'yesterday'),
          (206, 6, 2, 1, 1, '2026-10-25 02:30:00.250000'),
          (207, 6, 3, 1, 1, '2026-03-29 02:30:00.000000'),
          (208, 6, 4, 1, 1, '2026-03-29 03:30:00.000000');
      `);
      edit.close();
      const other = await freshDatabase(engine);
      try {
        const run = await importOriginal([odd, '--source-tz', 'Europe/Berlin', '--json'], other.url);
        assert.equal(run.code, 0, run.stderr);
        const report = JSON.parse(run.stdout);
        assert.equal(report.readings.imported, 203);
        assert.deepEqual(report.readings.skipped, { orphan: 2, invalid_value: 2, invalid_time: 1 });
        assert.deepEqual(report.readings.skippedExamples, [
          { id: 201, reason: 'orphan' },
          { id: 202, reason: 'orphan' },
          { id: 203, reason: 'invalid_value' },
          { id: 204, reason: 'invalid_value' },
          { id: 205, reason: 'invalid_time' },
        ]);
        assert.deepEqual(report.times, { ambiguous: 1, nonexistent: 1 });
        assert.deepEqual(report.devices.ownerMissing, [6]);
        assert.deepEqual(report.devices.nameCut, [6]);
        const target = openDatabase(other.url);
        const rows = await target.db
          .selectFrom('data')
          .select(['id', 'created_at'])
          .where('id', '>', 205)
          .orderBy('id')
          .execute();
        const device = await target.db
          .selectFrom('devices')
          .selectAll()
          .where('id', '=', 6)
          .executeTakeFirstOrThrow();
        await target.db.destroy();
        assert.deepEqual(
          rows.map((row) => [row.id, new Date(Number(row.created_at)).toISOString()]),
          [
            // 02:30 happened twice (CEST, then CET): the earlier one.
            [206, '2026-10-25T00:30:00.250Z'],
            // 02:30 never happened (clocks went from 02:00 to 03:00): moved forward to 03:30 CEST.
            [207, '2026-03-29T01:30:00.000Z'],
            [208, '2026-03-29T01:30:00.000Z'],
          ],
        );
        assert.equal(device.user_id, null);
        assert.equal(device.name, 'n'.repeat(50));
      } finally {
        await other.drop();
      }
    });
  });
}

async function counts({ db }: OpenedDatabase) {
  const count = async (table: 'users' | 'devices' | 'data' | 'reading_minutes') =>
    Number(
      (
        await db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  return {
    users: await count('users'),
    devices: await count('devices'),
    data: await count('data'),
    reading_minutes: await count('reading_minutes'),
  };
}
