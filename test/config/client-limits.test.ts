import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { it } from 'node:test';
import { type Harness, onEachEngine } from '../helpers/harness.js';

/**
 * What the README promises of the settings and limits, seen from a client: the defaults and each
 * override change what the API answers.
 */

const payloadOf = (token: string): { exp: number; iat: number; jti: string } =>
  JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString('utf8'));

const T0 = Date.UTC(2026, 0, 1);
const iso = (ms: number) => new Date(ms).toISOString();

/** A series of minute buckets over [T0, T0 + endMs] with every bucket answered (fill=null). */
const minuteSeries = (h: Harness, device: number, endMs: number) =>
  h.get(
    `/analyze_statistics/series?device_id=${device}&bucket=1m&fill=null&start_date=${iso(T0)}&end_date=${iso(T0 + endMs)}`,
  );

onEachEngine('settings: the documented defaults', (h: Harness) => {
  it('takes a batch over 1 MiB on POST /data/, and answers 413 to a body over 1 MiB anywhere else', async () => {
    const device = await h.createDevice();
    const batch = Array.from({ length: 10_000 }, (_, i) => ({
      device_id: device,
      x: 0.123456789012345 + i,
      y: -98765.4321098765,
      z: 1.5e-300,
      timestamp: iso(T0 + i * 1001),
    }));
    const body = JSON.stringify(batch);
    assert.ok(Buffer.byteLength(body) > 1_048_576, `the batch is only ${Buffer.byteLength(body)} bytes`);
    const stored = await h.post('/data/', body);
    assert.equal(stored.statusCode, 200, stored.body.slice(0, 300));
    assert.deepEqual(stored.json(), { stored: 10_000 });
    const large = await h.post('/device/', JSON.stringify({ name: 'big', padding: 'p'.repeat(1_048_576) }));
    assert.equal(large.statusCode, 413, large.body);
    assert.equal(typeof large.json().detail, 'string');
  });

  it('answers a series of exactly 10,000 buckets, and 422 for one more', async () => {
    const device = await h.createDevice();
    assert.equal(
      (await h.post('/data/', { device_id: device, x: 1, y: 1, z: 1, timestamp: iso(T0 + 5 * 60_000) }))
        .statusCode,
      200,
    );
    const lastOfTenThousand = 9_999 * 60_000 + 59_999;
    const exact = await minuteSeries(h, device, lastOfTenThousand);
    assert.equal(exact.statusCode, 200, exact.body.slice(0, 300));
    const buckets = exact.json();
    assert.equal(buckets.length, 10_000);
    assert.equal(Date.parse(buckets.at(-1).start), T0 + 9_999 * 60_000);
    const over = await minuteSeries(h, device, lastOfTenThousand + 1);
    assert.equal(over.statusCode, 422, over.body);
    assert.deepEqual(over.json().detail[0].loc, ['query', 'bucket']);
    assert.match(over.json().detail[0].msg, /10000/);
  });

  it('takes path parameters of up to 200 characters, and answers 414 beyond', async () => {
    for (const path of ['/device/', '/analyze_statistics/']) {
      const longest = await h.get(`${path}${'7'.repeat(200)}`);
      assert.equal(longest.statusCode, 422, `${path}: ${longest.body}`);
      const tooLong = await h.get(`${path}${'7'.repeat(201)}`);
      assert.equal(tooLong.statusCode, 414, `${path}: ${tooLong.body}`);
      assert.equal(typeof tooLong.json().detail, 'string');
    }
  });

  it('keeps a logged-out token on the deny list until it expires, and forgets entries that have expired', async () => {
    const user = await h.signUp();
    const expired = 'e'.repeat(64);
    const current = 'c'.repeat(64);
    await h.db
      .insertInto('revoked_tokens')
      .values([
        { token_digest: expired, expires_at: Date.now() - 1000 },
        { token_digest: current, expires_at: Date.now() + 60_000 },
      ])
      .execute();
    const logout = await h.inject({
      method: 'POST',
      url: '/auth/jwt/logout',
      headers: { authorization: `Bearer ${user.token}` },
    });
    assert.equal(logout.statusCode, 204, logout.body);
    const rows = await h.db.selectFrom('revoked_tokens').selectAll().execute();
    const expiresAt = new Map(rows.map((r) => [r.token_digest, Number(r.expires_at)]));
    // Listed by its jti (tokens/deny list: src/users/tokens.ts).
    const digest = createHash('sha256')
      .update(`jti:${payloadOf(user.token).jti}`)
      .digest('hex');
    assert.deepEqual([...expiresAt.keys()].sort(), [current, digest].sort(), 'the expired entry is gone');
    assert.equal(expiresAt.get(digest), payloadOf(user.token).exp * 1000, 'kept until the token expires');
    assert.equal((await h.get('/users/me', user.token)).statusCode, 401);
  });
});

onEachEngine(
  'settings: overrides',
  (h: Harness) => {
    it('issues tokens for JWT_LIFETIME_SECONDS', async () => {
      const before = Math.floor(Date.now() / 1000);
      const { token } = await h.signUp();
      const { exp, iat } = payloadOf(token);
      assert.equal(exp - iat, 120);
      assert.ok(exp >= before + 120 && exp <= Math.ceil(Date.now() / 1000) + 120, `exp ${exp}`);
    });

    it('takes device timestamps up to MAX_FUTURE_SKEW_SECONDS ahead, and refuses them beyond', async () => {
      const device = await h.createDevice();
      const ahead = (seconds: number) =>
        h.post('/data/', {
          device_id: device,
          x: 1,
          y: 1,
          z: 1,
          timestamp: iso(Date.now() + seconds * 1000),
        });
      assert.equal((await ahead(1800)).statusCode, 200, 'half an hour ahead (the default allows 300 s)');
      const refused = await ahead(3700);
      assert.equal(refused.statusCode, 422, refused.body);
      assert.match(refused.json().detail[0].msg, /3600 s ahead/);
    });

    it('answers series of up to MAX_SERIES_BUCKETS buckets', async () => {
      const device = await h.createDevice();
      await h.post('/data/', { device_id: device, x: 1, y: 1, z: 1, timestamp: iso(T0) });
      assert.equal((await minuteSeries(h, device, 5 * 60_000 - 1)).json().length, 5);
      const over = await minuteSeries(h, device, 5 * 60_000);
      assert.equal(over.statusCode, 422, over.body);
      assert.match(over.json().detail[0].msg, /more than 5 buckets/);
    });

    it('limits bodies to BODY_LIMIT_BYTES, and batches on POST /data/ to BATCH_BODY_LIMIT_BYTES', async () => {
      const device = await h.createDevice();
      const readings = (n: number) =>
        JSON.stringify(Array.from({ length: n }, (_, i) => ({ device_id: device, x: i, y: 0, z: 0 })));
      const small = readings(60);
      const large = readings(120);
      assert.ok(small.length > 2048 && small.length < 4096 && large.length > 4096);
      assert.equal((await h.post('/data/', small)).statusCode, 200);
      assert.equal((await h.post('/data/', large)).statusCode, 413);
      assert.equal((await h.post('/device/', { name: 'n', padding: 'p'.repeat(2048) })).statusCode, 413);
    });
  },
  {
    JWT_LIFETIME_SECONDS: '120',
    MAX_FUTURE_SKEW_SECONDS: '3600',
    MAX_SERIES_BUCKETS: '5',
    BODY_LIMIT_BYTES: '2048',
    BATCH_BODY_LIMIT_BYTES: '4096',
  },
);

onEachEngine(
  'settings: MAX_FUTURE_SKEW_SECONDS=0',
  (h: Harness) => {
    it('refuses any device timestamp ahead of the server clock, and takes one just behind it', async () => {
      const device = await h.createDevice();
      const at = (offsetMs: number) =>
        h.post('/data/', { device_id: device, x: 1, y: 1, z: 1, timestamp: iso(Date.now() + offsetMs) });
      assert.equal((await at(2000)).statusCode, 422);
      assert.equal((await at(-1000)).statusCode, 200);
    });
  },
  { MAX_FUTURE_SKEW_SECONDS: '0' },
);
