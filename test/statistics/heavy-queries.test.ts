import assert from 'node:assert/strict';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { before, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LightMyRequestResponse } from 'fastify';
import { type Harness, onEachEngine } from '../helpers/harness.js';

const READINGS = 300_000;
const BATCH = 10_000;
const HEAVY_QUERY = 'attr=all&percentiles=5,25,75,95,99';
const METRICS_TOKEN = 'metrics-token-0123456789';

/** A request and how long it took, in milliseconds. */
async function timed(request: Promise<LightMyRequestResponse>) {
  const started = performance.now();
  const response = await request;
  return { response, ms: performance.now() - started };
}

onEachEngine(
  'statistics and series run off the event loop, bounded and with a deadline',
  (h: Harness) => {
    let device: number;
    let quiet: number;
    let aloneMs: number;
    const heavy = () => `/analyze_statistics/?device_id=${device}&${HEAVY_QUERY}`;

    before(async () => {
      device = await h.createDevice();
      quiet = await h.createDevice();
      for (let first = 0; first < READINGS; first += BATCH) {
        const batch = Array.from({ length: BATCH }, (_, i) => {
          const n = first + i;
          return { device_id: device, x: (n * 7919) % 10_007, y: n % 101, z: -n };
        });
        assert.equal((await h.post('/data/', batch)).statusCode, 200);
      }
      assert.equal((await h.post('/data/', { device_id: quiet, x: 1, y: 2, z: 3 })).statusCode, 200);
      // The first query starts a worker thread (SQLite); the second shows what one query costs alone.
      await h.get(heavy());
      const alone = await timed(h.get(heavy()));
      assert.equal(alone.response.statusCode, 200, alone.response.body);
      assert.equal(alone.response.json().x.count, READINGS);
      aloneMs = alone.ms;
    });

    it('answers /health and single readings promptly while heavy queries run', async () => {
      // On the event loop, each of these queries would hold every other request for its whole run.
      assert.ok(aloneMs > 60, `one heavy query took ${aloneMs.toFixed(0)} ms: too few readings to tell`);
      const loop = monitorEventLoopDelay({ resolution: 10 });
      loop.enable();
      const running = Promise.all(Array.from({ length: 6 }, () => timed(h.get(heavy()))));
      let done = false;
      void running.finally(() => {
        done = true;
      });
      // Probes at fixed intended times: a blocked event loop makes them late, and that counts.
      const probes: Array<Promise<number>> = [];
      const start = performance.now();
      for (let k = 0; !done; k++) {
        const intended = start + k * 20;
        await sleep(Math.max(0, intended - performance.now()));
        const answered = (request: Promise<LightMyRequestResponse>) =>
          request.then((response) => {
            assert.equal(response.statusCode, 200, response.body);
            return performance.now() - intended;
          });
        probes.push(answered(h.get('/health')));
        probes.push(answered(h.post('/data/', { device_id: quiet, x: k, y: 0, z: 0 })));
      }
      const answers = await running;
      loop.disable();
      for (const { response } of answers) assert.equal(response.statusCode, 200, response.body);
      const latencies = (await Promise.all(probes)).sort((a, b) => a - b);
      const median = latencies[Math.floor((latencies.length - 1) / 2)] as number;
      const stalled = loop.max / 1e6;
      const heavyMs = Math.max(...answers.map((a) => a.ms));
      assert.ok(latencies.length >= 10, `only ${latencies.length} probes while the queries ran`);
      // On the event loop, each query would stop the loop for its whole run, and a probe would wait
      // for the query in its way: half a query's time at the median. A machine whose cores are busy
      // with other work delays some probes (and the loop) too, so the slowest are reported, not held.
      const seen =
        `probes: median ${median.toFixed(0)} ms, slowest ${(latencies.at(-1) as number).toFixed(0)} ms; ` +
        `event loop stalled ${stalled.toFixed(0)} ms at most; one heavy query alone ${aloneMs.toFixed(0)} ms, ` +
        `the six in ${heavyMs.toFixed(0)} ms`;
      assert.ok(median < aloneMs / 4, seen);
    });

    it('answers 503 with a detail at STATISTICS_TIMEOUT_MS, and the next query is served', async () => {
      await h.close();
      await h.open({ STATISTICS_TIMEOUT_MS: '15' });
      const late = await timed(h.get(heavy()));
      assert.equal(late.response.statusCode, 503, late.response.body);
      assert.match(late.response.json().detail, /STATISTICS_TIMEOUT_MS \(15 ms\)/);
      assert.ok(late.response.headers['retry-after']);
      // Answered at the deadline, not after the query: within a second, or the query's own time if longer.
      assert.ok(
        late.ms < Math.max(aloneMs, 1000),
        `answered after ${late.ms.toFixed(0)} ms; the query alone takes ${aloneMs.toFixed(0)} ms`,
      );
      // Give the next query time to start a worker (SQLite) or a connection without hitting the deadline.
      await h.close();
      await h.open({ STATISTICS_TIMEOUT_MS: '10000' });
      const small = await h.get(`/analyze_statistics/?device_id=${quiet}&attr=y`);
      assert.equal(small.statusCode, 200, small.body);
      assert.ok(small.json().count >= 1);
    });

    it('refuses what exceeds STATISTICS_CONCURRENCY and STATISTICS_QUEUE with 503 and Retry-After', async () => {
      await h.close();
      await h.open({ STATISTICS_CONCURRENCY: '1', STATISTICS_QUEUE: '1', METRICS_TOKEN });
      const answers = await Promise.all(Array.from({ length: 6 }, () => h.get(heavy())));
      const ok = answers.filter((r) => r.statusCode === 200);
      const busy = answers.filter((r) => r.statusCode === 503);
      assert.equal(ok.length + busy.length, 6, answers.map((r) => r.body).join('\n'));
      assert.ok(ok.length >= 2, 'the running query and the one waiting are answered');
      assert.ok(busy.length >= 3, `${busy.length} refused: one runs, one waits, the others must be refused`);
      for (const response of busy) {
        assert.equal(response.headers['retry-after'], '1');
        assert.equal(response.json().detail, '1 statistics query is running and 1 is waiting: retry shortly');
      }
      const metrics = await h.inject({
        url: '/metrics',
        headers: { authorization: `Bearer ${METRICS_TOKEN}` },
      });
      assert.match(
        metrics.body,
        new RegExp(
          `statistics_heavy_query_rejections_total\\{query="statistics",lane="heavy"\\} ${busy.length}\\n`,
        ),
      );
      // Once they are done, a query is served again.
      assert.equal((await h.get(`/analyze_statistics/?device_id=${quiet}`)).statusCode, 200);
    });
  },
  { LOG_LEVEL: 'silent' },
);
