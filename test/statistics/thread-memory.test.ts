import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { openDatabase } from '../../src/db/database.js';
import { ENGINES, engineSkipReason, type FreshDatabase, freshDatabase } from '../helpers/harness.js';
import { unfoldedMinutes } from '../helpers/rollups.js';
import { alive, call, type Server, startServer, stopServer, waitForOutput } from '../helpers/server.js';

// STATISTICS_THREAD_MEMORY_MB bounds the V8 heap of each thread that runs statistics or folds rollups.
// A query past it ends its thread: the request gets a 422 that says what to change, the pool starts
// another thread, and the server goes on serving; a fold step past it is tried again at the next
// interval, neither lost nor retried at once. The smallest limit (32 MB) lets a thread start and
// answer exact statistics over 43,200 readings (their values live outside the heap), while a series
// of 43,200 one-minute buckets of x, y and z with medians needs more (measured: between 32 and
// 64 MB), and so does a fold step over an hour that holds 200,000 readings.

const TINY = '32';
const MINUTE = 60_000;
const READINGS = 43_200;
const BATCH = 7_200;
const BUSY_HOUR_READINGS = 200_000;
const MAX_BATCH = 10_000;
const FOLD_INTERVAL_MS = 500;
const OUT_OF_MEMORY_LOG = 'a fold step needed more memory than STATISTICS_THREAD_MEMORY_MB allows';

/** One reading a minute, x = its index, from a whole UTC hour 40 days ago. */
async function storeReadings(base: string, device: number): Promise<number> {
  const first = Math.floor((Date.now() - 40 * 86_400_000) / 3_600_000) * 3_600_000;
  for (let offset = 0; offset < READINGS; offset += BATCH) {
    const batch = Array.from({ length: BATCH }, (_, i) => ({
      device_id: device,
      x: offset + i,
      y: 1,
      z: 2,
      timestamp: new Date(first + (offset + i) * MINUTE).toISOString(),
    }));
    const stored = await call(base, 'POST /data/', batch, 60_000);
    assert.equal(stored.status, 200, stored.body);
  }
  return first;
}

async function newDevice(base: string): Promise<number> {
  const created = await call(base, 'POST /device/', { name: 'memory' });
  assert.equal(created.status, 200, created.body);
  return JSON.parse(created.body).id;
}

/**
 * A busy hour: 200,000 readings within one hour (one every 15 ms, 50 minutes), in batches. A fold step
 * recomputes whole hours, at least one, so this hour's step reads every one of its readings at once:
 * more than 32 MB of a thread's heap, whatever FOLD_STEP_READINGS says.
 */
async function storeBusyHour(base: string, device: number): Promise<void> {
  const first = Math.floor((Date.now() - 10 * 86_400_000) / 3_600_000) * 3_600_000;
  for (let offset = 0; offset < BUSY_HOUR_READINGS; offset += MAX_BATCH) {
    const batch = Array.from({ length: MAX_BATCH }, (_, i) => ({
      device_id: device,
      x: (offset + i) % 1000,
      y: 1,
      z: 2,
      timestamp: new Date(first + (offset + i) * 15).toISOString(),
    }));
    const stored = await call(base, 'POST /data/', batch, 60_000);
    assert.equal(stored.status, 200, stored.body);
  }
}

/** The server answers /health, stores a reading (of yesterday: a minute the folder may fold), and still runs. */
async function stillServing(server: Server, device: number): Promise<void> {
  assert.ok(alive(server), server.output().slice(-2000));
  const health = await call(server.url, 'GET /health');
  assert.equal(health.status, 200, health.body);
  const yesterday = new Date(Date.now() - 86_400_000).toISOString();
  const stored = await call(server.url, 'POST /data/', {
    device_id: device,
    x: 1,
    y: 1,
    z: 1,
    timestamp: yesterday,
  });
  assert.equal(stored.status, 200, stored.body);
}

describe('STATISTICS_THREAD_MEMORY_MB: a query past it [sqlite]', () => {
  const dir = mkdtempSync(join(tmpdir(), 'statistics-thread-memory-'));
  let server: Server;
  let device: number;
  let first: number;

  before(async () => {
    server = await startServer(`sqlite:${join(dir, 'db.sqlite')}`, join(dir, 'service'), {
      STATISTICS_THREAD_MEMORY_MB: TINY,
      MAX_SERIES_BUCKETS: String(READINGS),
      // One heavy thread and no light lane: the queries after the one that ends it need its replacement.
      STATISTICS_CONCURRENCY: '1',
      STATISTICS_LIGHT_READINGS: '0',
      // The folder's plans run on the same threads; here only the requests' queries do.
      ROLLUP_FOLD_INTERVAL_MS: '0',
    });
    device = await newDevice(server.url);
    first = await storeReadings(server.url, device);
  });

  after(async () => {
    await stopServer(server, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers 422 with what to change, replaces the thread, and serves the next queries', async () => {
    const until = new Date(first + READINGS * MINUTE - 1).toISOString();
    const series = await call(
      server.url,
      `GET /analyze_statistics/series?device_id=${device}&bucket=1m&attr=x,y,z&median=true` +
        `&start_date=${new Date(first).toISOString()}&end_date=${until}`,
      undefined,
      60_000,
    );
    assert.equal(series.status, 422, series.body);
    assert.equal(series.retryAfter, null, 'the same query would fail again: no Retry-After');
    const detail: unknown = JSON.parse(series.body).detail;
    assert.equal(typeof detail, 'string', series.body);
    assert.match(detail as string, /more memory than STATISTICS_THREAD_MEMORY_MB \(32 MB\)/);
    assert.match(detail as string, /narrow the date range/);
    assert.match(detail as string, /accuracy=approx/);

    await stillServing(server, device);
    // A query within the limit runs on the thread that replaced the one that ended: exact statistics
    // over every reading, their median and sum computed here.
    const all = await call(
      server.url,
      `GET /analyze_statistics/?device_id=${device}&attr=x&end_date=${until}`,
    );
    assert.equal(all.status, 200, all.body);
    const statistics = JSON.parse(all.body);
    assert.equal(statistics.count, READINGS);
    assert.equal(statistics.sum, (READINGS * (READINGS - 1)) / 2);
    assert.equal(statistics.median, (READINGS - 1) / 2);
    // A smaller series of the same readings is answered too.
    const day = await call(
      server.url,
      `GET /analyze_statistics/series?device_id=${device}&bucket=1h&attr=x` +
        `&start_date=${new Date(first).toISOString()}&end_date=${new Date(first + 86_400_000 - 1).toISOString()}`,
    );
    assert.equal(day.status, 200, day.body);
    const hours = JSON.parse(day.body) as { count: number; min: number }[];
    assert.deepEqual(
      hours.map((hour) => [hour.count, hour.min]),
      Array.from({ length: 24 }, (_, hour) => [60, hour * 60]),
    );
    assert.ok(alive(server));
  });
});

for (const engine of ENGINES) {
  describe(`STATISTICS_THREAD_MEMORY_MB: a fold step past it [${engine}]`, {
    skip: engineSkipReason(engine),
  }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'statistics-fold-memory-'));
    let database: FreshDatabase;
    let url: string;
    let server: Server | undefined;

    before(async () => {
      if (engine === 'postgres') database = await freshDatabase('postgres');
      url = engine === 'postgres' ? database.url : `sqlite:${join(dir, 'db.sqlite')}`;
    });

    after(async () => {
      if (server) await stopServer(server, 'SIGKILL');
      if (engine === 'postgres') await database.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    const unfolded = async () => {
      const opened = openDatabase(url, 'server');
      try {
        return await unfoldedMinutes(opened);
      } finally {
        await opened.close();
      }
    };

    it('is tried again at the next interval, not at once, and folded once the limit allows', async () => {
      server = await startServer(url, join(dir, 'service'), {
        STATISTICS_THREAD_MEMORY_MB: TINY,
        ROLLUP_FOLD_INTERVAL_MS: String(FOLD_INTERVAL_MS),
      });
      const device = await newDevice(server.url);
      await storeBusyHour(server.url, device);
      await waitForOutput(server, OUT_OF_MEMORY_LOG, 60_000);

      // Retried, but no more often than the interval allows (a busy machine only makes it rarer).
      const failures = () => server?.output().split(OUT_OF_MEMORY_LOG).length ?? 0;
      const seen = failures();
      const watched = performance.now();
      await sleep(4 * FOLD_INTERVAL_MS);
      const retries = failures() - seen;
      const intervals = (performance.now() - watched) / FOLD_INTERVAL_MS;
      assert.ok(
        retries <= Math.ceil(intervals) + 1,
        `${retries} failed steps in ${intervals.toFixed(1)} intervals`,
      );

      await stillServing(server, device);
      // Nothing folded was lost: the minutes wait for their fold.
      assert.ok((await unfolded()) > 0);

      await stopServer(server);
      server = await startServer(url, join(dir, 'service'), {
        ROLLUP_FOLD_INTERVAL_MS: String(FOLD_INTERVAL_MS),
      });
      const giveUp = Date.now() + 120_000;
      let left = await unfolded();
      while (left > 0 && Date.now() < giveUp) {
        await sleep(250);
        left = await unfolded();
      }
      assert.equal(left, 0, 'every minute is folded at the default limit');
      assert.ok(!server.output().includes(OUT_OF_MEMORY_LOG));
    });
  });
}
