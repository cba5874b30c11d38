import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ANSWER_FRESH_MS } from '../../src/health/database-probe.js';
import { ownPostgresSkipReason, serverOnOwnPostgres } from '../helpers/own-postgres.js';
import { type Answer, alive, call, notPrompt503 } from '../helpers/server.js';

// Issue 5, item 7: while PostgreSQL is down, requests answer 503 with Retry-After within 2 s (no
// hang, no crash) and /health says so; when it is back, the service recovers without a restart.
// The test owns its PostgreSQL: its own data directory and port, never the machine's shared server.

const ANSWER_WITHIN_MS = 2000;
const RECOVERY_WITHIN_MS = 10_000;

describe('a PostgreSQL outage: 503 with Retry-After at once, recovery without a restart', {
  skip: ownPostgresSkipReason(),
}, () => {
  const { postgres, server } = serverOnOwnPostgres();

  it('answers 503 while the database is down and recovers when it is back', async (t) => {
    const base = server().url;
    const device = await call(base, 'POST /device/', { name: 'outage' });
    assert.equal(device.status, 200, device.body);
    const deviceId: number = JSON.parse(device.body).id;
    const first = await call(base, 'POST /data/', { device_id: deviceId, x: 42, y: 1, z: 2 });
    assert.equal(first.status, 200, first.body);
    assert.equal((await call(base, 'GET /health')).status, 200);

    postgres.stop('fast');

    const reading = (x: number) => ({ device_id: deviceId, x, y: 1, z: 2 });
    const probes: [string, unknown?][] = [
      ['POST /data/', reading(-1)],
      ['POST /data/', [reading(-2), reading(-3)]],
      [`GET /analyze_statistics/?device_id=${deviceId}`],
      ['GET /analyze_statistics/?attr=all'],
      [`GET /data/?device_id=${deviceId}`],
      ['POST /device/', { name: 'during the outage' }],
    ];
    const answers: Answer[] = [];
    // Three rounds one after the other, then a burst of concurrent writes: none may wait on the others.
    for (let round = 0; round < 3; round++) {
      for (const [route, body] of probes) answers.push(await call(base, route, body));
    }
    answers.push(
      ...(await Promise.all(
        Array.from({ length: 30 }, (_, i) => call(base, 'POST /data/', reading(-10 - i))),
      )),
    );
    const health = await call(base, 'GET /health');
    t.diagnostic(
      `while down: ${answers.length} requests, slowest ${Math.max(...answers.map((a) => a.ms))} ms; ` +
        `/health ${health.status} in ${health.ms} ms`,
    );

    assert.ok(
      alive(server()),
      `the service exited while PostgreSQL was down:\n${server().output().slice(-3000)}`,
    );
    const wrong = notPrompt503(answers, ANSWER_WITHIN_MS);
    assert.deepEqual(
      wrong.slice(0, 10),
      [],
      `${wrong.length} of ${answers.length} answers were not a prompt 503`,
    );
    assert.equal(health.status, 503, health.body);
    assert.ok(health.ms <= ANSWER_WITHIN_MS, `/health took ${health.ms} ms`);
    assert.equal(JSON.parse(health.body).status, 'unavailable');

    postgres.start();
    const restarted = Date.now();
    let recovered: Answer | undefined;
    let acknowledged = 1;
    const meanwhile: string[] = [];
    while (Date.now() - restarted < RECOVERY_WITHIN_MS) {
      const answer = await call(base, 'POST /data/', reading(43));
      if (answer.status !== 200 && answer.status !== 503) meanwhile.push(`${answer.status} ${answer.body}`);
      if (answer.status === 200) {
        recovered = answer;
        acknowledged++;
        break;
      }
      await sleep(200);
    }
    const recoveredAfter = Date.now() - restarted;
    t.diagnostic(`writes succeed again ${recoveredAfter} ms after PostgreSQL is back`);
    assert.ok(
      recovered,
      `no successful write within ${RECOVERY_WITHIN_MS} ms of PostgreSQL being back:\n` +
        `${server().output().slice(-3000)}\n${postgres.logTail()}`,
    );
    assert.deepEqual(meanwhile, [], 'answers other than 503 while PostgreSQL was coming back');
    const stats = await call(base, `GET /analyze_statistics/?device_id=${deviceId}`);
    assert.equal(stats.status, 200, stats.body);
    // The reading from before the outage is still there; nothing answered 503 was stored.
    assert.deepEqual(
      {
        count: JSON.parse(stats.body).count,
        min: JSON.parse(stats.body).min,
        max: JSON.parse(stats.body).max,
      },
      { count: acknowledged, min: 42, max: 43 },
    );
    assert.equal((await call(base, 'GET /health')).status, 200);
    assert.ok(alive(server()), 'the same process served throughout');
  });

  it('/health turns 503 as soon as its last answer is too old, never 200 while down, and 200 once back', async (t) => {
    const base = server().url;
    // Probes keep the answer fresh (src/health/database-probe.ts): the outage begins behind a fresh 200.
    for (let i = 0; i < 5; i++) assert.equal((await call(base, 'GET /health')).status, 200);
    postgres.stop('fast');
    const stopped = Date.now();
    // Each probe with when it was sent, in ms after PostgreSQL was down.
    const whileDown: (Answer & { sent: number })[] = [];
    while (Date.now() - stopped < ANSWER_FRESH_MS + 1000) {
      const sent = Date.now() - stopped;
      whileDown.push({ ...(await call(base, 'GET /health')), sent });
      await sleep(20);
    }
    const first503 = whileDown.findIndex((answer) => answer.status === 503);
    t.diagnostic(`${whileDown.length} probes while down; the first 503 was probe ${first503 + 1}`);
    assert.ok(first503 >= 0, 'no 503 while PostgreSQL was down');
    // A success is reused for ANSWER_FRESH_MS at most; the answers before the first 503 came within it.
    const late = whileDown.slice(0, first503).filter((answer) => answer.sent > ANSWER_FRESH_MS);
    assert.deepEqual(late, [], 'a 200 from an answer older than the freshness bound');
    assert.deepEqual(
      whileDown.slice(first503).map((answer) => answer.status),
      Array(whileDown.length - first503).fill(503),
      'a failure is never reused as a success, nor a success after it',
    );

    postgres.start();
    const restarted = Date.now();
    let health: Answer | undefined;
    while (health?.status !== 200 && Date.now() - restarted < RECOVERY_WITHIN_MS) {
      health = await call(base, 'GET /health');
      if (health.status !== 200) await sleep(100);
    }
    assert.equal(health?.status, 200, health?.body);
    t.diagnostic(`/health 200 again ${Date.now() - restarted} ms after PostgreSQL is back`);
  });
});
