import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ENGINES, engineSkipReason, type FreshDatabase, freshDatabase } from '../helpers/harness.js';
import { exited, startServer } from '../helpers/server.js';

for (const engine of ENGINES) {
  describe(`the real server stops cleanly and keeps what it acknowledged [${engine}]`, {
    skip: engineSkipReason(engine),
  }, () => {
    let database: FreshDatabase;
    const dataDir = mkdtempSync(join(tmpdir(), 'statistics-restart-'));

    before(async () => {
      database = await freshDatabase(engine);
    });
    after(async () => {
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('finishes requests in flight on SIGTERM, exits 0, and finds every acknowledged reading after a restart', async () => {
      const first = await startServer(database.url, dataDir);
      const device = await (
        await fetch(`${first.url}/device/`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"name":"r"}',
        })
      ).json();
      const post = (x: number) =>
        fetch(`${first.url}/data/`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ device_id: device.id, x, y: 0, z: 0 }),
        });
      for (let x = 0; x < 20; x++) assert.equal((await post(x)).status, 200);
      // Requests sent together with the signal: each either completes (and is then stored) or is refused.
      const inFlight = Array.from({ length: 10 }, (_, i) =>
        post(100 + i).then(
          (r) => r.status,
          () => 0,
        ),
      );
      const exit = exited(first.process);
      first.process.kill('SIGTERM');
      const statuses = await Promise.all(inFlight);
      // 0: the connection was refused or closed before an answer; never a 500.
      assert.ok(
        statuses.every((s) => s === 200 || s === 503 || s === 0),
        String(statuses),
      );
      assert.equal(await exit, 0, first.output());
      const acknowledged = 20 + statuses.filter((s) => s === 200).length;

      const second = await startServer(database.url, dataDir);
      try {
        const stats = await (await fetch(`${second.url}/analyze_statistics/?device_id=${device.id}`)).json();
        assert.equal(stats.count, acknowledged);
        assert.equal(stats.min, 0);
      } finally {
        const stopped = exited(second.process);
        second.process.kill('SIGINT');
        assert.equal(await stopped, 0);
      }
    });
  });
}
