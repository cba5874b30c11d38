import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { backupSqlite } from '../../src/db/backup.js';
import { runCli } from '../helpers/cli.js';
import { startServer, stopServer } from '../helpers/server.js';

describe('statistics backup: a consistent copy of a live SQLite database', () => {
  const dir = mkdtempSync(join(tmpdir(), 'statistics-backup-'));
  const databaseUrl = `sqlite:${join(dir, 'live.db')}`;
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('copies while readings keep arriving; the copy passes integrity_check, holds every acknowledged reading, and serves', async () => {
    const server = await startServer(databaseUrl, join(dir, 'data'));
    const post = async (body: unknown) => {
      const response = await fetch(`${server.url}/data/`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      assert.equal(response.status, 200);
      return response.json();
    };
    let stop = false;
    try {
      const device = await (
        await fetch(`${server.url}/device/`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"name":"b"}',
        })
      ).json();
      // Enough pages that the copy takes many steps while the writes go on.
      for (let i = 0; i < 20; i++) {
        await post(
          Array.from({ length: 10_000 }, (_, j) => ({ device_id: device.id, x: i * 10_000 + j, y: 0, z: 0 })),
        );
      }
      const acknowledged: number[] = [];
      const writer = (async () => {
        for (let n = 0; !stop && n < 100_000; n++) {
          const { ids } = await post(
            Array.from({ length: 20 }, () => ({ device_id: device.id, x: n, y: 1, z: 2 })),
          );
          acknowledged.push(...ids);
        }
      })();
      while (acknowledged.length < 200) await new Promise((resolve) => setTimeout(resolve, 10));
      // The backup function itself, started the moment the acknowledged readings are counted (the
      // last of them are still in the WAL then, not in the database file).
      const before = [...acknowledged];
      const copy = join(dir, 'copy.db');
      await backupSqlite(databaseUrl.slice('sqlite:'.length), copy, () => {});
      assert.deepEqual(
        before.filter((id) => !idsIn(copy).has(id)),
        [],
        'every reading acknowledged before the backup began is in the copy',
      );
      // The command, while the writes go on.
      const beforeCommand = [...acknowledged];
      const run = await runCli(['backup', copy, '--force'], { env: { DATABASE_URL: databaseUrl } });
      const during = acknowledged.length - beforeCommand.length;
      stop = true;
      await writer;
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /integrity ok/);
      assert.ok(during > 0, 'readings kept arriving during the backup');

      const check = new SQLite(copy, { readonly: true });
      assert.deepEqual(check.pragma('integrity_check'), [{ integrity_check: 'ok' }]);
      const minutes = check.prepare('select sum(readings) from reading_minutes').pluck().get();
      check.close();
      const stored = idsIn(copy);
      assert.deepEqual(
        beforeCommand.filter((id) => !stored.has(id)),
        [],
        'every reading acknowledged before the command began is in its copy',
      );
      assert.ok(stored.size >= 200_000 + beforeCommand.length);
      assert.equal(minutes, stored.size, 'the rollups were copied with their readings (one snapshot)');

      // Restore: the copy is a database the service starts on.
      const restored = await startServer(`sqlite:${copy}`, join(dir, 'data'));
      try {
        assert.equal((await fetch(`${restored.url}/ready`)).status, 200);
        const stats = await (
          await fetch(`${restored.url}/analyze_statistics/?device_id=${device.id}`)
        ).json();
        assert.equal(stats.count, stored.size);
      } finally {
        assert.equal(await stopServer(restored), 0);
      }
    } finally {
      stop = true;
      await stopServer(server);
    }
  });
});

function idsIn(path: string): Set<number> {
  const copy = new SQLite(path, { readonly: true });
  try {
    return new Set((copy.prepare('select id from data').pluck().all() as number[]).map(Number));
  } finally {
    copy.close();
  }
}
