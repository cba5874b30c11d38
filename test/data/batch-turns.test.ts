import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { type Harness, onEachEngine } from '../helpers/harness.js';

/** Readings in one batch: a body of some 3 KB, well over the 1 KB of a single reading's lane. */
const BATCH = 50;

onEachEngine(
  'ingest: batches take turns in the order they arrived, and a full line answers 503',
  (h: Harness) => {
    let device: number;
    const batch = (first: number) =>
      Array.from({ length: BATCH }, (_, i) => ({ device_id: device, x: first + i, y: 0.5, z: -1.25 }));
    const storedCount = async () =>
      (await h.get(`/analyze_statistics/?device_id=${device}`)).json<{ count: number }>().count;

    before(async () => {
      device = await h.createDevice();
    });

    it('stores the batches that found a place in the line, in their order, and refuses the rest with 503', async () => {
      const answers = await Promise.all(Array.from({ length: 6 }, (_, k) => h.post('/data/', batch(k * 1000))));
      const stored = answers.filter((r) => r.statusCode === 200);
      const refused = answers.filter((r) => r.statusCode === 503);
      // INGEST_BATCH_QUEUE=2: the first two wait for their turns, the four after them find the line full.
      assert.deepEqual(
        answers.map((r) => r.statusCode),
        [200, 200, 503, 503, 503, 503],
      );
      const [first, second] = stored.map((r) => r.json<{ stored: number; ids: number[] }>());
      assert.equal(first?.stored, BATCH);
      assert.equal(second?.stored, BATCH);
      assert.ok(
        Math.max(...(first?.ids ?? [])) < Math.min(...(second?.ids ?? [])),
        'the batch that arrived first is stored first',
      );
      for (const response of refused) {
        assert.equal(response.headers['retry-after'], '1');
        assert.match(String(response.headers['content-type']), /^application\/json/);
        assert.match(response.json<{ detail: string }>().detail, /INGEST_BATCH_QUEUE/);
      }
      assert.equal(await storedCount(), 2 * BATCH, 'a refused batch stores nothing');
    });

    it('takes a batch again once the line has room', async () => {
      const response = await h.post('/data/', batch(10_000));
      assert.equal(response.statusCode, 200, response.body);
      assert.equal(await storedCount(), 3 * BATCH);
    });

    it('lets single readings by, however many come at once', async () => {
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, k) => h.post('/data/', { device_id: device, x: k, y: 0, z: 0 })),
      );
      assert.deepEqual(new Set(answers.map((r) => r.statusCode)), new Set([200]));
      assert.equal(await storedCount(), 3 * BATCH + 20);
    });
  },
  { INGEST_BATCH_QUEUE: '2' },
);
