import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { engineSkipReason, Harness } from '../helpers/harness.js';

const MINUTE_MS = 60_000;

/**
 * Another writer (the rollup folder marking minutes, an operator's script) holds a minute rollup row
 * that a batch needs, then asks for one the batch already holds: PostgreSQL ends the deadlock by
 * rolling one of them back. The batch's answer is then a 503 to retry, with nothing of it stored,
 * never a 500.
 */
describe('a batch that loses a deadlock [postgres]', { skip: engineSkipReason('postgres') }, () => {
  const h = new Harness('postgres');
  let other: pg.Client;
  before(async () => {
    await h.start();
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
});
