import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import { type Harness, onEachEngine } from '../helpers/harness.js';

/** What must never reach a client: stack frames, source paths, driver codes or SQL. */
const LEAK =
  /\bat \S+ \(|\bat .+:\d+:\d+|node_modules|\/src\/|\.ts:\d+|SQLITE_|sqlite3|\bselect\b.+\bfrom\b|\binsert into\b|relation "|no such table|stack/i;

function assertNoLeak(response: LightMyRequestResponse, label: string) {
  assert.doesNotMatch(response.body, LEAK, `${label} leaks internals: ${response.body.slice(0, 300)}`);
}

const REQUIRED_PATHS = [
  '/device/',
  '/data/',
  '/analyze_statistics/',
  '/analyze_statistics/{user_id}',
  '/auth/register',
  '/auth/jwt/login',
  '/auth/jwt/logout',
  '/users/me',
  '/users/{id}',
  '/health',
];

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

interface Operation {
  tags?: string[];
  parameters?: unknown[];
  requestBody?: { content?: Record<string, unknown> };
  responses?: Record<string, unknown>;
}

onEachEngine('http conventions', (h: Harness) => {
  const countDevices = () => h.countRows('devices');

  it('redirects POST /device with 307 to /device/ without storing, and the redirect can be followed', async () => {
    const before = await countDevices();
    const response = await h.post('/device', { name: 'no-slash' });
    assert.equal(response.statusCode, 307);
    assert.equal(response.headers.location, '/device/');
    assert.equal(await countDevices(), before, 'the redirect stored a device');

    const followed = await h.post(String(response.headers.location), { name: 'no-slash' });
    assert.equal(followed.statusCode, 200, followed.body);
    assert.equal(followed.json().name, 'no-slash');
    assert.equal(await countDevices(), before + 1);
  });

  it('redirects the other spelling of each route with 307, keeping the query string', async () => {
    const cases: [string, string, string][] = [
      ['GET', '/analyze_statistics?attr=y', '/analyze_statistics/?attr=y'],
      ['GET', '/data?limit=2&device_id=1', '/data/?limit=2&device_id=1'],
      ['POST', '/data', '/data/'],
      ['GET', '/device', '/device/'],
      ['GET', '/users/me/', '/users/me'],
      ['POST', '/auth/register/', '/auth/register'],
      ['POST', '/auth/jwt/login/', '/auth/jwt/login'],
      ['GET', '/health/', '/health'],
    ];
    for (const [method, url, location] of cases) {
      const response = await h.inject({ method: method as 'GET' | 'POST', url });
      assert.equal(response.statusCode, 307, `${method} ${url}: ${response.body}`);
      assert.equal(response.headers.location, location, `${method} ${url}`);
    }
  });

  it('takes a form only on the login: a form sent to a JSON route is a 415 and changes nothing', async () => {
    const user = await h.signUp();
    const devices = await countDevices();
    for (const [method, url] of [
      ['POST', '/device/'],
      ['POST', '/auth/register'],
      ['PATCH', '/users/me'],
    ] as const) {
      const response = await h.inject({
        method,
        url,
        payload: 'name=x&email=form@example.com&password=a-form-password',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Bearer ${user.token}`,
        },
      });
      assert.equal(response.statusCode, 415, `${method} ${url}: ${response.body}`);
    }
    assert.equal(await countDevices(), devices);
    assert.equal((await h.get('/users/me', user.token)).json().email, user.email);
  });

  it('answers a wrong method on a known path with 405 Method Not Allowed', async () => {
    for (const [method, url] of [
      ['PUT', '/data/'],
      ['DELETE', '/data/'],
      ['PATCH', '/data/'],
      ['POST', '/health'],
      ['GET', '/auth/register'],
      ['PUT', '/users/me'],
    ] as const) {
      const response = await h.inject({ method, url });
      assert.equal(response.statusCode, 405, `${method} ${url}: ${response.body}`);
      assert.deepEqual(response.json(), { detail: 'Method Not Allowed' }, `${method} ${url}`);
    }
  });

  it('answers an unknown path with 404 Not Found', async () => {
    for (const url of ['/nope', '/device/1/readings', '/analyze_statistics/1/2', '/data/extra/']) {
      const response = await h.get(url);
      assert.equal(response.statusCode, 404, `${url}: ${response.body}`);
      assert.deepEqual(response.json(), { detail: 'Not Found' }, url);
    }
  });

  it('reports health with the engine in use', async () => {
    const response = await h.get('/health');
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { status: 'ok', database: h.engine });
  });

  it('serves the interactive docs at /docs', async () => {
    let response = await h.get('/docs');
    for (let hops = 0; response.statusCode >= 300 && response.statusCode < 400 && hops < 3; hops++) {
      const location = String(response.headers.location);
      response = await h.get(new URL(location, 'http://localhost/docs').pathname);
    }
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers['content-type']), /^text\/html/);
    assert.match(response.body, /<html/i);
  });

  it('publishes an OpenAPI 3 document with every path, tags and documented errors', async () => {
    const response = await h.get('/openapi.json');
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers['content-type']), /^application\/json/);
    const doc = response.json();
    assert.match(String(doc.openapi), /^3\./);
    assert.equal(typeof doc.info?.title, 'string');

    const paths = doc.paths as Record<string, Record<string, Operation>>;
    for (const path of REQUIRED_PATHS) assert.ok(paths[path], `${path} is missing from the document`);

    const jsonOperations: string[] = [];
    for (const [path, item] of Object.entries(paths)) {
      const operations = Object.entries(item).filter(([method]) => METHODS.includes(method));
      assert.ok(operations.length > 0, `${path} has no operations`);
      for (const [method, operation] of operations) {
        const name = `${method.toUpperCase()} ${path}`;
        assert.ok(Array.isArray(operation.tags) && operation.tags.length > 0, `${name} has no tags`);
        const statuses = Object.keys(operation.responses ?? {});
        // DELETE /users/{id} answers only 405 by design, so a success is not required everywhere.
        assert.ok(statuses.length > 0, `${name} documents no response`);
        const takesInput = operation.requestBody !== undefined || (operation.parameters ?? []).length > 0;
        if (takesInput) {
          assert.ok(
            statuses.some((s) => s.startsWith('4')),
            `${name} takes input but documents no 4xx: ${statuses}`,
          );
        }
        // A JSON body can be malformed or invalid, which is always a 422.
        if (Object.keys(operation.requestBody?.content ?? {}).includes('application/json')) {
          jsonOperations.push(name);
          assert.ok(statuses.includes('422'), `${name} takes JSON but documents no 422: ${statuses}`);
        }
      }
    }
    for (const name of ['POST /device/', 'POST /data/', 'POST /auth/register', 'PATCH /users/me']) {
      assert.ok(jsonOperations.includes(name), `${name} does not document a JSON body`);
    }
    assert.ok(paths['/device/']?.post && paths['/device/']?.get);
    assert.ok(paths['/data/']?.post && paths['/data/']?.get);
  });

  it('reads integer query and path values as pydantic does, on every route: decimal digits, never hex or exponents', async () => {
    const device = await h.createDevice();
    await h.createDevice();
    await h.createDevice();
    await h.post('/data/', { device_id: device, x: 1, y: 2, z: 3 });
    // Each form of a number answers what the plain digits answer: surrounding spaces, a sign, leading
    // zeros, a fraction of zeros, underscores between digits.
    const forms = (n: number) => [` ${n} `, `+${n}`, `0${n}`, `${n}.0`, `${n}.00`, `0_${n}`];
    const accepted: [(text: string) => string, number][] = [
      [(text) => `/device/?limit=${text}`, 2],
      [(text) => `/device/${text}`, device],
      [(text) => `/data/?device_id=${text}`, device],
      [(text) => `/analyze_statistics/?device_id=${text}`, device],
    ];
    for (const [url, n] of accepted) {
      const expected = await h.get(url(String(n)));
      assert.equal(expected.statusCode, 200, `${url(String(n))}: ${expected.body}`);
      for (const form of forms(n)) {
        const response = await h.get(url(encodeURIComponent(form)));
        assert.equal(response.statusCode, 200, `${url(form)}: ${response.body}`);
        assert.deepEqual(response.json(), expected.json(), url(form));
      }
    }
    assert.equal((await h.get('/device/?limit=2')).json().length, 2);

    // JavaScript's Number() reads the first ones as 16, 2, 16, 10, Infinity and NaN: pydantic reads none.
    const refused = [
      '0x10',
      '0b10',
      '0o20',
      '1e1',
      '1e309',
      '-1e309',
      'Infinity',
      'NaN',
      '2.5',
      '2.',
      '1__0',
    ];
    refused.push('_1', '1_', '1 0', ' ');
    const parameters: [string, string, (text: string) => string][] = [
      ['query', 'limit', (text) => `/data/?limit=${text}`],
      ['query', 'offset', (text) => `/data/?offset=${text}`],
      ['query', 'device_id', (text) => `/data/?device_id=${text}`],
      ['query', 'device_id', (text) => `/data/export?device_id=${text}`],
      ['query', 'limit', (text) => `/device/?limit=${text}`],
      ['query', 'offset', (text) => `/device/?offset=${text}`],
      ['query', 'user_id', (text) => `/device/?user_id=${text}`],
      ['path', 'device_id', (text) => `/device/${text}`],
      ['query', 'device_id', (text) => `/analyze_statistics/?device_id=${text}`],
      ['path', 'user_id', (text) => `/analyze_statistics/${text}`],
      ['query', 'device_id', (text) => `/analyze_statistics/series?device_id=${text}`],
      ['query', 'user_id', (text) => `/analyze_statistics/series?user_id=${text}`],
    ];
    const notAnInteger = { msg: 'value is not a valid integer', type: 'type_error.integer' };
    const beyondDouble = {
      msg: 'number is beyond the range of a double',
      type: 'value_error.number.not_finite',
    };
    for (const [source, name, url] of parameters) {
      const cases: [string, object][] = refused.map((text) => [text, notAnInteger]);
      // A path value this long is a 414, and an empty one another route (/device/ lists the devices).
      if (source === 'query') cases.push([`1${'0'.repeat(400)}`, beyondDouble], ['', notAnInteger]);
      for (const [text, issue] of cases) {
        const response = await h.get(url(encodeURIComponent(text)));
        assert.equal(response.statusCode, 422, `${url(text)}: ${response.body}`);
        assert.deepEqual(response.json(), { detail: [{ loc: [source, name], ...issue }] }, url(text));
      }
    }
  });

  it('drops __proto__ and constructor keys: nothing is polluted, no privilege is gained', async () => {
    const device = await h.post(
      '/device/',
      '{"name":"proto","__proto__":{"user_id":1,"polluted":true},"constructor":{"prototype":{"polluted":true}}}',
    );
    assert.equal(device.statusCode, 200, device.body);
    assert.equal(device.json().name, 'proto');
    assert.equal(device.json().user_id, null);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(Object.hasOwn(Object.prototype, 'polluted'), false);

    // Required fields hidden in __proto__ must not satisfy validation.
    const before = await h.countReadings();
    const deviceId = device.json().id;
    const reading = await h.post('/data/', `{"__proto__":{"device_id":${deviceId},"x":1,"y":2,"z":3}}`);
    assert.equal(reading.statusCode, 422, reading.body);
    assert.equal(await h.countReadings(), before);

    const user = await h.signUp();
    const patched = await h.inject({
      method: 'PATCH',
      url: '/users/me',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${user.token}` },
      payload: '{"__proto__":{"is_superuser":true,"is_verified":true}}',
    });
    assert.equal(patched.statusCode, 200, patched.body);
    assert.equal(patched.json().is_superuser, false);
    const row = await h.db
      .selectFrom('users')
      .select(['is_superuser', 'is_verified'])
      .where('id', '=', user.id)
      .executeTakeFirstOrThrow();
    assert.equal(Boolean(row.is_superuser), false);
    assert.equal(Boolean(row.is_verified), false);
  });

  it('never answers with a stack trace, source path or SQL, whatever the error', async () => {
    const responses: [string, LightMyRequestResponse][] = [
      ['malformed JSON', await h.post('/data/', '{"device_id":')],
      ['NaN', await h.post('/data/', '{"device_id":1,"x":NaN,"y":0,"z":0}')],
      ['unknown device', await h.post('/data/', { device_id: 999_999, x: 1, y: 1, z: 1 })],
      [
        'xml',
        await h.inject({
          method: 'POST',
          url: '/data/',
          headers: { 'content-type': 'application/xml' },
          payload: '<a/>',
        }),
      ],
      ['too large', await h.post('/device/', JSON.stringify({ name: 'x'.repeat(2_000_000) }))],
      ['bad token', await h.post('/device/', {}, 'x.y.z')],
      ['bad date', await h.get('/data/?start_date=nope')],
      ['bad cursor', await h.get('/data/?cursor=zzz')],
      ['405', await h.inject({ method: 'PUT', url: '/device/' })],
      ['404', await h.get('/nowhere')],
    ];
    for (const [label, response] of responses) {
      assert.ok(response.statusCode >= 400 && response.statusCode < 500, `${label}: ${response.statusCode}`);
      assert.ok('detail' in response.json(), `${label}: ${response.body}`);
      assertNoLeak(response, label);
    }
  });

  it('answers a database failure with a bare 500, hiding the SQL and the driver error', async () => {
    await sql`alter table data rename to data_hidden`.execute(h.db);
    try {
      for (const response of [
        await h.get('/data/'),
        await h.post('/data/', { device_id: 1, x: 1, y: 1, z: 1 }),
        await h.get('/analyze_statistics/'),
      ]) {
        assert.equal(response.statusCode, 500, response.body);
        assert.deepEqual(response.json(), { detail: 'Internal Server Error' });
        assertNoLeak(response, 'database failure');
        assert.doesNotMatch(response.body, /data_hidden/);
      }
    } finally {
      await sql`alter table data_hidden rename to data`.execute(h.db);
    }
    assert.equal((await h.get('/data/')).statusCode, 200);
  });
});
