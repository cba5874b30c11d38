import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildApp } from '../../src/app.js';
import { openDatabase } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { Lifecycle } from '../../src/health/lifecycle.js';
import {
  ENGINES,
  engineSkipReason,
  type FreshDatabase,
  freshDatabase,
  onEachEngine,
  testConfig,
} from '../helpers/harness.js';
import { exited, startServer } from '../helpers/server.js';

for (const engine of ENGINES) {
  describe(`/ready follows the process's life [${engine}]`, { skip: engineSkipReason(engine) }, () => {
    let database: FreshDatabase;
    const dataDir = mkdtempSync(join(tmpdir(), 'statistics-ready-'));
    before(async () => {
      database = await freshDatabase(engine);
    });
    after(async () => {
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('answers 503 until the migrations have run, while only the health paths answer', async () => {
      const opened = openDatabase(database.url);
      const lifecycle = new Lifecycle('starting');
      const app = await buildApp(testConfig(database.url), opened, lifecycle);
      try {
        const ready = await app.inject({ url: '/ready' });
        assert.equal(ready.statusCode, 503);
        assert.equal(ready.json().status, 'starting');
        assert.equal((await app.inject({ url: '/health' })).statusCode, 200, 'liveness is independent');
        const route = await app.inject({ url: '/device/' });
        assert.equal(route.statusCode, 503);
        assert.equal(route.headers['retry-after'], '2');
        assert.match(route.json().detail, /migrations are running/);

        await migrateToLatest(opened.db);
        lifecycle.ready();
        assert.deepEqual((await app.inject({ url: '/ready' })).json(), {
          status: 'ready',
          checks: { database: 'ok' },
        });
        assert.equal((await app.inject({ url: '/device/' })).statusCode, 200);

        // A dependency a feature adds (a broker, a replica) counts too.
        lifecycle.addCheck('broker', async () => false);
        const down = await app.inject({ url: '/ready' });
        assert.equal(down.statusCode, 503);
        assert.deepEqual(down.json(), {
          status: 'unavailable',
          checks: { database: 'ok', broker: 'unavailable' },
        });
      } finally {
        await app.close();
        await opened.db.destroy();
      }
    });

    it('turns 503 at SIGTERM while requests are still served for SHUTDOWN_DELAY_MS, then exits 0', async () => {
      const server = await startServer(database.url, dataDir, { SHUTDOWN_DELAY_MS: '1500' });
      const ready = await fetch(`${server.url}/ready`);
      assert.equal(ready.status, 200);
      const exit = exited(server.process);
      server.process.kill('SIGTERM');
      let draining: Response | undefined;
      for (let i = 0; i < 50 && draining?.status !== 503; i++) {
        draining = await fetch(`${server.url}/ready`);
        if (draining.status !== 503) await sleep(20);
      }
      assert.equal(draining?.status, 503);
      assert.deepEqual(await draining?.json(), { status: 'draining', checks: { database: 'ok' } });
      // Still serving during the delay, so a load balancer can take the instance out first.
      assert.equal((await fetch(`${server.url}/health`)).status, 200);
      assert.equal((await fetch(`${server.url}/device/`)).status, 200);
      assert.equal(await exit, 0, server.output());
    });

    it('writes readable lines with LOG_FORMAT=pretty, and JSON lines by default off a terminal', async () => {
      const pretty = await startServer(database.url, dataDir, { LOG_FORMAT: 'pretty' });
      pretty.process.kill('SIGTERM');
      await exited(pretty.process);
      assert.match(pretty.output(), /INFO.*Server listening at http:\/\/127\.0\.0\.1:\d+, ready/);
      assert.doesNotMatch(pretty.output(), /^\{"level"/m);
      const json = await startServer(database.url, dataDir);
      json.process.kill('SIGTERM');
      await exited(json.process);
      const line = json
        .output()
        .split('\n')
        .find((l) => l.includes('Server listening at'));
      assert.equal(JSON.parse(line ?? '').level, 30);
    });
  });
}

onEachEngine('request ids', (h) => {
  it("answers each request's id in X-Request-Id, keeping a caller's valid one", async () => {
    const given = await h.inject({ url: '/device/', headers: { 'x-request-id': 'trace-42.abc' } });
    assert.equal(given.headers['x-request-id'], 'trace-42.abc');
    // The server's own ids: the process's random prefix and a counter, a new id for every request.
    const made = await h.inject({ url: '/device/999999' });
    assert.equal(made.statusCode, 404);
    assert.match(String(made.headers['x-request-id']), /^[0-9a-f]{16}-[0-9a-z]+$/);
    const unsafe = await h.inject({ url: '/device/', headers: { 'x-request-id': 'two words\u0007' } });
    assert.notEqual(unsafe.headers['x-request-id'], 'two words\u0007');
    assert.match(String(unsafe.headers['x-request-id']), /^[0-9a-f]{16}-[0-9a-z]+$/);
    assert.notEqual(unsafe.headers['x-request-id'], made.headers['x-request-id']);
  });
});
