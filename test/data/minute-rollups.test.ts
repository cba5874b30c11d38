import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Kysely } from 'kysely';
import * as readingMinutes from '../../src/db/migrations/0003-reading-minutes.js';
import * as readingRollups from '../../src/db/migrations/0007-reading-rollups.js';
import * as deviceReadingTotals from '../../src/db/migrations/0008-device-reading-totals.js';
import { Harness, onEachEngine } from '../helpers/harness.js';
import { assertRollupsMatchReadings } from '../helpers/rollups.js';

const MINUTE = 60_000;

/** Deterministic values with fractions and both signs (a linear congruential generator). */
function values(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return Math.round((state / 2 ** 31 - 0.5) * 2_000_000) / 1000;
  };
}

onEachEngine('per-minute rollups', (h: Harness) => {
  it('match the stored readings for batches, late readings, single readings and imports', async () => {
    const first = await h.createDevice();
    const second = await h.createDevice();
    const next = values(7);
    const start = Date.now() - 3 * 3_600_000;
    // 400 readings at irregular times over about 40 minutes, the two devices interleaved.
    const batch = Array.from({ length: 400 }, (_, i) => ({
      device_id: i % 3 === 0 ? second : first,
      x: next(),
      y: next(),
      z: next(),
      timestamp: new Date(start + i * 6_037).toISOString(),
    }));
    assert.equal((await h.post('/data/', batch)).statusCode, 200);
    // Late readings into minutes that already have rollups, and into earlier ones.
    const late = Array.from({ length: 50 }, (_, i) => ({
      device_id: first,
      x: next(),
      y: next(),
      z: next(),
      timestamp: new Date(start - 5 * MINUTE + i * 17_011).toISOString(),
    }));
    assert.equal((await h.post('/data/', late)).statusCode, 200);
    // Single readings at server time, concurrent so that they are group-committed.
    const singles = await Promise.all(
      Array.from({ length: 30 }, () => h.post('/data/', { device_id: second, x: next(), y: next(), z: 1 })),
    );
    assert.deepEqual(new Set(singles.map((r) => r.statusCode)), new Set([200]));
    const csv = Array.from(
      { length: 40 },
      (_, i) => `${first},${next()},${next()},${next()},${new Date(start + i * 29_000).toISOString()}`,
    ).join('\n');
    const imported = await h.inject({
      method: 'POST',
      url: '/data/import',
      headers: { 'content-type': 'text/csv' },
      payload: csv,
    });
    assert.equal(imported.json().stored, 40, imported.body);

    await assertRollupsMatchReadings(h.db);
  });

  it('are rebuilt from the stored readings when the migration runs on an existing database', async () => {
    const db = h.db as unknown as Kysely<unknown>;
    // A minute whose x adds up beyond the double range: its sum is unknown, not an error.
    const device = await h.createDevice();
    const at = Date.UTC(2026, 0, 4, 9, 15, 0);
    const huge = [1e308, 1.5e308, -2, 0.5].map((x, i) => ({
      device_id: device,
      x,
      y: i,
      z: -i,
      timestamp: new Date(at + i * 1000).toISOString(),
    }));
    assert.equal((await h.post('/data/', huge)).statusCode, 200);
    // Migrations 0007 and 0008 build on this table: undone first, and redone after.
    await deviceReadingTotals.down(db);
    await readingRollups.down(db);
    await readingMinutes.down(db);
    await readingMinutes.up(db);
    await readingRollups.up(db);
    await deviceReadingTotals.up(db);
    await assertRollupsMatchReadings(h.db);
  });

  it('keep sums beyond the double range as unknown, and go on storing', async () => {
    const device = await h.createDevice();
    const at = Date.UTC(2026, 0, 5, 12, 30, 10);
    const reading = (x: number, y: number, second: number) => ({
      device_id: device,
      x,
      y,
      z: 0,
      timestamp: new Date(at + second * 1000).toISOString(),
    });
    // Overflowing when added to the minute's stored sum, then within one statement.
    assert.equal((await h.post('/data/', reading(1e308, 1, 0))).statusCode, 200);
    assert.equal((await h.post('/data/', reading(1e308, 2, 1))).statusCode, 200);
    assert.equal((await h.post('/data/', [reading(1.5e308, 3, 2), reading(1.5e308, 2, 3)])).statusCode, 200);
    const minute = `device_id=${device}&start_date=2026-01-05T12:30:00Z&end_date=2026-01-05T12:31:00Z&bucket=1m`;
    let [bucket] = (await h.get(`/analyze_statistics/series?${minute}&attr=x,y`)).json();
    assert.deepEqual(bucket, {
      start: '2026-01-05T12:30:00+00:00',
      count: 4,
      x: { min: 1e308, max: 1.5e308, mean: null },
      y: { min: 1, max: 3, mean: 2 },
    });
    // Infinity minus Infinity: the sum is not a number, and still not an error.
    const negative = [reading(-1e308, 3, 4), reading(-1e308, 3, 5), reading(-1e308, 3, 6)];
    assert.equal((await h.post('/data/', negative)).statusCode, 200);
    [bucket] = (await h.get(`/analyze_statistics/series?${minute}&attr=x,y`)).json();
    assert.deepEqual(bucket.x, { min: -1e308, max: 1.5e308, mean: null });
    assert.deepEqual([bucket.count, bucket.y.mean], [7, 17 / 7]);
  });

  it('add up to the largest double without calling it an overflow, as IEEE arithmetic rounds it', async () => {
    const device = await h.createDevice();
    const at = (second: number) => new Date(Date.UTC(2026, 0, 6, 8, 0, second)).toISOString();
    const reading = (x: number, second: number) => ({
      device_id: device,
      x,
      y: -x,
      z: 0,
      timestamp: at(second),
    });
    // Merged into the minute's stored sum one at a time: 0.1 + MAX rounds to MAX.
    for (const [x, second] of [
      [0.1, 1],
      [Number.MAX_VALUE, 2],
    ] as const) {
      assert.equal((await h.post('/data/', reading(x, second))).statusCode, 200);
    }
    const [bucket] = (
      await h.get(
        `/analyze_statistics/series?device_id=${device}&bucket=1m&attr=x,y&start_date=${at(0)}&end_date=${at(59)}`,
      )
    ).json();
    assert.deepEqual(
      [bucket.count, bucket.x.mean, bucket.y.mean],
      [2, Number.MAX_VALUE / 2, -Number.MAX_VALUE / 2],
    );
  });

  it('go with their device when it is deleted', async () => {
    const owner = await h.signUp();
    const device = await h.createDevice(owner.token);
    assert.equal((await h.post('/data/', { device_id: device, x: 1, y: 2, z: 3 })).statusCode, 200);
    const ofDevice = () =>
      h.db.selectFrom('reading_minutes').select('readings').where('device_id', '=', device).execute();
    assert.deepEqual(await ofDevice(), [{ readings: 1 }]);
    const deleted = await h.inject({
      method: 'DELETE',
      url: `/device/${device}`,
      headers: { authorization: `Bearer ${owner.token}` },
    });
    assert.equal(deleted.statusCode, 204, deleted.body);
    assert.deepEqual(await ofDevice(), []);
    // SQLite's totals of the device list go too (PostgreSQL sums the minutes themselves).
    if (h.engine === 'sqlite') {
      const totals = await h.db
        .selectFrom('device_reading_totals')
        .selectAll()
        .where('device_id', '=', device)
        .execute();
      assert.deepEqual(totals, []);
    }
  });
});

describe('device reading totals [sqlite]', () => {
  const h = new Harness('sqlite');
  before(() => h.start({ ROLLUP_FOLD_INTERVAL_MS: '0' }));
  after(() => h.stop());

  it('add up to the minutes through new, late and merged minutes, and deletes of any of them', async () => {
    const device = await h.createDevice();
    const minute = (m: number, s = 0) => new Date(Date.UTC(2026, 0, 6, 8, m, s)).toISOString();
    const post = async (m: number, s = 0) =>
      assert.equal(
        (await h.post('/data/', { device_id: device, x: 1, y: 1, z: 1, timestamp: minute(m, s) })).statusCode,
        200,
      );
    const minutesSum = async () => {
      const rows = await h.db
        .selectFrom('reading_minutes')
        .select(['minute', 'readings'])
        .where('device_id', '=', device)
        .execute();
      return rows.reduce((sum, row) => sum + Number(row.readings), 0);
    };
    const shown = async () => (await h.get(`/device/${device}`)).json().readings;
    // 10, then 12 (a new last minute), a late 5 (a new earlier minute), more into 10 (merged, earlier)
    // and into 12 (merged, the last).
    for (const [m, s] of [
      [10, 0],
      [10, 1],
      [12, 0],
      [5, 0],
      [10, 2],
      [12, 30],
      [12, 31],
    ] as const)
      await post(m, s);
    assert.deepEqual([await shown(), await minutesSum()], [7, 7]);
    const deleteMinute = (m: number) =>
      h.db
        .deleteFrom('reading_minutes')
        .where('device_id', '=', device)
        .where('minute', '=', Date.parse(minute(m)))
        .execute();
    // The last minute first (10 becomes the last), then an earlier one, then the rest.
    for (const [m, left] of [
      [12, 4],
      [5, 3],
      [10, 0],
    ] as const) {
      await deleteMinute(m);
      assert.equal(await minutesSum(), left);
      assert.equal(await shown(), left);
    }
  });
});
