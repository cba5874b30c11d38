import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { assertRollupsMatchReadingsAt } from '../helpers/rollups.js';
import { alive, type Server, startServer, stopServer } from '../helpers/server.js';

// Issue 5, item 8: on SQLite, a full disk is a clear 503 (never a 500), the server stays up and keeps
// answering reads, writes work again once there is room, and the database file is not corrupted.
// The test mounts its own 2 MiB tmpfs (as root; skipped otherwise) and fills it with readings.

const SIZE = '2m';
/** Written before the server starts, deleted once the disk is full, to make room again. */
const FILLER_BYTES = 512 * 1024;
/** Batch sizes tried in turn: each is sent until it fails, so that at the end not even one reading fits. */
const BATCH_SIZES = [2000, 200, 20, 1];
const MAX_REQUESTS = 1000;

function umount(dir: string): void {
  if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir]);
}

/** Mounts the small filesystem now, so that a machine where that is impossible skips with the reason. */
function mountSmallFilesystem(): { dir: string } | { skip: string } {
  if (process.platform !== 'linux') return { skip: 'needs Linux (mount -t tmpfs)' };
  const dir = mkdtempSync(join(tmpdir(), 'statistics-disk-full-'));
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${SIZE}`, 'tmpfs', dir], {
    encoding: 'utf8',
  });
  if (mounted.status !== 0) {
    rmdirSync(dir);
    return {
      skip: `cannot mount a ${SIZE} tmpfs (needs root): ${(mounted.stderr || String(mounted.error)).trim()}`,
    };
  }
  // Whatever happens to the test process, the mount does not outlive it.
  process.once('exit', () => {
    umount(dir);
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir };
}

const filesystem = mountSmallFilesystem();

interface Answer {
  status: number;
  body: string;
  retryAfter: string | null;
}

async function post(base: string, path: string, body: unknown): Promise<Answer> {
  const response = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  return {
    status: response.status,
    body: await response.text(),
    retryAfter: response.headers.get('retry-after'),
  };
}

describe('SQLite on a full disk: 503, reads still work, writes again once there is room, no corruption', {
  skip: 'skip' in filesystem ? filesystem.skip : false,
}, () => {
  const dir = 'dir' in filesystem ? filesystem.dir : '';
  const databaseFile = join(dir, 'db.sqlite');
  const filler = join(dir, 'filler');
  let server: Server | undefined;

  after(async () => {
    if (server !== undefined) await stopServer(server, 'SIGKILL');
    umount(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers 503 when the disk is full and recovers when space is freed', async (t) => {
    writeFileSync(filler, Buffer.alloc(FILLER_BYTES, 1));
    server = await startServer(`sqlite:${databaseFile}`, join(dir, 'service'));
    const base = server.url;
    const device = await post(base, '/device/', { name: 'disk' });
    assert.equal(device.status, 200, device.body);
    const deviceId: number = JSON.parse(device.body).id;

    let next = 0;
    const readings = (n: number) =>
      Array.from({ length: n }, () => {
        const x = ++next + 0.25;
        return { device_id: deviceId, x, y: x * 2, z: x * 3 };
      });
    /** One reading as the single-reading form (group commit), more as a batch. */
    const send = (n: number) => {
      const items = readings(n);
      return n === 1 ? post(base, '/data/', items[0]) : post(base, '/data/', items);
    };
    const storedBy = (answer: Answer, n: number) => (n === 1 ? 1 : JSON.parse(answer.body).stored);

    let acknowledged = 0;
    let requests = 0;
    const failures: (Answer & { size: number })[] = [];
    for (const size of BATCH_SIZES) {
      while (requests < MAX_REQUESTS) {
        requests++;
        const answer = await send(size);
        if (answer.status === 200) {
          acknowledged += storedBy(answer, size);
          continue;
        }
        failures.push({ ...answer, size });
        break;
      }
    }
    const free = statfsSync(dir);
    t.diagnostic(
      `${acknowledged} readings stored in ${requests} requests before the disk was full ` +
        `(${free.bavail * free.bsize} bytes left); failures: ${failures.map((f) => `${f.size}->${f.status}`).join(', ')}`,
    );
    const codes = new Set(server.output().match(/(?<="code":")SQLITE_[A-Z_]+/g));
    t.diagnostic(`the driver raised: ${[...codes].join(', ') || 'no SQLite error code logged'}`);
    assert.equal(failures.length, BATCH_SIZES.length, 'the disk never filled up');
    for (const failure of failures) {
      assert.equal(failure.status, 503, `a write of ${failure.size} on a full disk: ${failure.body}`);
      assert.equal(typeof JSON.parse(failure.body).detail, 'string', failure.body);
      assert.match(failure.retryAfter ?? '', /^\d+$/, 'Retry-After');
    }
    assert.ok(alive(server), `the server exited:\n${server.output().slice(-3000)}`);

    // Reads still work, and count exactly what was acknowledged.
    const statsWhileFull = await fetch(`${base}/analyze_statistics/?device_id=${deviceId}`);
    assert.equal(statsWhileFull.status, 200, await statsWhileFull.clone().text());
    assert.equal((await statsWhileFull.json()).count, acknowledged);

    // Room again: writes succeed without a restart.
    rmSync(filler);
    for (const size of [200, 1]) {
      const answer = await send(size);
      assert.equal(answer.status, 200, `a write of ${size} after space was freed: ${answer.body}`);
      acknowledged += storedBy(answer, size);
    }
    const stats = await (await fetch(`${base}/analyze_statistics/?device_id=${deviceId}`)).json();
    assert.equal(stats.count, acknowledged);

    const code = await stopServer(server, 'SIGTERM');
    assert.equal(code, 0, `exit code after SIGTERM:\n${server.output().slice(-3000)}`);

    // Writes that failed for want of room left no reading without its rollup, nor a rollup without it.
    await assertRollupsMatchReadingsAt(`sqlite:${databaseFile}`, 'after the disk was full');
    const database = new SQLite(databaseFile);
    try {
      assert.deepEqual(database.pragma('integrity_check'), [{ integrity_check: 'ok' }]);
      const row = database.prepare('select count(*) as n from data where device_id = ?').get(deviceId) as {
        n: number;
      };
      assert.equal(row.n, acknowledged, 'every acknowledged reading is in the file');
    } finally {
      database.close();
    }
  });
});
