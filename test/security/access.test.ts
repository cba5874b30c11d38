import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { type Harness, onEachEngine, uniqueEmail } from '../helpers/harness.js';

const PASSWORD = 'a-good-password';

/** One login attempt, answered as it is (the harness's logIn throws on anything but 200). */
function attemptLogin(
  h: Harness,
  email: string,
  password: string,
  options: { remoteAddress?: string; headers?: Record<string, string> } = {},
): Promise<LightMyRequestResponse> {
  return h.inject({
    method: 'POST',
    url: '/auth/jwt/login',
    payload: new URLSearchParams({ username: email, password }).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...options.headers },
    ...(options.remoteAddress ? { remoteAddress: options.remoteAddress } : {}),
  });
}

function register(h: Harness, email: string, remoteAddress?: string): Promise<LightMyRequestResponse> {
  return h.inject({
    method: 'POST',
    url: '/auth/register',
    payload: JSON.stringify({ email, password: PASSWORD }),
    headers: { 'content-type': 'application/json' },
    ...(remoteAddress ? { remoteAddress } : {}),
  });
}

/** A 429 with a Retry-After of whole seconds in (0, windowSeconds] and a detail naming the limit. */
function assertLimited(response: LightMyRequestResponse, limitName: RegExp, windowSeconds: number): void {
  assert.equal(response.statusCode, 429, response.body);
  const retryAfter = response.headers['retry-after'];
  assert.equal(typeof retryAfter, 'string', 'a 429 carries Retry-After');
  assert.match(retryAfter as string, /^\d+$/, 'Retry-After is whole seconds');
  const seconds = Number(retryAfter);
  assert.ok(
    seconds > 0 && seconds <= windowSeconds,
    `Retry-After ${seconds} not within (0, ${windowSeconds}]`,
  );
  const detail = response.json().detail;
  assert.equal(typeof detail, 'string');
  assert.match(detail, limitName);
}

const ACCOUNT_LIMIT = /failed login per account and client address/;
const ADDRESS_LIMIT = /login per client address/;
const REGISTER_LIMIT = /registration per client address/;

// ---------------------------------------------------------------------------------------------
// Brute force
// ---------------------------------------------------------------------------------------------

onEachEngine(
  'rate limit: failed logins per account',
  (h: Harness) => {
    it('after 3 attempts that fail, the next one from that address is a 429 naming the limit', async () => {
      const { email } = await h.signUp();
      for (let i = 0; i < 3; i++) {
        const wrong = await attemptLogin(h, email, `wrong-password-${i}`);
        assert.equal(wrong.statusCode, 400, wrong.body);
        assert.equal(wrong.json().detail, 'LOGIN_BAD_CREDENTIALS');
      }
      assertLimited(await attemptLogin(h, email, 'wrong-password-3'), ACCOUNT_LIMIT, 900);
      // Guessing on from there is no use: the right password too is a 429 from that address.
      assertLimited(await attemptLogin(h, email, PASSWORD), ACCOUNT_LIMIT, 900);
    });

    it('lets the owner in with the right password from another address while a guesser is limited', async () => {
      const { email } = await h.signUp();
      const guesser = '198.51.100.66';
      for (let i = 0; i < 3; i++) await attemptLogin(h, email, 'wrong-password', { remoteAddress: guesser });
      assertLimited(await attemptLogin(h, email, 'guess', { remoteAddress: guesser }), ACCOUNT_LIMIT, 900);
      const owner = await attemptLogin(h, email, PASSWORD, { remoteAddress: '203.0.113.50' });
      assert.equal(owner.statusCode, 200, owner.body);
      assert.equal(typeof owner.json().access_token, 'string');
      // The owner's success does not lift the guesser's limit.
      assertLimited(await attemptLogin(h, email, 'guess', { remoteAddress: guesser }), ACCOUNT_LIMIT, 900);
    });

    it('counts an attempt before checking the password: 40 wrong passwords at once get 429s', async () => {
      const { email } = await h.signUp();
      const answers = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          attemptLogin(h, email, `wrong-${i}`, { remoteAddress: '198.51.100.40' }),
        ),
      );
      const statuses = answers.map((answer) => answer.statusCode);
      assert.equal(statuses.filter((status) => status === 400).length, 3, statuses.join(' '));
      assert.equal(statuses.filter((status) => status === 429).length, 37, statuses.join(' '));
    });

    it('leaves other accounts alone while one is limited', async () => {
      const victim = await h.signUp();
      const other = await h.signUp();
      for (let i = 0; i < 3; i++) await attemptLogin(h, victim.email, 'wrong-password');
      assertLimited(await attemptLogin(h, victim.email, PASSWORD), ACCOUNT_LIMIT, 900);
      const response = await attemptLogin(h, other.email, PASSWORD);
      assert.equal(response.statusCode, 200, response.body);
      assert.equal(typeof response.json().access_token, 'string');
    });

    it('counts failures for the account whatever the case of the e-mail', async () => {
      const email = uniqueEmail();
      await h.signUp(email);
      await attemptLogin(h, email.toUpperCase(), 'wrong-password');
      await attemptLogin(h, email, 'wrong-password');
      await attemptLogin(
        h,
        email.replace(/^./, (c) => c.toUpperCase()),
        'wrong-password',
      );
      assertLimited(await attemptLogin(h, email, PASSWORD), ACCOUNT_LIMIT, 900);
    });

    it('counts failures for unknown accounts too', async () => {
      const nobody = uniqueEmail();
      for (let i = 0; i < 3; i++) {
        assert.equal((await attemptLogin(h, nobody, 'whatever-password')).statusCode, 400);
      }
      assertLimited(await attemptLogin(h, nobody, 'whatever-password'), ACCOUNT_LIMIT, 900);
    });

    it('resets the failure count on a successful login', async () => {
      const { email } = await h.signUp();
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 2; i++) {
          assert.equal((await attemptLogin(h, email, 'wrong-password')).statusCode, 400);
        }
        const ok = await attemptLogin(h, email, PASSWORD);
        assert.equal(ok.statusCode, 200, `round ${round}: ${ok.body}`);
      }
      // Six failures in all, never three in a row: still not limited, and the limit still works.
      for (let i = 0; i < 3; i++) await attemptLogin(h, email, 'wrong-password');
      assertLimited(await attemptLogin(h, email, PASSWORD), ACCOUNT_LIMIT, 900);
    });
  },
  { LOGIN_LIMIT_PER_ACCOUNT: '3' },
);

// The window's end itself is tested on the limiter with a clock the test moves (test/http/rate-limits.test.ts).
onEachEngine(
  'rate limit: the window',
  (h: Harness) => {
    it('is RATE_LIMIT_WINDOW_SECONDS long: the 429 names it and Retry-After stays within it', async () => {
      const { email } = await h.signUp();
      for (let i = 0; i < 2; i++) await attemptLogin(h, email, 'wrong-password');
      const limited = await attemptLogin(h, email, PASSWORD);
      assertLimited(limited, ACCOUNT_LIMIT, 2);
      assert.match(limited.json().detail, /per 2 s/);
    });
  },
  { LOGIN_LIMIT_PER_ACCOUNT: '2', RATE_LIMIT_WINDOW_SECONDS: '2' },
);

onEachEngine(
  'rate limits of 0 are off',
  (h: Harness) => {
    it('never answers 429 past the default limits (10 failures, 100 logins, 20 registrations)', async () => {
      const address = '203.0.113.77';
      const users: string[] = [];
      for (let i = 0; i < 21; i++) {
        const email = uniqueEmail();
        const response = await register(h, email, address);
        assert.equal(response.statusCode, 201, `registration ${i + 1}: ${response.body}`);
        users.push(email);
      }
      const statuses = new Set<number>();
      for (let i = 0; i < 101; i++) {
        const wrong = i < 12 || i % 2 === 0;
        const email = wrong ? (users[0] as string) : (users[i % users.length] as string);
        const response = await attemptLogin(h, email, wrong ? 'wrong-password' : PASSWORD, {
          remoteAddress: address,
        });
        statuses.add(response.statusCode);
      }
      assert.deepEqual([...statuses].sort(), [200, 400]);
      assert.equal(
        (await attemptLogin(h, users[0] as string, PASSWORD, { remoteAddress: address })).statusCode,
        200,
      );
    });
  },
  { LOGIN_LIMIT_PER_ACCOUNT: '0', LOGIN_LIMIT_PER_ADDRESS: '0', REGISTER_LIMIT_PER_ADDRESS: '0' },
);

onEachEngine(
  'rate limit: logins per client address',
  (h: Harness) => {
    it('counts every attempt from one address, right or wrong, then answers 429 naming the address limit', async () => {
      const a = await h.signUp();
      const b = await h.signUp();
      const address = '203.0.113.10';
      assert.equal((await attemptLogin(h, a.email, PASSWORD, { remoteAddress: address })).statusCode, 200);
      assert.equal(
        (await attemptLogin(h, b.email, 'wrong-password', { remoteAddress: address })).statusCode,
        400,
      );
      assert.equal((await attemptLogin(h, b.email, PASSWORD, { remoteAddress: address })).statusCode, 200);
      const limited = await attemptLogin(h, a.email, PASSWORD, { remoteAddress: address });
      assertLimited(limited, ADDRESS_LIMIT, 900);
      assert.doesNotMatch(limited.json().detail, ACCOUNT_LIMIT);
      // The accounts themselves are fine from elsewhere.
      const elsewhere = await attemptLogin(h, a.email, PASSWORD, { remoteAddress: '203.0.113.11' });
      assert.equal(elsewhere.statusCode, 200, elsewhere.body);
    });

    it('ignores X-Forwarded-For unless TRUST_PROXY is set, so a client cannot pick its own address', async () => {
      const { email } = await h.signUp();
      const address = '203.0.113.20';
      for (let i = 0; i < 3; i++) {
        const response = await attemptLogin(h, email, PASSWORD, {
          remoteAddress: address,
          headers: { 'x-forwarded-for': `198.51.100.${i}` },
        });
        assert.equal(response.statusCode, 200, response.body);
      }
      assertLimited(
        await attemptLogin(h, email, PASSWORD, {
          remoteAddress: address,
          headers: { 'x-forwarded-for': '198.51.100.99' },
        }),
        ADDRESS_LIMIT,
        900,
      );
    });
  },
  { LOGIN_LIMIT_PER_ADDRESS: '3' },
);

for (const [trusted, setting] of [
  ['one hop', '1'],
  ['its address', '10.0.0.1'],
  ['its range', '10.0.0.0/8'],
] as const) {
  onEachEngine(
    `rate limit: logins per client address behind one proxy, trusted by ${trusted}`,
    (h: Harness) => {
      const proxy = '10.0.0.1';
      // The proxy appends the address it sees to whatever the client sent.
      const login = (email: string, client: string, sent?: string) =>
        attemptLogin(h, email, PASSWORD, {
          remoteAddress: proxy,
          headers: { 'x-forwarded-for': sent === undefined ? client : `${sent}, ${client}` },
        });

      it('takes the address the proxy saw, whatever the client wrote before it', async () => {
        const { email } = await h.signUp();
        for (let i = 0; i < 2; i++) {
          const response = await login(email, '198.51.100.7', `192.0.2.${i}`);
          assert.equal(response.statusCode, 200, response.body);
        }
        // A rotating X-Forwarded-For does not make a new client.
        assertLimited(await login(email, '198.51.100.7', '192.0.2.99'), ADDRESS_LIMIT, 900);
        // Another client behind the same proxy has its own count.
        assert.equal((await login(email, '198.51.100.8')).statusCode, 200);
      });
    },
    { LOGIN_LIMIT_PER_ADDRESS: '2', TRUST_PROXY: setting },
  );
}

onEachEngine(
  'rate limit: a client that is not the trusted proxy',
  (h: Harness) => {
    it('cannot choose its address with X-Forwarded-For', async () => {
      const { email } = await h.signUp();
      const login = (sent: string) =>
        attemptLogin(h, email, PASSWORD, {
          remoteAddress: '203.0.113.9',
          headers: { 'x-forwarded-for': sent },
        });
      for (let i = 0; i < 2; i++) assert.equal((await login(`192.0.2.${i}`)).statusCode, 200);
      assertLimited(await login('192.0.2.99'), ADDRESS_LIMIT, 900);
    });
  },
  { LOGIN_LIMIT_PER_ADDRESS: '2', TRUST_PROXY: '10.0.0.1' },
);

onEachEngine(
  'rate limit: registrations per client address',
  (h: Harness) => {
    it('allows 2 registrations from one address, then answers 429 naming the limit and creates nobody', async () => {
      const address = '203.0.113.30';
      for (let i = 0; i < 2; i++) {
        const response = await register(h, uniqueEmail(), address);
        assert.equal(response.statusCode, 201, response.body);
      }
      const users = await h.countRows('users');
      const email = uniqueEmail();
      assertLimited(await register(h, email, address), REGISTER_LIMIT, 900);
      assert.equal(await h.countRows('users'), users);
      const stored = await h.db
        .selectFrom('users')
        .select('id')
        .where('email', '=', email)
        .executeTakeFirst();
      assert.equal(stored, undefined);
      // Another address may still register.
      assert.equal((await register(h, email, '203.0.113.31')).statusCode, 201);
    });
  },
  { REGISTER_LIMIT_PER_ADDRESS: '2' },
);

// ---------------------------------------------------------------------------------------------
// Device ownership
// ---------------------------------------------------------------------------------------------

onEachEngine('device ownership: rename and delete', (h: Harness) => {
  const patch = (id: number | string, body: unknown, token?: string) =>
    h.inject({
      method: 'PATCH',
      url: `/device/${id}`,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      payload: JSON.stringify(body),
    });
  const remove = (id: number | string, token?: string) =>
    h.inject({
      method: 'DELETE',
      url: `/device/${id}`,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
  const storedDevice = (id: number) =>
    h.db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
  async function readingsOf(id: number): Promise<number> {
    const row = await h.db
      .selectFrom('data')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('device_id', '=', id)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }
  async function sendReadings(id: number, n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const response = await h.post('/data/', { device_id: id, x: i, y: 2 * i, z: 3 * i });
      assert.equal(response.statusCode, 200, response.body);
    }
  }
  async function superuser(): Promise<{ id: number; token: string }> {
    const user = await h.signUp();
    await h.db.updateTable('users').set({ is_superuser: true }).where('id', '=', user.id).execute();
    return user;
  }

  it('lets the owner rename a device: 200 and the new name stored', async () => {
    const owner = await h.signUp();
    const id = await h.createDevice(owner.token, 'old name');
    const response = await patch(id, { name: 'new name' }, owner.token);
    assert.equal(response.statusCode, 200, response.body);
    assert.equal(response.json().id, id);
    assert.equal(response.json().name, 'new name');
    assert.equal(response.json().user_id, owner.id);
    assert.equal((await storedDevice(id))?.name, 'new name');
    assert.equal((await h.get(`/device/${id}`)).json().name, 'new name');
  });

  it('lets the owner delete a device with all its readings, and only those', async () => {
    const owner = await h.signUp();
    const doomed = await h.createDevice(owner.token, 'doomed');
    const kept = await h.createDevice(owner.token, 'kept');
    await sendReadings(doomed, 5);
    await sendReadings(kept, 3);
    const batch = await h.post(
      '/data/',
      Array.from({ length: 20 }, (_, i) => ({ device_id: doomed, x: i, y: 0, z: 0 })),
    );
    assert.equal(batch.statusCode, 200, batch.body);
    assert.equal(await readingsOf(doomed), 25);
    const total = await h.countReadings();

    const response = await remove(doomed, owner.token);
    assert.equal(response.statusCode, 204, response.body);
    assert.equal(response.body, '');
    assert.equal(await storedDevice(doomed), undefined);
    assert.equal(await readingsOf(doomed), 0);
    assert.equal(await readingsOf(kept), 3);
    assert.equal(await h.countReadings(), total - 25);
    assert.ok(await storedDevice(kept));
    assert.equal((await h.get(`/device/${doomed}`)).statusCode, 404);
    assert.equal((await h.get(`/data/?device_id=${doomed}`)).body, '[]');
  });

  it('forgets a deleted device for ingest: a reading for it is a 404 and nothing is stored', async () => {
    const owner = await h.signUp();
    const id = await h.createDevice(owner.token);
    await sendReadings(id, 1); // ingest has now seen (and remembers) the device
    assert.equal((await remove(id, owner.token)).statusCode, 204);
    const total = await h.countReadings();

    const one = await h.post('/data/', { device_id: id, x: 1, y: 2, z: 3 });
    assert.equal(one.statusCode, 404, one.body);
    assert.match(one.json().detail, new RegExp(`Device ${id} not found`));
    const batch = await h.post('/data/', [{ device_id: id, x: 1, y: 2, z: 3 }]);
    assert.equal(batch.statusCode, 422, batch.body);
    assert.deepEqual(batch.json().detail[0].loc, ['body', 0, 'device_id']);
    assert.equal(await h.countReadings(), total);
  });

  it("refuses another user's rename, delete and token rotation with 403 and changes nothing", async () => {
    const owner = await h.signUp();
    const intruder = await h.signUp();
    const id = await h.createDevice(owner.token, 'mine');
    await sendReadings(id, 2);

    const renamed = await patch(id, { name: 'stolen' }, intruder.token);
    assert.equal(renamed.statusCode, 403, renamed.body);
    assert.equal(renamed.json().detail, 'Forbidden');
    const deleted = await remove(id, intruder.token);
    assert.equal(deleted.statusCode, 403, deleted.body);
    const rotated = await h.post(`/device/${id}/ingest-token`, {}, intruder.token);
    assert.equal(rotated.statusCode, 403, rotated.body);

    const row = await storedDevice(id);
    assert.equal(row?.name, 'mine');
    assert.equal(row?.user_id, owner.id);
    assert.equal(row?.ingest_token_digest, null);
    assert.equal(await readingsOf(id), 2);
  });

  it('refuses anonymous callers and invalid tokens with 401 and changes nothing', async () => {
    const owner = await h.signUp();
    const id = await h.createDevice(owner.token, 'mine');
    await sendReadings(id, 1);
    for (const token of [undefined, 'not-a-jwt']) {
      assert.equal((await patch(id, { name: 'x' }, token)).statusCode, 401);
      assert.equal((await remove(id, token)).statusCode, 401);
      assert.equal((await h.post(`/device/${id}/ingest-token`, {}, token)).statusCode, 401);
    }
    // An ownerless device is no easier: still 401 without a token.
    const ownerless = await h.createDevice(undefined, 'nobody');
    assert.equal((await patch(ownerless, { name: 'x' })).statusCode, 401);
    assert.equal((await remove(ownerless)).statusCode, 401);
    assert.equal((await storedDevice(id))?.name, 'mine');
    assert.equal((await storedDevice(ownerless))?.name, 'nobody');
    assert.equal(await readingsOf(id), 1);
  });

  it('refuses a normal user on an ownerless device with 403', async () => {
    const user = await h.signUp();
    const id = await h.createDevice(undefined, 'nobody');
    await sendReadings(id, 2);
    assert.equal((await patch(id, { name: 'mine now' }, user.token)).statusCode, 403);
    assert.equal((await remove(id, user.token)).statusCode, 403);
    assert.equal((await h.post(`/device/${id}/ingest-token`, {}, user.token)).statusCode, 403);
    const row = await storedDevice(id);
    assert.equal(row?.name, 'nobody');
    assert.equal(row?.user_id, null);
    assert.equal(await readingsOf(id), 2);
  });

  it("lets a superuser rename and delete anyone's device and an ownerless one", async () => {
    const admin = await superuser();
    const owner = await h.signUp();
    const owned = await h.createDevice(owner.token, 'owned');
    const ownerless = await h.createDevice(undefined, 'ownerless');
    await sendReadings(owned, 2);
    await sendReadings(ownerless, 2);

    const renamed = await patch(owned, { name: 'renamed by admin' }, admin.token);
    assert.equal(renamed.statusCode, 200, renamed.body);
    assert.equal(renamed.json().user_id, owner.id, 'renaming keeps the owner');
    assert.equal((await storedDevice(owned))?.name, 'renamed by admin');
    const renamedOrphan = await patch(ownerless, { name: null }, admin.token);
    assert.equal(renamedOrphan.statusCode, 200, renamedOrphan.body);
    assert.equal((await storedDevice(ownerless))?.name, null);

    assert.equal((await remove(owned, admin.token)).statusCode, 204);
    assert.equal((await remove(ownerless, admin.token)).statusCode, 204);
    assert.equal(await storedDevice(owned), undefined);
    assert.equal(await storedDevice(ownerless), undefined);
    assert.equal(await readingsOf(owned), 0);
    assert.equal(await readingsOf(ownerless), 0);
  });

  it('answers 404 for an unknown device to an authorized caller', async () => {
    const user = await h.signUp();
    const admin = await superuser();
    for (const token of [user.token, admin.token]) {
      const renamed = await patch(987_654, { name: 'x' }, token);
      assert.equal(renamed.statusCode, 404, renamed.body);
      assert.match(renamed.json().detail, /Device 987654 not found/);
      assert.equal((await remove(987_654, token)).statusCode, 404);
      assert.equal((await h.post('/device/987654/ingest-token', {}, token)).statusCode, 404);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Device ingest tokens
// ---------------------------------------------------------------------------------------------

const INGEST_TOKEN = /^dev_[A-Za-z0-9_-]{43}$/;
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

onEachEngine(
  'ingest tokens (INGEST_AUTH=token)',
  (h: Harness) => {
    const send = (body: unknown, token?: string) =>
      h.inject({
        method: 'POST',
        url: '/data/',
        headers: {
          'content-type': 'application/json',
          ...(token === undefined ? {} : { 'x-device-token': token }),
        },
        payload: JSON.stringify(body),
      });
    const reading = (device: number, x = 1) => ({ device_id: device, x, y: 2, z: 3 });
    async function newDevice(ownerToken?: string): Promise<{ id: number; token: string }> {
      const response = await h.post('/device/', { name: 'sensor' }, ownerToken);
      assert.equal(response.statusCode, 200, response.body);
      const { id, ingest_token } = response.json();
      assert.match(ingest_token, INGEST_TOKEN);
      return { id, token: ingest_token };
    }
    const storedDigest = async (id: number) =>
      (await h.db.selectFrom('devices').select('ingest_token_digest').where('id', '=', id).executeTakeFirst())
        ?.ingest_token_digest;

    it('shows the token once at creation; GET never shows it; the database keeps only its SHA-256', async () => {
      const owner = await h.signUp();
      const response = await h.post('/device/', { name: 'sensor' }, owner.token);
      assert.equal(response.statusCode, 200, response.body);
      const created = response.json();
      assert.match(created.ingest_token, INGEST_TOKEN);
      assert.equal(created.user_id, owner.id);

      const one = await h.get(`/device/${created.id}`);
      assert.equal(one.statusCode, 200);
      assert.equal('ingest_token' in one.json(), false);
      assert.ok(!one.body.includes(created.ingest_token));
      const list = await h.get(`/device/?user_id=${owner.id}`);
      assert.equal(list.statusCode, 200);
      assert.ok(!list.body.includes(created.ingest_token));
      assert.ok(!list.body.includes('ingest_token'));

      const row = await h.db
        .selectFrom('devices')
        .selectAll()
        .where('id', '=', created.id)
        .executeTakeFirst();
      assert.ok(row);
      assert.match(row.ingest_token_digest ?? '', /^[0-9a-f]{64}$/);
      assert.equal(row.ingest_token_digest, sha256(created.ingest_token));
      assert.ok(!JSON.stringify(row).includes(created.ingest_token), 'the token itself is not stored');
      // Each device gets its own secret.
      const other = await newDevice();
      assert.notEqual(other.token, created.ingest_token);
    });

    it('refuses a reading without the header with a 401 naming the device, and stores nothing', async () => {
      const device = await newDevice();
      const before = await h.countReadings();
      const response = await send(reading(device.id));
      assert.equal(response.statusCode, 401, response.body);
      assert.match(response.json().detail, new RegExp(`Device ${device.id} needs its ingest token`));
      assert.match(response.json().detail, /X-Device-Token/);
      assert.equal(await h.countReadings(), before);
    });

    it("refuses a wrong token, another device's token and an empty one with 401", async () => {
      const device = await newDevice();
      const other = await newDevice();
      const before = await h.countReadings();
      for (const token of [`dev_${'A'.repeat(43)}`, other.token, '', device.token.slice(0, -1)]) {
        const response = await send(reading(device.id), token);
        assert.equal(response.statusCode, 401, `${JSON.stringify(token)}: ${response.body}`);
        assert.match(response.json().detail, new RegExp(`Device ${device.id}\\b`));
      }
      assert.equal(await h.countReadings(), before);
    });

    it('stores a reading and a batch sent with the right X-Device-Token', async () => {
      const device = await newDevice();
      const before = await h.countReadings();
      const one = await send(reading(device.id, 7), device.token);
      assert.equal(one.statusCode, 200, one.body);
      assert.equal(one.json().device_id, device.id);
      const batch = await send([reading(device.id, 8), reading(device.id, 9)], device.token);
      assert.equal(batch.statusCode, 200, batch.body);
      assert.equal(batch.json().stored, 2);
      assert.equal(await h.countReadings(), before + 3);
    });

    it("refuses a batch mixing two devices under one device's token, storing nothing", async () => {
      const a = await newDevice();
      const b = await newDevice();
      const before = await h.countReadings();
      const mixed = [reading(a.id, 1), reading(b.id, 2), reading(a.id, 3)];
      const response = await send(mixed, a.token);
      assert.equal(response.statusCode, 401, response.body);
      assert.match(response.json().detail, new RegExp(`Device ${b.id} needs its`));
      assert.doesNotMatch(response.json().detail, new RegExp(`Device ${a.id}\\b`));
      assert.equal((await send(mixed, b.token)).statusCode, 401);
      const none = await send(mixed);
      assert.equal(none.statusCode, 401);
      assert.match(none.json().detail, new RegExp(`Devices ${a.id}, ${b.id} need their`));
      assert.equal(await h.countReadings(), before);
    });

    it('rotates the token for its owner: the old one stops working, the new one works', async () => {
      const owner = await h.signUp();
      const device = await newDevice(owner.token);
      assert.equal((await send(reading(device.id), device.token)).statusCode, 200); // the old token is cached now

      const rotated = await h.post(`/device/${device.id}/ingest-token`, {}, owner.token);
      assert.equal(rotated.statusCode, 200, rotated.body);
      assert.equal(rotated.json().device_id, device.id);
      const fresh = rotated.json().ingest_token;
      assert.match(fresh, INGEST_TOKEN);
      assert.notEqual(fresh, device.token);
      assert.equal(await storedDigest(device.id), sha256(fresh));

      const before = await h.countReadings();
      const old = await send(reading(device.id), device.token);
      assert.equal(old.statusCode, 401, old.body);
      assert.equal(await h.countReadings(), before);
      const ok = await send(reading(device.id), fresh);
      assert.equal(ok.statusCode, 200, ok.body);
      assert.equal(await h.countReadings(), before + 1);
    });

    it("refuses rotation by another user (403) and keeps the device's token", async () => {
      const owner = await h.signUp();
      const intruder = await h.signUp();
      const device = await newDevice(owner.token);
      const digest = await storedDigest(device.id);
      const response = await h.post(`/device/${device.id}/ingest-token`, {}, intruder.token);
      assert.equal(response.statusCode, 403, response.body);
      assert.ok(!response.body.includes('dev_'));
      assert.equal(await storedDigest(device.id), digest);
      assert.equal((await send(reading(device.id), device.token)).statusCode, 200);
    });

    it('lets a superuser give an ownerless device a new token', async () => {
      const admin = await h.signUp();
      await h.db.updateTable('users').set({ is_superuser: true }).where('id', '=', admin.id).execute();
      const device = await newDevice();
      const rotated = await h.post(`/device/${device.id}/ingest-token`, {}, admin.token);
      assert.equal(rotated.statusCode, 200, rotated.body);
      assert.equal((await send(reading(device.id), device.token)).statusCode, 401);
      assert.equal((await send(reading(device.id), rotated.json().ingest_token)).statusCode, 200);
    });

    it('refuses an import without a device token (401), and every line of a device whose token it is not', async () => {
      const device = await newDevice();
      const other = await newDevice();
      const csv = ['device_id,x,y,z', `${device.id},1,2,3`, `${device.id},4,5,6`, `${device.id},7,8,9`].join(
        '\n',
      );
      const ndjson = [reading(device.id, 1), reading(device.id, 2)].map((r) => JSON.stringify(r)).join('\n');
      const before = await h.countReadings();
      for (const [type, body, lines] of [
        ['text/csv', csv, 3],
        ['application/x-ndjson', ndjson, 2],
      ] as const) {
        for (const token of [undefined, 'dev_wrong']) {
          const response = await h.inject({
            method: 'POST',
            url: '/data/import',
            headers: { 'content-type': type, ...(token === undefined ? {} : { 'x-device-token': token }) },
            payload: body,
          });
          assert.equal(response.statusCode, 401, response.body);
        }
        for (const token of [other.token]) {
          const response = await h.inject({
            method: 'POST',
            url: '/data/import',
            headers: { 'content-type': type, 'x-device-token': token },
            payload: body,
          });
          assert.equal(response.statusCode, 200, response.body);
          const report = response.json();
          assert.equal(report.stored, 0, `${type} ${token}: ${response.body}`);
          assert.equal(report.rejected, lines);
          for (const error of report.errors) {
            assert.match(error.reason, new RegExp(`device ${device.id} needs its ingest token`));
          }
        }
      }
      assert.equal(await h.countReadings(), before);

      const ok = await h.inject({
        method: 'POST',
        url: '/data/import',
        headers: { 'content-type': 'text/csv', 'x-device-token': device.token },
        payload: csv,
      });
      assert.equal(ok.statusCode, 200, ok.body);
      assert.deepEqual(ok.json(), { stored: 3, rejected: 0, errors: [] });
      assert.equal(await h.countReadings(), before + 3);
    });

    it('keeps a device made without a token closed until it gets one', async () => {
      // A device from before INGEST_AUTH=token: no digest stored.
      const owner = await h.signUp();
      const row = await h.db
        .insertInto('devices')
        .values({ name: 'legacy', user_id: owner.id, created_at: Date.now(), ingest_token_digest: null })
        .returning('id')
        .executeTakeFirstOrThrow();
      assert.equal((await send(reading(row.id))).statusCode, 401);
      assert.equal((await send(reading(row.id), '')).statusCode, 401);
      const rotated = await h.post(`/device/${row.id}/ingest-token`, {}, owner.token);
      assert.equal(rotated.statusCode, 200, rotated.body);
      assert.equal((await send(reading(row.id), rotated.json().ingest_token)).statusCode, 200);
    });
  },
  { INGEST_AUTH: 'token' },
);

onEachEngine('ingest tokens off (INGEST_AUTH=open, the default)', (h: Harness) => {
  it('answers no ingest_token at creation, stores no digest, and takes readings without a header', async () => {
    assert.equal(h.config.ingestAuth, 'open');
    const response = await h.post('/device/', { name: 'open' });
    assert.equal(response.statusCode, 200, response.body);
    assert.equal('ingest_token' in response.json(), false);
    const id = response.json().id;
    const row = await h.db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
    assert.equal(row?.ingest_token_digest, null);
    const reading = await h.post('/data/', { device_id: id, x: 1, y: 2, z: 3 });
    assert.equal(reading.statusCode, 200, reading.body);
    const batch = await h.post('/data/', [{ device_id: id, x: 1, y: 2, z: 3 }]);
    assert.equal(batch.statusCode, 200, batch.body);
  });
});

// ---------------------------------------------------------------------------------------------
// Browsers and sizes
// ---------------------------------------------------------------------------------------------

/** Sends one raw HTTP request to a listening server; answers the status and body. */
function rawRequest(
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      { host: '127.0.0.1', port, path, method: 'GET', headers, agent: false, timeout: 10_000 },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk) => {
          body += chunk;
        });
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
        response.on('error', reject);
      },
    );
    request.on('timeout', () => request.destroy(new Error('request timed out')));
    request.on('error', reject);
    request.end();
  });
}

onEachEngine('security headers, CORS closed by default, header size', (h: Harness) => {
  it('sends helmet headers on API answers', async () => {
    for (const url of ['/health', '/device/', '/device/987654']) {
      const response = await h.get(url);
      assert.equal(response.headers['x-content-type-options'], 'nosniff', url);
      const csp = response.headers['content-security-policy'];
      assert.equal(typeof csp, 'string', `${url}: a content security policy`);
      assert.match(csp as string, /default-src 'self'/);
      assert.match(String(response.headers['x-frame-options']), /SAMEORIGIN|DENY/);
      assert.equal(typeof response.headers['referrer-policy'], 'string');
      assert.equal(response.headers['x-powered-by'], undefined);
    }
  });

  it('allows no foreign origin: no Access-Control-Allow-Origin on a preflight or a GET', async () => {
    const preflight = await h.inject({
      method: 'OPTIONS',
      url: '/device/',
      headers: {
        origin: 'https://evil.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
    });
    assert.ok(preflight.statusCode < 500, preflight.body);
    assert.equal(preflight.headers['access-control-allow-origin'], undefined);
    assert.equal(preflight.headers['access-control-allow-credentials'], undefined);
    const get = await h.inject({
      method: 'GET',
      url: '/device/',
      headers: { origin: 'https://evil.example' },
    });
    assert.equal(get.statusCode, 200);
    assert.equal(get.headers['access-control-allow-origin'], undefined);
  });

  it('answers a 20 KB header with a 4xx (431), never a 5xx, and keeps serving', async () => {
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = h.app.server.address() as AddressInfo;
    const huge = await rawRequest(port, '/health', { 'x-padding': 'a'.repeat(20 * 1024) });
    assert.ok(huge.status >= 400 && huge.status < 500, `status ${huge.status}`);
    assert.equal(huge.status, 431);
    const many = await rawRequest(
      port,
      '/health',
      Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`x-padding-${i}`, 'b'.repeat(512)])),
    );
    assert.ok(many.status >= 400 && many.status < 500, `status ${many.status}`);
    // A header just under the limit is fine, and the server still answers normally.
    const small = await rawRequest(port, '/health', { 'x-padding': 'c'.repeat(8 * 1024) });
    assert.equal(small.status, 200, small.body);
    const after = await rawRequest(port, '/device/', {});
    assert.equal(after.status, 200, after.body);
  });
});

onEachEngine(
  'CORS with CORS_ORIGINS',
  (h: Harness) => {
    const preflight = (origin: string) =>
      h.inject({
        method: 'OPTIONS',
        url: '/data/',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type',
        },
      });

    it('allows the configured origin, on a preflight and a GET', async () => {
      const response = await preflight('https://app.example');
      assert.ok(response.statusCode >= 200 && response.statusCode < 300, `${response.statusCode}`);
      assert.equal(response.headers['access-control-allow-origin'], 'https://app.example');
      assert.match(String(response.headers['access-control-allow-methods']), /POST/);
      const get = await h.inject({
        method: 'GET',
        url: '/device/',
        headers: { origin: 'https://app.example' },
      });
      assert.equal(get.statusCode, 200);
      assert.equal(get.headers['access-control-allow-origin'], 'https://app.example');
    });

    it('still refuses every other origin, including look-alikes', async () => {
      for (const origin of [
        'https://evil.example',
        'http://app.example',
        'https://app.example.evil.example',
        'https://evilapp.example',
        'null',
      ]) {
        const response = await preflight(origin);
        assert.ok(response.statusCode < 500, `${origin}: ${response.statusCode}`);
        assert.equal(response.headers['access-control-allow-origin'], undefined, origin);
        const get = await h.inject({ method: 'GET', url: '/device/', headers: { origin } });
        assert.equal(get.headers['access-control-allow-origin'], undefined, origin);
      }
    });
  },
  { CORS_ORIGINS: 'https://app.example, https://other.example' },
);
