import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, it } from 'node:test';
import { type Harness, onEachEngine } from '../helpers/harness.js';

/** Listens on a free port of 127.0.0.1 and answers the base URL. */
async function listen(h: Harness): Promise<string> {
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
}

onEachEngine('import: linear-time parsing', (h: Harness) => {
  let base: string;
  before(async () => {
    base = await listen(h);
  });

  it('answers 200 KB of 4 KB digit fields at once, and /health stays fast meanwhile', async () => {
    const device = await h.createDevice();
    // A digit run that is not a number: the old pattern backtracked quadratically on it (1.9 s).
    const line = `${device},${'7'.repeat(4000)}x,2,3\n`;
    const body = line.repeat(50);
    const healthMs: number[] = [];
    let importing = true;
    const probe = (async () => {
      while (importing) {
        const started = performance.now();
        const health = await fetch(`${base}/health`);
        await health.arrayBuffer();
        healthMs.push(performance.now() - started);
      }
    })();
    const started = performance.now();
    const response = await fetch(`${base}/data/import`, {
      method: 'POST',
      headers: { 'content-type': 'text/csv' },
      body,
    });
    const importMs = performance.now() - started;
    importing = false;
    await probe;
    assert.equal(response.status, 200);
    const report = (await response.json()) as { stored: number; rejected: number };
    assert.deepEqual([report.stored, report.rejected], [0, 50]);
    assert.ok(importMs < 700, `the import took ${Math.round(importMs)} ms`);
    const slowest = Math.max(...healthMs);
    assert.ok(slowest < 300, `/health took up to ${Math.round(slowest)} ms during the import`);
  });

  it('trims 16,000 trailing slashes in linear time (the other spelling of a route is found)', async () => {
    const started = performance.now();
    const response = await h.get(`/health${'/'.repeat(16_000)}`);
    const ms = performance.now() - started;
    assert.equal(response.statusCode, 307);
    assert.equal(response.headers.location, '/health');
    const other = await h.get(`/health${'/'.repeat(16_000)}x/`);
    assert.equal(other.statusCode, 404);
    const total = performance.now() - started;
    assert.ok(total < 100, `took ${Math.round(ms)} ms, then ${Math.round(total - ms)} ms`);
  });
});

onEachEngine(
  'import with INGEST_AUTH=token: refused before the body is read',
  (h: Harness) => {
    let base: string;
    before(async () => {
      base = await listen(h);
    });
    after(() => h.app.server.closeAllConnections());

    /** Sends the headers of an import whose body never ends; answers the status that comes back. */
    function openEndedImport(token: string | undefined): Promise<{ status: number; body: string }> {
      return new Promise((resolve, reject) => {
        const request = httpRequest(`${base}/data/import`, {
          method: 'POST',
          headers: {
            'content-type': 'text/csv',
            ...(token === undefined ? {} : { 'x-device-token': token }),
          },
        });
        request.on('response', (response) => {
          let body = '';
          response.on('data', (chunk) => {
            body += chunk;
          });
          response.on('end', () => {
            request.destroy();
            resolve({ status: response.statusCode ?? 0, body });
          });
        });
        request.on('error', reject);
        // One line, then nothing more: the body is never finished.
        request.write('1,2,3,4\n');
        setTimeout(() => reject(new Error('no answer within 5 s: the body was waited for')), 5000).unref();
      });
    }

    it('answers 401 JSON to an import without a token, or with no device’s token, without waiting for the body', async () => {
      for (const token of [undefined, 'dev_not-a-token']) {
        const answer = await openEndedImport(token);
        assert.equal(answer.status, 401, answer.body);
        assert.match(JSON.parse(answer.body).detail, /ingest token in the X-Device-Token header/);
      }
    });

    it('still imports with a device’s token', async () => {
      const created = await h.post('/device/', { name: 'sensor' });
      const { id, ingest_token } = created.json();
      const response = await fetch(`${base}/data/import`, {
        method: 'POST',
        headers: { 'content-type': 'text/csv', 'x-device-token': ingest_token },
        body: `${id},1,2,3\n`,
      });
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), { stored: 1, rejected: 0, errors: [] });
    });
  },
  { INGEST_AUTH: 'token' },
);
