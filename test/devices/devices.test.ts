import assert from 'node:assert/strict';
import { it } from 'node:test';
import { SignJWT } from 'jose';
import { type Harness, nextLink, onEachEngine, TEST_SECRET } from '../helpers/harness.js';

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

interface DeviceJson {
  id: number;
  name: string | null;
  user_id: number | null;
  created_at: string;
  readings: number;
  last_reading_at: string | null;
}

/** Every key of a device answer, sorted: null values are sent, not left out. */
const DEVICE_KEYS = ['created_at', 'id', 'last_reading_at', 'name', 'readings', 'user_id'];

/** A token as the service would sign it, with a chosen expiry and secret. */
function mintToken(userId: number, expiresAtSeconds: number, secret = TEST_SECRET): Promise<string> {
  return new SignJWT({ user_id: String(userId) })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(String(userId))
    .setAudience(['fastapi-users:auth'])
    .setExpirationTime(expiresAtSeconds)
    .sign(new TextEncoder().encode(secret));
}

onEachEngine('devices', (h: Harness) => {
  const countDevices = () => h.countRows('devices');

  const storedDevice = (id: number) =>
    h.db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();

  /** Every page of a listing, following Link rel="next" until there is none. */
  async function walk(firstUrl: string): Promise<{ pages: DeviceJson[][]; links: string[] }> {
    const pages: DeviceJson[][] = [];
    const links: string[] = [];
    let url: string | undefined = firstUrl;
    while (url !== undefined) {
      const response = await h.get(url);
      assert.equal(response.statusCode, 200, `${url}: ${response.body}`);
      pages.push(response.json());
      url = nextLink(response.headers.link);
      if (url !== undefined) links.push(url);
      assert.ok(pages.length < 100, 'pagination does not end');
    }
    return { pages, links };
  }

  it('creates an anonymous device: 200 with id, name, user_id null and created_at', async () => {
    const before = Date.now();
    const response = await h.post('/device/', { name: 'greenhouse-north' });
    const after = Date.now();
    assert.equal(response.statusCode, 200, response.body);
    const body = response.json();
    assert.deepEqual(Object.keys(body).sort(), DEVICE_KEYS);
    assert.deepEqual([body.readings, body.last_reading_at], [0, null]);
    assert.equal(typeof body.id, 'number');
    assert.equal(body.name, 'greenhouse-north');
    assert.equal(body.user_id, null);
    assert.match(body.created_at, ISO_UTC);
    const at = Date.parse(body.created_at);
    assert.ok(at >= before && at <= after, `${body.created_at} not within the request`);

    const row = await storedDevice(body.id);
    assert.ok(row);
    assert.equal(row.name, 'greenhouse-north');
    assert.equal(row.user_id, null);
  });

  it('makes the caller of a valid bearer token the owner', async () => {
    const user = await h.signUp();
    const response = await h.post('/device/', { name: 'mine' }, user.token);
    assert.equal(response.statusCode, 200, response.body);
    assert.equal(response.json().user_id, user.id);
    assert.equal((await storedDevice(response.json().id))?.user_id, user.id);
  });

  it('refuses a garbage, expired or foreign-signed token with 401 and stores nothing', async () => {
    const user = await h.signUp();
    const now = Math.floor(Date.now() / 1000);
    const tokens = {
      garbage: 'not-a-jwt',
      expired: await mintToken(user.id, now - 60),
      'other secret': await mintToken(user.id, now + 3600, 'another-secret-that-is-also-32-bytes-long'),
      'unknown user': await mintToken(999_999, now + 3600),
    };
    for (const [label, token] of Object.entries(tokens)) {
      const before = await countDevices();
      const response = await h.post('/device/', { name: `from ${label}` }, token);
      assert.equal(response.statusCode, 401, `${label}: ${response.body}`);
      assert.deepEqual(response.json(), { detail: 'Unauthorized' }, label);
      assert.equal(await countDevices(), before, `${label}: a device was stored`);
    }
  });

  it('treats another authorization scheme as no token: an anonymous device', async () => {
    const response = await h.inject({
      method: 'POST',
      url: '/device/',
      headers: { 'content-type': 'application/json', authorization: 'Basic dXNlcjpwYXNz' },
      payload: JSON.stringify({ name: 'basic' }),
    });
    assert.equal(response.statusCode, 200, response.body);
    assert.equal(response.json().user_id, null);
  });

  it('accepts a null or omitted name, and an empty object', async () => {
    for (const body of [{ name: null }, {}]) {
      const response = await h.post('/device/', body);
      assert.equal(response.statusCode, 200, `${JSON.stringify(body)}: ${response.body}`);
      assert.equal(response.json().name, null);
      assert.equal(response.json().user_id, null);
      assert.equal((await storedDevice(response.json().id))?.name, null);
    }
  });

  it('accepts a name of exactly 50 characters, counting characters rather than UTF-16 units', async () => {
    for (const name of ['n'.repeat(50), '\u{1F600}'.repeat(50), 'é'.repeat(50)]) {
      const response = await h.post('/device/', { name });
      assert.equal(response.statusCode, 200, response.body);
      assert.equal(response.json().name, name);
      assert.equal((await storedDevice(response.json().id))?.name, name);
    }
  });

  it('refuses a name of 51 characters with a 422 on body.name and stores nothing', async () => {
    const before = await countDevices();
    const response = await h.post('/device/', { name: 'n'.repeat(51) });
    assert.equal(response.statusCode, 422, response.body);
    const detail = response.json().detail;
    assert.ok(Array.isArray(detail));
    assert.ok(
      detail.some(
        (item: { loc: unknown; type: string }) =>
          JSON.stringify(item.loc) === '["body","name"]' && item.type === 'value_error.any_str.max_length',
      ),
      response.body,
    );
    assert.equal(await countDevices(), before);
  });

  it('reports a too-long name as the one item FastAPI gives, without noise from the null branch', async () => {
    const response = await h.post('/device/', { name: 'n'.repeat(51) });
    assert.equal(response.statusCode, 422);
    assert.deepEqual(response.json(), {
      detail: [
        {
          loc: ['body', 'name'],
          msg: 'ensure this value has at most 50 characters',
          type: 'value_error.any_str.max_length',
          ctx: { limit_value: 50 },
        },
      ],
    });
  });

  it('refuses a name that is not a string (no silent coercion) and stores nothing', async () => {
    for (const name of [123, true, ['a'], { a: 1 }]) {
      const before = await countDevices();
      const response = await h.post('/device/', { name });
      assert.equal(response.statusCode, 422, `${JSON.stringify(name)}: ${response.body}`);
      const detail = response.json().detail;
      assert.ok(Array.isArray(detail) && detail.length > 0);
      for (const item of detail) assert.deepEqual(item.loc, ['body', 'name']);
      assert.ok(
        detail.some((item: { type: string }) => item.type === 'type_error.str'),
        response.body,
      );
      assert.equal(await countDevices(), before);
    }
  });

  it('refuses a name with a NUL character with a 422 at body.name (PostgreSQL text cannot hold it)', async () => {
    const before = await countDevices();
    for (const name of ['a\u0000b', '\u0000']) {
      const response = await h.post('/device/', { name });
      assert.equal(response.statusCode, 422, response.body);
      assert.deepEqual(
        response.json().detail.map((item: { loc: unknown[] }) => item.loc),
        [['body', 'name']],
      );
    }
    assert.equal(await countDevices(), before);
  });

  it('ignores unknown keys: the client can choose neither the owner nor the id', async () => {
    const owner = await h.signUp();
    const taken = await h.createDevice();
    const anonymous = await h.post('/device/', { name: 'sneaky', user_id: owner.id, id: taken });
    assert.equal(anonymous.statusCode, 200, anonymous.body);
    assert.equal(anonymous.json().user_id, null);
    assert.notEqual(anonymous.json().id, taken);
    assert.equal((await storedDevice(anonymous.json().id))?.user_id, null);
    assert.equal((await storedDevice(taken))?.name, 'sensor', 'the existing device was overwritten');

    const caller = await h.signUp();
    const signedIn = await h.post('/device/', { name: 'mine', user_id: owner.id }, caller.token);
    assert.equal(signedIn.statusCode, 200, signedIn.body);
    assert.equal(signedIn.json().user_id, caller.id);
  });

  it('refuses a body that is not an object, or no body at all, with 422 on body', async () => {
    for (const raw of ['[]', '"name"', 'null', '']) {
      const before = await countDevices();
      const response = await h.post('/device/', raw);
      assert.equal(response.statusCode, 422, `${JSON.stringify(raw)}: ${response.body}`);
      assert.deepEqual(response.json().detail[0].loc, ['body'], raw);
      assert.equal(await countDevices(), before);
    }
  });

  it('refuses a body over the size limit with 413 and stores nothing', async () => {
    const before = await countDevices();
    const response = await h.post(
      '/device/',
      JSON.stringify({ name: 'big', pad: 'p'.repeat(h.config.bodyLimitBytes) }),
    );
    assert.equal(response.statusCode, 413, response.body.slice(0, 200));
    assert.equal(typeof response.json().detail, 'string');
    assert.equal(await countDevices(), before);
  });

  it('GET /device/{id} answers the device, 404 for an unknown id, 422 for a bad one', async () => {
    const owner = await h.signUp();
    const created = (await h.post('/device/', { name: 'lookup' }, owner.token)).json();
    const found = await h.get(`/device/${created.id}`);
    assert.equal(found.statusCode, 200);
    assert.deepEqual(found.json(), created);

    const missing = await h.get('/device/999999');
    assert.equal(missing.statusCode, 404);
    assert.equal(typeof missing.json().detail, 'string');

    for (const bad of ['abc', '1.5', '0', '-1', '99999999999', '1e400']) {
      const response = await h.get(`/device/${bad}`);
      assert.equal(response.statusCode, 422, `${bad}: ${response.body}`);
      assert.deepEqual(response.json().detail[0].loc, ['path', 'device_id'], bad);
    }
    const abc = (await h.get('/device/abc')).json().detail[0];
    assert.equal(abc.type, 'type_error.integer');
  });

  it('walks every device exactly once, in id order, following Link rel="next"', async () => {
    for (let i = 0; i < 7; i++) await h.createDevice(undefined, `page-${i}`);
    const stored = (await h.db.selectFrom('devices').select('id').orderBy('id').execute()).map((r) => r.id);
    assert.ok(stored.length >= 7);

    const { pages, links } = await walk('/device/?limit=3');
    for (const page of pages.slice(0, -1)) assert.equal(page.length, 3);
    const seen = pages.flat().map((d) => d.id);
    assert.deepEqual(seen, stored, 'ids missing, repeated or out of order');
    for (const link of links) assert.match(link, /[?&]limit=3(&|$)/, `the next link lost the limit: ${link}`);

    const one = await h.get(`/device/?limit=${stored.length}`);
    assert.equal(one.json().length, stored.length);
    assert.equal(one.headers.link, undefined, 'a link to an empty page after the last');
  });

  it('keeps the user_id filter across pages and lists only that owner', async () => {
    const owner = await h.signUp();
    const other = await h.signUp();
    const mine: number[] = [];
    for (let i = 0; i < 5; i++) {
      mine.push(await h.createDevice(owner.token, `own-${i}`));
      await h.createDevice(other.token, `other-${i}`);
      await h.createDevice(undefined, `anon-${i}`);
    }
    const { pages } = await walk(`/device/?user_id=${owner.id}&limit=2`);
    const listed = pages.flat();
    assert.deepEqual(
      listed.map((d) => d.id),
      mine,
    );
    for (const device of listed) assert.equal(device.user_id, owner.id);

    const nobody = await h.get('/device/?user_id=999999');
    assert.equal(nobody.statusCode, 200);
    assert.deepEqual(nobody.json(), []);
  });

  it('tells how many readings a device has and when the latest was taken, late ones included', async () => {
    const owner = await h.signUp();
    const busy = await h.createDevice(owner.token, 'busy');
    const quiet = await h.createDevice(owner.token, 'quiet');
    const times = ['2026-11-20T10:00:00.125Z', '2026-11-20T10:00:59.999Z', '2026-11-21T08:30:00.000Z'];
    const readings = times.map((timestamp) => ({ device_id: busy, x: 1, y: 2, z: 3, timestamp }));
    assert.equal((await h.post('/data/', readings)).statusCode, 200);
    // A late reading counts but is not the latest.
    const late = { device_id: busy, x: 1, y: 2, z: 3, timestamp: '2026-11-01T00:00:00.000Z' };
    assert.equal((await h.post('/data/', late)).statusCode, 200);

    const one = (await h.get(`/device/${busy}`)).json();
    assert.deepEqual([one.readings, one.last_reading_at], [4, '2026-11-21T08:30:00.000Z']);
    const listed = (await h.get(`/device/?user_id=${owner.id}`)).json() as DeviceJson[];
    assert.deepEqual(
      listed.map((d) => [d.name, d.readings, d.last_reading_at]),
      [
        ['busy', 4, '2026-11-21T08:30:00.000Z'],
        ['quiet', 0, null],
      ],
    );
    const renamed = await h.inject({
      method: 'PATCH',
      url: `/device/${busy}`,
      headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json' },
      payload: { name: 'renamed' },
    });
    assert.deepEqual(
      [renamed.json().name, renamed.json().readings, renamed.json().last_reading_at],
      ['renamed', 4, '2026-11-21T08:30:00.000Z'],
    );
    // Only this device's readings, whatever the others have.
    assert.equal((await h.post('/data/', { device_id: quiet, x: 0, y: 0, z: 0 })).statusCode, 200);
    assert.equal((await h.get(`/device/${busy}`)).json().readings, 4);
  });

  it("lists each device's latest reading among many in its last minute, sent out of order", async () => {
    const owner = await h.signUp();
    const first = await h.createDevice(owner.token, 'first');
    const second = await h.createDevice(owner.token, 'second');
    const at = (device: number, seconds: number[]) =>
      seconds.map((s) => ({
        device_id: device,
        x: s,
        y: 0,
        z: 0,
        timestamp: new Date(Date.UTC(2026, 10, 20, 10, 0, s)).toISOString(),
      }));
    // The latest of each is neither the first nor the last sent; the second's latest is earlier than the first's.
    const readings = [...at(first, [3, 41.5, 59, 12]), ...at(second, [30, 7, 44, 20])];
    assert.equal((await h.post('/data/', readings)).statusCode, 200);
    const listed = (await h.get(`/device/?user_id=${owner.id}`)).json() as DeviceJson[];
    assert.deepEqual(
      listed.map((d) => [d.name, d.readings, d.last_reading_at]),
      [
        ['first', 4, '2026-11-20T10:00:59.000Z'],
        ['second', 4, '2026-11-20T10:00:44.000Z'],
      ],
    );
  });

  it('lists the latest reading of every device on a page of hundreds', async () => {
    const owner = await h.signUp();
    const ids: number[] = [];
    for (let i = 0; i < 260; i++) ids.push(await h.createDevice(owner.token, `d${i}`));
    const timeOf = (i: number) => new Date(Date.UTC(2026, 10, 20, 10, i % 60, i % 7, i)).toISOString();
    const readings = ids.flatMap((device_id, i) => [
      { device_id, x: 1, y: 1, z: 1, timestamp: timeOf(i) },
      { device_id, x: 1, y: 1, z: 1, timestamp: '2026-11-01T00:00:00.000Z' },
    ]);
    assert.equal((await h.post('/data/', readings)).statusCode, 200);
    const listed = (await h.get(`/device/?user_id=${owner.id}&limit=1000`)).json() as DeviceJson[];
    assert.deepEqual(
      listed.map((d) => [d.id, d.readings, d.last_reading_at]),
      ids.map((id, i) => [id, 2, timeOf(i)]),
    );
  });

  it('shows null name and null owner as keys in the list, not omitted', async () => {
    const id = await h.createDevice(undefined, null);
    const { pages } = await walk('/device/?limit=1000');
    const listed = pages.flat().find((d) => d.id === id);
    assert.ok(listed, 'the new device is not listed');
    assert.deepEqual(Object.keys(listed).sort(), DEVICE_KEYS);
    assert.equal(listed.name, null);
    assert.equal(listed.user_id, null);
    assert.match(listed.created_at, ISO_UTC);
  });

  it('refuses limits outside 1..1000 and malformed limits with 422 on query.limit', async () => {
    for (const limit of ['0', '1001', '-1', 'abc', '1.5']) {
      const response = await h.get(`/device/?limit=${limit}`);
      assert.equal(response.statusCode, 422, `${limit}: ${response.body}`);
      assert.deepEqual(response.json().detail[0].loc, ['query', 'limit'], limit);
    }
    assert.equal((await h.get('/device/?limit=1000')).statusCode, 200);
    assert.equal((await h.get('/device/?limit=1')).json().length, 1);
  });

  it('refuses a cursor it could not have issued with 422 on query.cursor', async () => {
    for (const cursor of ['abc', '-1', '1.5', '1_2', 'x'.repeat(101)]) {
      const response = await h.get(`/device/?cursor=${encodeURIComponent(cursor)}`);
      assert.equal(response.statusCode, 422, `${cursor}: ${response.body}`);
      assert.deepEqual(response.json().detail[0].loc, ['query', 'cursor'], cursor);
    }
  });

  it('answers a cursor past every id with an empty page, and one past the largest id with a 422', async () => {
    const last = await h.get('/device/?cursor=2147483647');
    assert.equal(last.statusCode, 200, last.body);
    assert.deepEqual(last.json(), []);
    assert.equal(last.headers.link, undefined);
    const beyond = await h.get('/device/?cursor=9999999999');
    assert.equal(beyond.statusCode, 422, beyond.body);
    assert.deepEqual(beyond.json().detail[0].loc, ['query', 'cursor']);
  });
});
