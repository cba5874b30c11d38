import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { foldRollups } from '../../src/statistics/rollup-fold.js';
import { engineSkipReason, Harness } from '../helpers/harness.js';
import { foldAll } from '../helpers/rollups.js';

const MINUTE_MS = 60_000;

/**
 * Writes that meet on a minute rollup row. The rollup folder gives way to a write: it waits for a
 * minute that a write holds at most a moment, then tries again later. Another writer (an operator's
 * script, the folder on Citus, where the workers choose whom to roll back) holds a minute rollup row
 * that a batch needs, then asks for one the batch already holds: PostgreSQL ends the deadlock by
 * rolling one of them back. The batch's answer is then a 503 to retry, with nothing of it stored,
 * never a 500.
 */
describe('writes that meet on a minute [postgres]', { skip: engineSkipReason('postgres') }, () => {
  const h = new Harness('postgres');
  let other: pg.Client;
  before(async () => {
    // The tests fold by hand: the app's own folder, holding the folding lock at the wrong moment,
    // would make a step return without trying.
    await h.start({ ROLLUP_FOLD_INTERVAL_MS: '0' });
    other = new pg.Client({ connectionString: h.config.databaseUrl });
    await other.connect();
  });
  after(async () => {
    await other.end();
    await h.stop();
  });

  it('answers 503 with Retry-After and stores none of the batch; the other transaction goes on', async () => {
    const device = await h.createDevice();
    const first = Math.floor((Date.now() - 2 * 3_600_000) / MINUTE_MS) * MINUTE_MS;
    const reading = (minute: number, x: number) => ({
      device_id: device,
      x,
      y: 0,
      z: 0,
      timestamp: new Date(minute + 1000).toISOString(),
    });
    const seeded = await h.app.inject({
      method: 'POST',
      url: '/data/',
      payload: [reading(first, 1), reading(first + MINUTE_MS, 2)],
    });
    assert.equal(seeded.statusCode, 200, seeded.body);

    // The other writer waits long before it looks for deadlocks, so that the batch (PostgreSQL's
    // default: 1 s) is the one that finds it and is rolled back (on Citus the workers choose).
    await other.query('begin');
    await other.query("set local deadlock_timeout = '20s'");
    const touch = (minute: number) =>
      other.query('update reading_minutes set folded = 1 where device_id = $1 and minute = $2', [
        device,
        minute,
      ]);
    await touch(first + MINUTE_MS);
    // The batch merges into the first minute, then waits for the second.
    const batch = h.app.inject({
      method: 'POST',
      url: '/data/',
      payload: [reading(first, 10), reading(first + MINUTE_MS, 20)],
    });
    await sleep(300);
    const otherDone = touch(first).then(
      () => 'went on',
      (error: { code?: string }) => error.code ?? 'failed',
    );
    const answer = await batch;
    const otherOutcome = await otherDone;
    await other.query(otherOutcome === 'went on' ? 'commit' : 'rollback');

    const stored = await h.db
      .selectFrom('data')
      .select('x')
      .where('device_id', '=', device)
      .orderBy('x')
      .execute();
    if (answer.statusCode === 503) {
      assert.equal(answer.headers['retry-after'], '1');
      assert.match(JSON.parse(answer.body).detail, /rolled back, nothing stored: retry/);
      assert.equal(otherOutcome, 'went on');
      assert.deepEqual(stored, [{ x: 1 }, { x: 2 }]);
    } else {
      assert.equal(answer.statusCode, 200, answer.body);
      assert.ok(process.env.TEST_CITUS, 'on one PostgreSQL the batch is the one rolled back');
      assert.equal(otherOutcome, '40P01');
      assert.deepEqual(stored, [{ x: 1 }, { x: 2 }, { x: 10 }, { x: 20 }]);
    }
  });
  it('the rollup folder gives way to a write holding a minute, and folds it once the write is done', async () => {
    const device = await h.createDevice();
    const hour = Math.floor((Date.now() - 3 * 3_600_000) / 3_600_000) * 3_600_000;
    const stored = await h.app.inject({
      method: 'POST',
      url: '/data/',
      payload: [{ device_id: device, x: 5, y: 0, z: 0, timestamp: new Date(hour + 1000).toISOString() }],
    });
    assert.equal(stored.statusCode, 200, stored.body);
    const unfolded = () =>
      h.db
        .selectFrom('reading_minutes')
        .select('folded')
        .where('device_id', '=', device)
        .executeTakeFirstOrThrow();

    // A write holds the minute (as a batch merging into it does until it commits), and goes on holding
    // it until the fold step has settled: a folder that waited for the write would never settle (a
    // minute bounds the test). The step must give way by its own lock wait (lock_not_available, 55P03),
    // not by a deadlock (40P01, which would roll back a batch's transaction instead) nor by folding
    // after the write. No clock: a loaded machine delays both sides alike.
    await other.query('begin');
    await other.query('update reading_minutes set readings = readings where device_id = $1', [device]);
    const fold = foldRollups(h.db, 'postgres', 5000).then(
      () => 'waited and folded',
      (error: { code?: string }) => error.code,
    );
    const outcome = await Promise.race([fold, sleep(60_000, 'still waiting after a minute')]);
    await other.query('commit');
    assert.equal(outcome, '55P03', 'the fold step gave way while the write held the minute');
    assert.equal(Number((await unfolded()).folded), 0);

    await foldAll(h);
    assert.equal(Number((await unfolded()).folded), 1);
    const hourRow = await h.db
      .selectFrom('reading_hours')
      .select(['readings', 'x_min'])
      .where('device_id', '=', device)
      .executeTakeFirstOrThrow();
    assert.deepEqual({ readings: Number(hourRow.readings), x_min: hourRow.x_min }, { readings: 1, x_min: 5 });
  });
});
