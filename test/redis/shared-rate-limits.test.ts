import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ENGINES, engineSkipReason, Harness, onEachEngine, uniqueEmail } from '../helpers/harness.js';
import { freePort, sample } from '../helpers/mqtt.js';
import { redisSkipReason, SHARED_REDIS, uniqueRedisPrefix } from '../helpers/redis.js';

const redisSkip = await redisSkipReason();
const REGISTRATIONS = 3;

/** Registers `count` new accounts from one address; answers the statuses. */
async function register(h: Harness, count: number): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < count; i++) {
    const response = await h.post('/auth/register', { email: uniqueEmail(), password: 'a-good-password' });
    statuses.push(response.statusCode);
  }
  return statuses;
}

const refusedAfterLimit = [...Array(REGISTRATIONS).fill(201), 429];

// A key prefix of each engine's own: the two suites count the same client address.
for (const engine of ENGINES) {
  describe(`rate limits counted in Redis [${engine}]`, {
    skip: redisSkip || engineSkipReason(engine),
  }, () => {
    const h = new Harness(engine);
    const shared = { REDIS_URL: SHARED_REDIS, REDIS_KEY_PREFIX: uniqueRedisPrefix() };
    before(() => h.start({ ...shared, REGISTER_LIMIT_PER_ADDRESS: String(REGISTRATIONS) }));
    after(() => h.stop());

    it('shows Redis in /ready and in the metrics', async () => {
      const ready = await h.get('/ready');
      assert.equal(ready.statusCode, 200);
      assert.deepEqual(ready.json().checks, { database: 'ok', redis: 'ok' });
      assert.equal(await sample(h, 'statistics_redis_up'), 1);
    });

    it('keeps a tripped limit across a restart of the process', async () => {
      assert.deepEqual(await register(h, REGISTRATIONS + 1), refusedAfterLimit);
      await h.close();
      await h.open({ ...shared, REGISTER_LIMIT_PER_ADDRESS: String(REGISTRATIONS) });
      const again = await h.post('/auth/register', { email: uniqueEmail(), password: 'a-good-password' });
      assert.equal(again.statusCode, 429, again.body);
      assert.match(again.json().detail, /registration per client address limit allows 3 per 900 s/);
    });
  });
}

const unreachable = `redis://127.0.0.1:${await freePort()}`;

onEachEngine(
  'with REDIS_URL on a Redis that does not answer',
  (h) => {
    it('stays ready, shows Redis unavailable, and still counts in memory', async () => {
      const ready = await h.get('/ready');
      assert.equal(ready.statusCode, 200, ready.body);
      assert.deepEqual(ready.json().checks, { database: 'ok', redis: 'unavailable' });
      assert.equal(await sample(h, 'statistics_redis_up'), 0);
      assert.deepEqual(await register(h, REGISTRATIONS + 1), refusedAfterLimit);
    });
  },
  { REDIS_URL: unreachable, REGISTER_LIMIT_PER_ADDRESS: String(REGISTRATIONS) },
);
