import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { type Harness, onEachEngine } from '../helpers/harness.js';

const HOST = 'stats.intranet:8000';

/** A POST as a browser (or curl) sends it: the body without Content-Type unless one is given. */
function write(h: Harness, url: string, body: unknown, headers: Record<string, string> = {}) {
  return h.inject({
    method: 'POST',
    url,
    headers: { host: HOST, ...headers },
    payload: JSON.stringify(body),
  });
}

function assertRefused(response: LightMyRequestResponse, what: string) {
  assert.equal(response.statusCode, 403, `${what}: ${response.body}`);
  assert.match(response.json().detail, /^Cross-site request refused/, what);
}

onEachEngine(
  'cross-site writes',
  (h: Harness) => {
    it('refuses a write from another site (Origin or Sec-Fetch-Site) with 403 JSON, storing nothing', async () => {
      const device = await h.createDevice();
      const devices = await h.countRows('devices');
      const readings = await h.countReadings();
      const reading = { device_id: device, x: 1, y: 2, z: 3 };
      const cases: [string, Record<string, string>][] = [
        ['another origin', { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }],
        ['another origin, no fetch metadata', { origin: 'http://evil.example' }],
        [
          'another port of the same host',
          { origin: 'http://stats.intranet:3000', 'sec-fetch-site': 'same-site' },
        ],
        ['a sandboxed page (origin null)', { origin: 'null' }],
        ['fetch metadata only', { 'sec-fetch-site': 'cross-site' }],
      ];
      for (const [what, headers] of cases) {
        assertRefused(await write(h, '/data/', reading, headers), `POST /data/ from ${what}`);
        assertRefused(await write(h, '/device/', { name: 'planted' }, headers), `POST /device/ from ${what}`);
        const form = await h.inject({
          method: 'POST',
          url: '/auth/jwt/login',
          headers: { host: HOST, 'content-type': 'application/x-www-form-urlencoded', ...headers },
          payload: 'username=a%40example.com&password=x',
        });
        assertRefused(form, `login from ${what}`);
      }
      assert.equal(await h.countRows('devices'), devices);
      assert.equal(await h.countReadings(), readings);
    });

    it("takes writes from the service's own pages, from CORS_ORIGINS, and from clients that are no browser", async () => {
      const device = await h.createDevice();
      const reading = { device_id: device, x: 1, y: 2, z: 3 };
      const cases: [string, Record<string, string>][] = [
        ['curl or a FastAPI client (no Content-Type, no browser headers)', {}],
        ['its own page', { origin: `https://${HOST}`, 'sec-fetch-site': 'same-origin' }],
        ['its own page, behind a TLS proxy', { origin: `https://${HOST}` }],
        [
          'an origin in CORS_ORIGINS',
          { origin: 'https://dashboard.example', 'sec-fetch-site': 'cross-site' },
        ],
        ['a typed-in address (Sec-Fetch-Site none)', { 'sec-fetch-site': 'none' }],
      ];
      for (const [what, headers] of cases) {
        const response = await write(h, '/data/', reading, headers);
        assert.equal(response.statusCode, 200, `${what}: ${response.body}`);
      }
    });

    it('still answers reads from other sites (CORS decides what their pages may see)', async () => {
      const response = await h.inject({
        method: 'GET',
        url: '/health',
        headers: { host: HOST, origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
      });
      assert.equal(response.statusCode, 200);
    });

    it('documents the 403 on every write operation', async () => {
      const document = (await h.get('/openapi.json')).json();
      for (const [path, operations] of Object.entries(
        document.paths as Record<string, Record<string, { responses: Record<string, unknown> }>>,
      )) {
        for (const [method, operation] of Object.entries(operations)) {
          if (['get', 'head', 'options'].includes(method)) continue;
          assert.ok(operation.responses['403'], `${method.toUpperCase()} ${path} documents 403`);
        }
      }
    });
  },
  { CORS_ORIGINS: 'https://dashboard.example' },
);
