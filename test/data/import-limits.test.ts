import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { type Harness, onEachEngine } from '../helpers/harness.js';
import { listen, openImport } from '../helpers/streamed-import.js';

onEachEngine('import: linear-time parsing', (h: Harness) => {
  let base: string;
  before(async () => {
    base = await listen(h);
  });

  it('answers 800 KB of 4 KB digit fields at once, and /health stays fast meanwhile', async () => {
    const device = await h.createDevice();
    // A digit run that is not a number: the old pattern backtracked quadratically on it (~50 ms a field,
    // so ~10 s for these 200 lines; linear parsing takes a few ms, the rest is a loaded machine's noise).
    const line = `${device},${'7'.repeat(4000)}x,2,3\n`;
    const body = line.repeat(200);
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
    assert.deepEqual([report.stored, report.rejected], [0, 200]);
    assert.ok(importMs < 4000, `the import took ${Math.round(importMs)} ms`);
    // The median probe: a blocked event loop holds most of them, a loaded machine only a few.
    const median = [...healthMs].sort((a, b) => a - b)[Math.floor(healthMs.length / 2)] ?? 0;
    assert.ok(
      median < 300,
      `/health took ${Math.round(median)} ms (median of ${healthMs.length}) during the import`,
    );
  });

  it('rejects the lines of a device deleted during the import and stores the rest (no 500)', async () => {
    // Both devices known to the service (checked once, then remembered) when one is deleted between
    // the import's check and its insert.
    const { kept, deleted } = await h.devicesWithOneDeletedBehindTheCache();
    const response = await h.inject({
      method: 'POST',
      url: '/data/import',
      headers: { 'content-type': 'text/csv' },
      payload: `${kept},1,2,3\n${deleted},4,5,6\n${kept},7,8,9\n`,
    });
    assert.equal(response.statusCode, 200, response.body);
    assert.deepEqual(response.json(), {
      stored: 2,
      rejected: 1,
      errors: [{ line: 2, reason: `device ${deleted} not found (deleted during the import)` }],
    });
    const stored = await h.db
      .selectFrom('data')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('device_id', '=', kept)
      .executeTakeFirstOrThrow();
    assert.equal(Number(stored.n), 3);
  });

  // 16,000 slashes cost the quadratic pattern about 200 ms; 400,000 would cost it about two minutes, so
  // a bound of 2 s tells linear from quadratic on a loaded machine without timing a few milliseconds.
  it('trims 400,000 trailing slashes in linear time (the other spelling of a route is found)', async () => {
    const started = performance.now();
    const response = await h.get(`/health${'/'.repeat(400_000)}`);
    const ms = performance.now() - started;
    assert.equal(response.statusCode, 307);
    assert.equal(response.headers.location, '/health');
    const other = await h.get(`/health${'/'.repeat(400_000)}x/`);
    assert.equal(other.statusCode, 404);
    const total = performance.now() - started;
    assert.ok(total < 2_000, `took ${Math.round(ms)} ms, then ${Math.round(total - ms)} ms`);
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
      const { request, answer } = openImport(base, token === undefined ? {} : { 'x-device-token': token });
      // One line, then nothing more: the body is never finished.
      request.write('1,2,3,4\n');
      const waited = new Promise<never>((_, reject) => {
        setTimeout(() => reject(new Error('no answer within 5 s: the body was waited for')), 5000).unref();
      });
      return Promise.race([answer, waited]);
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
