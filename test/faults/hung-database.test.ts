import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { openDatabase } from '../../src/db/database.js';
import { ownPostgresSkipReason, serverOnOwnPostgres } from '../helpers/own-postgres.js';
import { assertRollupsMatchReadingsAt } from '../helpers/rollups.js';
import {
  alive,
  call,
  exited,
  notPrompt503,
  type Server,
  startServer,
  stopServer,
} from '../helpers/server.js';

const RECOVERY_WITHIN_MS = 10_000;
/** /health gives the database this long to answer (src/health/database-probe.ts). */
const HEALTH_WITHIN_MS = 2000;
/** A query sent to a database that does not answer fails after this long (src/db/postgres-pool.ts). */
const QUERY_TIMEOUT_MS = 25_000;
/** For a machine shared with other work: the answer comes this much after the timer fires, at most. */
const SLACK_MS = 1500;
/**
 * A read does not wait for the write lock (WAL), nor for writes blocked by it: at most for the few brief
 * synchronous waits of the writes ahead of it (src/db/database.ts waits 50 ms for the lock).
 */
const READ_WITHIN_MS = 1000;

describe('a hung PostgreSQL (SIGSTOP): 503 within the promised time, recovery after SIGCONT', {
  skip: ownPostgresSkipReason(),
}, () => {
  const { postgres, server } = serverOnOwnPostgres();

  it('answers 503 while every PostgreSQL process is stopped, and recovers once they continue', async (t) => {
    const base = server().url;
    const created = await call(base, 'POST /device/', { name: 'hung' });
    assert.equal(created.status, 200, created.body);
    const deviceId: number = JSON.parse(created.body).id;
    let x = 0;
    const sent = new Set<number>();
    const acknowledged = new Set<number>();
    const reading = () => {
      sent.add(++x);
      return { device_id: deviceId, x, y: 1, z: 2 };
    };
    const postReading = async () => {
      const body = reading();
      const answer = await call(base, 'POST /data/', body, 60_000);
      if (answer.status === 200) acknowledged.add(body.x);
      return answer;
    };
    // Several idle connections in the pool, as a running service has.
    const warm = await Promise.all(Array.from({ length: 6 }, postReading));
    assert.deepEqual(
      warm.map((a) => a.status),
      Array(6).fill(200),
    );

    // Reads run side by side, each on its own pooled connection: afterwards the pool holds idle ones.
    const reads = await Promise.all(
      Array.from({ length: 8 }, () => call(base, `GET /analyze_statistics/?device_id=${deviceId}&attr=all`)),
    );
    assert.deepEqual(new Set(reads.map((a) => a.status)), new Set([200]));
    const frozen = postgres.freeze();
    t.diagnostic(`stopped ${frozen.length} PostgreSQL processes`);
    const probes = [
      postReading,
      postReading,
      () => call(base, 'POST /data/', [reading(), reading()], 60_000),
      () => call(base, `GET /analyze_statistics/?device_id=${deviceId}`, undefined, 60_000),
      () => call(base, `GET /analyze_statistics/series?device_id=${deviceId}`, undefined, 60_000),
      () => call(base, `GET /data/?device_id=${deviceId}`, undefined, 60_000),
      () => call(base, `GET /device/${deviceId}`, undefined, 60_000),
      () => call(base, 'POST /device/', { name: 'during the freeze' }, 60_000),
    ];
    // A single reading first, in a group of its own that waits for PostgreSQL; the readings sent
    // while it waits queue behind it.
    const first = postReading();
    await sleep(300);
    const [health, answers] = await Promise.all([
      call(base, 'GET /health', undefined, 60_000),
      Promise.all([first, ...[...probes, ...probes].map((probe) => probe())]),
    ]);
    postgres.thaw();
    t.diagnostic(
      `/health ${health.status} in ${health.ms} ms; requests: ${answers.map((a) => a.ms).join(', ')} ms`,
    );

    assert.ok(alive(server()), `the service exited:\n${server().output().slice(-3000)}`);
    assert.equal(health.status, 503, health.body);
    assert.equal(JSON.parse(health.body).status, 'unavailable');
    assert.ok(health.ms <= HEALTH_WITHIN_MS + SLACK_MS, `/health took ${health.ms} ms`);
    assert.deepEqual(notPrompt503(answers, QUERY_TIMEOUT_MS + SLACK_MS), []);

    const thawed = Date.now();
    let recovered = false;
    while (!recovered && Date.now() - thawed < RECOVERY_WITHIN_MS) {
      recovered = (await postReading()).status === 200;
      if (!recovered) await sleep(200);
    }
    assert.ok(
      recovered,
      `no write succeeded within ${RECOVERY_WITHIN_MS} ms of SIGCONT:\n${postgres.logTail()}`,
    );
    t.diagnostic(`writes succeed again ${Date.now() - thawed} ms after SIGCONT`);
    assert.equal((await call(base, 'GET /health')).status, 200);

    // What the pool had sent before its timeout ran once PostgreSQL continued: a 503 after a timeout
    // does not say whether the reading was stored. Acknowledged ones are, once each; nothing else is.
    const { db } = openDatabase(postgres.url);
    try {
      // No connection the freeze caught in its `begin` (the statistics' transactions above) went back
      // to the pool and on inside that transaction once PostgreSQL continued: what borrowed it next
      // would never commit (a reading answered 200 and lost).
      await sleep(1500);
      const leftOpen = await sql<{ query: string }>`
        select query from pg_stat_activity
        where datname = current_database() and state like 'idle in transaction%'
          and state_change < now() - interval '1 second'`.execute(db);
      assert.deepEqual(leftOpen.rows, [], 'connections left inside a transaction');
      const rows = await db.selectFrom('data').select('x').where('device_id', '=', deviceId).execute();
      const stored = rows.map((row) => row.x);
      assert.equal(new Set(stored).size, stored.length, 'a reading stored twice');
      assert.deepEqual(
        stored.filter((value) => !sent.has(value)),
        [],
        'readings stored that were never sent',
      );
      assert.deepEqual(
        [...acknowledged].filter((value) => !stored.includes(value)),
        [],
        'acknowledged readings missing',
      );
      t.diagnostic(`${stored.length} stored, ${acknowledged.size} acknowledged, ${sent.size} sent`);
    } finally {
      await db.destroy();
    }
    await assertRollupsMatchReadingsAt(postgres.url, 'after the freeze');
  });

  it('drops a connection whose query timed out: what borrows one next is not caught in its transaction', async () => {
    // The service's own pool, with one idle connection: a transaction begun while PostgreSQL hangs
    // fails at the driver's timeout with its `begin` still unanswered, and PostgreSQL runs that `begin`
    // once it goes on. Given back to the pool, the connection would lend the next write an open
    // transaction that nothing commits: answered, and lost.
    const service = openDatabase(postgres.url);
    const check = openDatabase(postgres.url);
    try {
      await sql`create table if not exists hung_writes (note text)`.execute(check.db);
      await sql`select 1`.execute(service.db);
      postgres.freeze();
      let failure: unknown;
      try {
        await service.db.transaction().execute((trx) => sql`select 1`.execute(trx));
      } catch (error) {
        failure = error;
      } finally {
        postgres.thaw();
      }
      assert.match(String(failure), /timeout/i);
      await sql`insert into hung_writes values ('after the freeze')`.execute(service.db);
      const notes = await sql<{ note: string }>`select note from hung_writes`.execute(check.db);
      assert.deepEqual(notes.rows, [{ note: 'after the freeze' }], 'a write answered but not committed');
    } finally {
      await service.close();
      await check.close();
    }
  });
});

/** Another process that holds SQLite's write lock (BEGIN EXCLUSIVE) on `file` until `release()`. */
async function lockSqliteFile(file: string): Promise<{ release: () => Promise<void> }> {
  const holder = spawn(
    process.execPath,
    [
      '-e',
      `const db = new (require('better-sqlite3'))(${JSON.stringify(file)});
       db.exec('BEGIN EXCLUSIVE');
       process.stdout.write('locked\\n');
       process.stdin.once('data', () => { db.exec('COMMIT'); db.close(); process.exit(0); });`,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  process.once('exit', () => holder.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    holder.stdout.once('data', () => resolve());
    holder.once('exit', (code) => reject(new Error(`the lock holder exited with ${code}`)));
  });
  return {
    release: async () => {
      const exit = exited(holder);
      holder.stdin.write('release\n');
      assert.equal(await exit, 0);
    },
  };
}

describe('a SQLite file locked by another process: writes 503 promptly, reads go on, recovery', () => {
  const dir = mkdtempSync(join(tmpdir(), 'statistics-sqlite-lock-'));
  const file = join(dir, 'locked.db');
  let server: Server | undefined;

  before(async () => {
    server = await startServer(`sqlite:${file}`, join(dir, 'service'));
  });
  after(async () => {
    if (server !== undefined) await stopServer(server, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers writes 503 within 2 s and reads at once while the lock is held, and writes again after', async (t) => {
    const base = (server as Server).url;
    const created = await call(base, 'POST /device/', { name: 'locked' });
    assert.equal(created.status, 200, created.body);
    const deviceId: number = JSON.parse(created.body).id;
    let x = 0;
    const acknowledged = new Set<number>();
    const postReading = async () => {
      const body = { device_id: deviceId, x: ++x, y: 1, z: 2 };
      const answer = await call(base, 'POST /data/', body, 60_000);
      if (answer.status === 200) acknowledged.add(body.x);
      return answer;
    };
    assert.equal((await postReading()).status, 200);

    const lock = await lockSqliteFile(file);
    const writes = [
      postReading,
      postReading,
      () =>
        call(
          base,
          'POST /data/',
          [1, 2].map(() => ({ device_id: deviceId, x: ++x, y: 1, z: 2 })),
          60_000,
        ),
      () => call(base, 'POST /device/', { name: 'during the lock' }, 60_000),
    ];
    const reads = [
      () => call(base, 'GET /health', undefined, 60_000),
      () => call(base, `GET /analyze_statistics/?device_id=${deviceId}`, undefined, 60_000),
      () => call(base, `GET /data/?device_id=${deviceId}`, undefined, 60_000),
      () => call(base, `GET /device/${deviceId}`, undefined, 60_000),
    ];
    const [writeAnswers, readAnswers] = await Promise.all([
      Promise.all([...writes, ...writes].map((write) => write())),
      // Sent while the writes wait for the lock: they must not wait behind them.
      sleep(50).then(() => Promise.all(reads.map((read) => read()))),
    ]);
    t.diagnostic(
      `writes: ${writeAnswers.map((a) => `${a.status} in ${a.ms} ms`).join(', ')}; ` +
        `reads: ${readAnswers.map((a) => `${a.status} in ${a.ms} ms`).join(', ')}`,
    );
    await lock.release();

    assert.ok(alive(server as Server), `the service exited:\n${(server as Server).output().slice(-3000)}`);
    assert.deepEqual(notPrompt503(writeAnswers, HEALTH_WITHIN_MS), []);
    const slowReads = readAnswers
      .filter((a) => a.status !== 200 || a.ms > READ_WITHIN_MS)
      .map((a) => `${a.route}: ${a.status} in ${a.ms} ms, ${a.body.slice(0, 200)}`);
    assert.deepEqual(slowReads, [], 'reads waited for the writes, or failed');

    assert.equal((await postReading()).status, 200, 'a write once the lock is released');
    const { db } = openDatabase(`sqlite:${file}`);
    try {
      const rows = await db.selectFrom('data').select('x').where('device_id', '=', deviceId).execute();
      // SQLite reports a busy lock before it writes anything: a 503 stored nothing.
      assert.deepEqual(
        rows.map((row) => row.x).sort((a, b) => a - b),
        [...acknowledged].sort((a, b) => a - b),
      );
    } finally {
      await db.destroy();
    }
    await assertRollupsMatchReadingsAt(`sqlite:${file}`, 'after the lock');
  });
});
