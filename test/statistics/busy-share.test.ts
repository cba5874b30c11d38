import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Harness, onEachEngine } from '../helpers/harness.js';

const READINGS = 10_000;
const METRICS_TOKEN = 'metrics-token-0123456789';
const BATCH = 10_000;

onEachEngine(
  'STATISTICS_BUSY_SHARE: a heavy query leaves its slot resting while readings arrive',
  (h: Harness) => {
    let device: number;
    let other: number;
    const statistics = () => h.get(`/analyze_statistics/?device_id=${device}&attr=x`);
    const scrape = async () =>
      (await h.inject({ url: '/metrics', headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).body;

    before(async () => {
      device = await h.createDevice();
      other = await h.createDevice();
      for (let first = 0; first < READINGS; first += BATCH) {
        const batch = Array.from({ length: BATCH }, (_, i) => ({
          device_id: device,
          x: first + i,
          y: 0,
          z: 0,
        }));
        assert.equal((await h.post('/data/', batch)).statusCode, 200);
      }
    });

    /**
     * One heavy query, answered, then another right after it, while another device's readings keep
     * arriving: every query on the heavy lane, one at a time, none waiting (the folder off: it plays no
     * part here). Answers the second one, and how long the first took (its run and more).
     */
    async function oneAfterAnother(share: string) {
      await h.close();
      await h.open({
        LOG_LEVEL: 'silent',
        ROLLUP_FOLD_INTERVAL_MS: '0',
        STATISTICS_LIGHT_READINGS: '0',
        STATISTICS_CONCURRENCY: '1',
        STATISTICS_QUEUE: '0',
        STATISTICS_BUSY_SHARE: share,
        METRICS_TOKEN,
      });
      // Before readings arrive (no rest): SQLite's worker thread starts, whose start would count in the run.
      assert.equal((await statistics()).statusCode, 200);
      let done = false;
      const feeding = (async () => {
        for (let k = 0; !done; k++) {
          assert.equal((await h.post('/data/', { device_id: other, x: k, y: 0, z: 0 })).statusCode, 200);
          await sleep(20);
        }
      })();
      try {
        await sleep(100);
        const started = performance.now();
        const first = await statistics();
        const firstMs = performance.now() - started;
        assert.equal(first.statusCode, 200, first.body);
        const body = first.json();
        assert.equal(body.count, READINGS);
        assert.equal(body.sum, (READINGS * (READINGS - 1)) / 2);
        assert.equal(body.median, (READINGS - 1) / 2);
        return { next: await statistics(), firstMs };
      } finally {
        done = true;
        await feeding;
      }
    }

    it('answers the next query at once at 100%, and no slot rests', async () => {
      const { next } = await oneAfterAnother('100');
      assert.equal(next.statusCode, 200, next.body);
      assert.equal(next.json().count, READINGS);
      const metrics = await scrape();
      assert.match(metrics, /^statistics_heavy_queries_running\{lane="heavy"\} 0$/m);
      assert.match(metrics, /^statistics_heavy_slots_resting\{lane="heavy"\} 0$/m);
    });

    it('at 1%, refuses the next query with 503 while the slot rests for 99 times the run, then serves it', async () => {
      const { next, firstMs } = await oneAfterAnother('1');
      const restEnds = performance.now() + 99 * firstMs;
      assert.equal(next.statusCode, 503, next.body);
      assert.equal(next.headers['retry-after'], '1');
      // The slot runs nothing while it rests: the answer and the metrics say so.
      assert.equal(
        next.json().detail,
        '0 statistics queries are running, 1 slot rests after a query while readings arrive ' +
          '(STATISTICS_BUSY_SHARE) and 0 are waiting: retry shortly',
      );
      const metrics = await scrape();
      assert.match(metrics, /^statistics_heavy_queries_running\{lane="heavy"\} 0$/m);
      assert.match(metrics, /^statistics_heavy_slots_resting\{lane="heavy"\} 1$/m);
      assert.match(metrics, /^statistics_heavy_queries_waiting\{lane="heavy"\} 0$/m);
      // The rest (99 times a run no longer than the first answer took) ends: the lane serves again.
      let again = await statistics();
      while (again.statusCode === 503 && performance.now() < restEnds + 10_000) {
        await sleep(100);
        again = await statistics();
      }
      assert.equal(again.statusCode, 200, again.body);
      assert.equal(again.json().count, READINGS);
    });
  },
  { LOG_LEVEL: 'silent' },
);
