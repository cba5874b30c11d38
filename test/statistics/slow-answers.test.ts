import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { IDLE_TIMEOUT_MS } from '../../src/http/timeouts.js';
import { engineSkipReason, type FreshDatabase, freshDatabase } from '../helpers/harness.js';
import { call, type Server, startServer, stopServer } from '../helpers/server.js';

// A statistics request may take up to STATISTICS_TIMEOUT_MS, which may be longer than the socket's
// idle timeout (30 s): the server's silence while it works must not cost the client its answer. Seen
// on a real socket (app.inject has none), on PostgreSQL, where the test can hold a query by locking the
// readings' table: the first request holds the only slot until PostgreSQL's 24 s statement limit, the
// second waits for it and then runs into the lock until its own deadline, 33 s after it arrived.

const STATISTICS_TIMEOUT_MS = IDLE_TIMEOUT_MS + 3000;

describe('statistics answers that take longer than the idle timeout [postgres]', {
  skip: engineSkipReason('postgres'),
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'statistics-slow-answers-'));
  let database: FreshDatabase;
  let server: Server | undefined;

  before(async () => {
    database = await freshDatabase('postgres');
    server = await startServer(database.url, dir, {
      STATISTICS_TIMEOUT_MS: String(STATISTICS_TIMEOUT_MS),
      STATISTICS_CONCURRENCY: '1',
      ROLLUP_FOLD_INTERVAL_MS: '0',
    });
  });

  after(async () => {
    if (server !== undefined) await stopServer(server);
    await database?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers 503 at STATISTICS_TIMEOUT_MS, past the idle timeout', async () => {
    const base = (server as Server).url;
    const device = await call(base, 'POST /device/', { name: 'slow' });
    assert.equal(device.status, 200, device.body);
    const { id } = JSON.parse(device.body) as { id: number };
    const stored = await call(base, 'POST /data/', { device_id: id, x: 1, y: 2, z: 3 });
    assert.equal(stored.status, 200, stored.body);

    const locker = new pg.Client({ connectionString: database.url });
    await locker.connect();
    try {
      await locker.query('begin');
      await locker.query('lock table data in access exclusive mode');
      const route = `GET /analyze_statistics/?device_id=${id}&attr=x`;
      const first = call(base, route, undefined, STATISTICS_TIMEOUT_MS + 30_000);
      await sleep(200);
      const second = await call(base, route, undefined, STATISTICS_TIMEOUT_MS + 30_000);
      await first;
      assert.equal(second.status, 503, `${second.status} after ${second.ms} ms: ${second.body}`);
      assert.match(second.body, /STATISTICS_TIMEOUT_MS/);
      assert.ok(second.ms > IDLE_TIMEOUT_MS, `answered after ${second.ms} ms, within the idle timeout`);
    } finally {
      await locker.query('rollback').catch(() => {});
      await locker.end();
    }
    // And the service goes on answering once the lock is gone.
    const later = await call(base, `GET /analyze_statistics/?device_id=${id}&attr=x`);
    assert.equal(later.status, 200, later.body);
    assert.equal(JSON.parse(later.body).count, 1);
  });
});
