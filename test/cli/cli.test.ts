import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { type OpenedDatabase, openDatabase } from '../../src/db/database.js';
import { runCli } from '../helpers/cli.js';
import {
  ENGINES,
  engineSkipReason,
  type FreshDatabase,
  freshDatabase,
  testConfig,
} from '../helpers/harness.js';

describe('statistics: the command line itself', () => {
  it('answers --help for the program and every command, exit 0', async () => {
    const main = await runCli(['--help']);
    assert.equal(main.code, 0);
    for (const command of [
      'serve',
      'migrate',
      'maintain',
      'create-superuser',
      'import',
      'export',
      'backup',
      'import-original',
    ]) {
      assert.match(main.stdout, new RegExp(`\\n  ${command}\\b`));
    }
    assert.match(
      main.stdout,
      /Exit codes: 0 done, 1 failed or refused, 2 usage error, 3 configuration error/,
    );
    const help = await runCli(['import-original', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--source-tz <zone>/);
  });

  it('exits 2 on a usage error, saying what is wrong', async () => {
    const unknown = await runCli(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command 'frobnicate'/);
    const missing = await runCli(['create-superuser']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /required option '--email <address>' not specified/);
    const badNumber = await runCli(['export', '--device-id', 'one']);
    assert.equal(badNumber.code, 2);
    assert.match(badNumber.stderr, /--device-id.*expected a whole number/);
  });

  it('exits 3 on a configuration error, naming the variable', async () => {
    const run = await runCli(['migrate'], { env: { DATABASE_URL: 'mysql://root@localhost/db' } });
    assert.equal(run.code, 3);
    assert.match(run.stderr, /Configuration error: DATABASE_URL must be/);
  });
});

for (const engine of ENGINES) {
  describe(`statistics commands on a fresh database [${engine}]`, { skip: engineSkipReason(engine) }, () => {
    let database: FreshDatabase;
    let opened: OpenedDatabase;
    let app: FastifyInstance;
    const dir = mkdtempSync(join(tmpdir(), 'statistics-cli-files-'));
    const cli = (args: string[], input?: string) =>
      runCli(args, { env: { DATABASE_URL: database.url }, ...(input === undefined ? {} : { input }) });

    before(async () => {
      database = await freshDatabase(engine);
    });
    after(async () => {
      await app?.close();
      await opened?.db.destroy();
      await database.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('migrate applies the migrations once, then says the database is up to date', async () => {
      const first = await cli(['migrate']);
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stdout, new RegExp(`^${engine}: applied 0001-initial-schema, `));
      const second = await cli(['migrate']);
      assert.equal(second.code, 0);
      assert.equal(second.stdout.trim(), `${engine}: already up to date`);
      opened = openDatabase(database.url);
      app = await buildApp(testConfig(database.url), opened);
    });

    it('create-superuser takes the password from stdin, never from the command line', async () => {
      const noTerminal = await cli(['create-superuser', '--email', 'root@example.com']);
      assert.equal(noTerminal.code, 2);
      assert.match(
        noTerminal.stderr,
        /no terminal to ask for the password on: pipe it in with --password-stdin/,
      );
      const onArgv = await cli(['create-superuser', '--email', 'root@example.com', '--password', 'visible']);
      assert.equal(onArgv.code, 2, 'a password option on the command line does not exist');

      const created = await cli(
        ['create-superuser', '--email', 'root@example.com', '--password-stdin'],
        'a long secret\n',
      );
      assert.equal(created.code, 0, created.stderr);
      assert.match(created.stdout, /^created superuser root@example.com \(id \d+\)/);
      const login = await app.inject({
        method: 'POST',
        url: '/auth/jwt/login',
        payload: 'username=root@example.com&password=a long secret',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      assert.equal(login.statusCode, 200, login.body);
      const me = await app.inject({
        url: '/users/me',
        headers: { authorization: `Bearer ${login.json().access_token}` },
      });
      assert.deepEqual(
        { ...(me.json() as object), id: 0 },
        { id: 0, email: 'root@example.com', is_active: true, is_superuser: true, is_verified: true },
      );

      const again = await cli(
        ['create-superuser', '--email', 'ROOT@example.com', '--password-stdin'],
        'another\n',
      );
      assert.equal(again.code, 1);
      assert.match(again.stderr, /not created: REGISTER_USER_ALREADY_EXISTS/);
    });

    it('import stores a CSV as POST /data/import does, reports rejected lines with exit 4, and export gives it back', async () => {
      const device = await app.inject({ method: 'POST', url: '/device/', payload: { name: 'cli' } });
      const id = device.json().id as number;
      const file = join(dir, 'readings.csv');
      writeFileSync(
        file,
        `device_id,x,y,z,timestamp\n${id},1.5,2,3,2026-01-01T00:00:00.000Z\n${id},-4,5,6e3,2026-01-01T00:00:01.250Z\n`,
      );
      const clean = await cli(['import', file]);
      assert.equal(clean.code, 0, clean.stderr);
      assert.equal(clean.stdout.trim(), 'stored 2 readings, rejected 0 lines');
      // Not a terminal: plain progress lines, no bar.
      assert.match(clean.stderr, /^import: \d+\/\d+ bytes \(100%\), \d+ bytes\/s$/m);

      const messy = join(dir, 'messy.ndjson');
      writeFileSync(
        messy,
        `{"device_id": ${id}, "x": 7, "y": 8, "z": 9, "timestamp": "2026-01-01T00:00:02Z"}\n{"device_id": ${id}, "x": "a"}\n`,
      );
      const partial = await cli(['import', messy, '--json']);
      assert.equal(partial.code, 4);
      const report = JSON.parse(partial.stdout);
      assert.equal(report.stored, 1);
      assert.equal(report.rejected, 1);
      assert.equal(report.errors[0].line, 2);

      const exported = await cli(['export', '--device-id', String(id)]);
      assert.equal(exported.code, 0, exported.stderr);
      assert.equal(
        exported.stdout,
        'device_id,x,y,z,timestamp\n' +
          `${id},1.5,2,3,2026-01-01T00:00:00.000Z\n${id},-4,5,6000,2026-01-01T00:00:01.250Z\n` +
          `${id},7,8,9,2026-01-01T00:00:02.000Z\n`,
      );
      const toFile = join(dir, 'out.ndjson');
      const ranged = await cli([
        'export',
        '--format',
        'ndjson',
        '--device-id',
        String(id),
        '--start-date',
        '2026-01-01T00:00:01Z',
        '-o',
        toFile,
      ]);
      assert.equal(ranged.code, 0, ranged.stderr);
      const lines = readFileSync(toFile, 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line));
      assert.deepEqual(
        lines.map((line) => line.x),
        [-4, 7],
      );
      const reversed = await cli(['export', '--start-date', '2026-02-01', '--end-date', '2026-01-01']);
      assert.equal(reversed.code, 2);
      assert.match(reversed.stderr, /start_date must not be after end_date/);
    });

    it(`backup ${engine === 'sqlite' ? 'refuses an existing file' : 'points PostgreSQL to pg_dump'}`, async () => {
      const target = join(dir, 'exists.db');
      writeFileSync(target, 'x');
      const run = await cli(['backup', target]);
      assert.equal(run.code, 1);
      assert.match(
        run.stderr,
        engine === 'sqlite' ? /exists: choose another path, or add --force/ : /pg_dump/,
      );
    });
  });
}
