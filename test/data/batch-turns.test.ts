import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { type Harness, onEachEngine } from '../helpers/harness.js';

/** Readings in one batch: a body of some 3 KB, well over the 1 KB of a single reading's lane. */
const BATCH = 50;

onEachEngine(
  'ingest: batches take turns in the order they arrived (SQLite), and a full line answers 503',
  (h: Harness) => {
    let device: number;
    /** Readings stored so far in this file (the tests run in order). */
    let stored = 0;
    const batch = (first: number) =>
      Array.from({ length: BATCH }, (_, i) => ({ device_id: device, x: first + i, y: 0.5, z: -1.25 }));
    const storedCount = async () =>
      (await h.get(`/analyze_statistics/?device_id=${device}`)).json<{ count: number }>().count;

    before(async () => {
      device = await h.createDevice();
    });

    it('on SQLite stores the batches that found a place in the line, in their order, and refuses the rest with 503', async () => {
      const answers = await Promise.all(
        Array.from({ length: 6 }, (_, k) => h.post('/data/', batch(k * 1000))),
      );
      if (h.engine === 'postgres') {
        // PostgreSQL stores asynchronously, in its pool's order: batches do not take turns there.
        assert.deepEqual(
          answers.map((r) => r.statusCode),
          [200, 200, 200, 200, 200, 200],
        );
        assert.equal(await storedCount(), 6 * BATCH);
        stored += 6 * BATCH;
        return;
      }
      // INGEST_BATCH_QUEUE=2: the first two wait for their turns, the four after them find the line full.
      assert.deepEqual(
        answers.map((r) => r.statusCode),
        [200, 200, 503, 503, 503, 503],
      );
      const [first, second] = answers.slice(0, 2).map((r) => r.json<{ stored: number; ids: number[] }>());
      assert.equal(first?.stored, BATCH);
      assert.equal(second?.stored, BATCH);
      assert.ok(
        Math.max(...(first?.ids ?? [])) < Math.min(...(second?.ids ?? [])),
        'the batch that arrived first is stored first',
      );
      for (const response of answers.slice(2)) {
        assert.equal(response.headers['retry-after'], '1');
        assert.match(String(response.headers['content-type']), /^application\/json/);
        assert.match(response.json<{ detail: string }>().detail, /INGEST_BATCH_QUEUE/);
      }
      assert.equal(await storedCount(), 2 * BATCH, 'a refused batch stores nothing');
      stored += 2 * BATCH;
    });

    it('takes a batch again once the line has room', async () => {
      const response = await h.post('/data/', batch(10_000));
      assert.equal(response.statusCode, 200, response.body);
      stored += BATCH;
      assert.equal(await storedCount(), stored);
    });

    it('lets single readings by, however many come at once', async () => {
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, k) => h.post('/data/', { device_id: device, x: k, y: 0, z: 0 })),
      );
      assert.deepEqual(new Set(answers.map((r) => r.statusCode)), new Set([200]));
      assert.equal(await storedCount(), stored + 20);
    });
  },
  { INGEST_BATCH_QUEUE: '2' },
);
