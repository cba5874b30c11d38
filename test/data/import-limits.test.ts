import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { type Harness, onEachEngine } from '../helpers/harness.js';
import { listen, openImport } from '../helpers/streamed-import.js';

/**
 * The least time each of `a` and `b` took over `tries` runs, alternating (a, b, a, b...), so that a
 * busy machine's pauses fall on both and the fastest run of each is compared.
 */
async function fastestOfEach(
  tries: number,
  a: () => Promise<void>,
  b: () => Promise<void>,
): Promise<[number, number]> {
  const fastest: [number, number] = [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY];
  for (let i = 0; i < tries; i++) {
    for (const [k, run] of [a, b].entries()) {
      const started = performance.now();
      await run();
      fastest[k] = Math.min(fastest[k] as number, performance.now() - started);
    }
  }
  return fastest;
}

onEachEngine('import: linear-time parsing', (h: Harness) => {
  let base: string;
  before(async () => {
    base = await listen(h);
  });

  it('parses 800 KB of 4 KB digit fields in linear time, and answers /health while an import is open', async () => {
    const device = await h.createDevice();
    // A digit run that is not a number: the old pattern backtracked quadratically on it (~50 ms a
    // field, so ~10 s for these 200 lines). The same bytes in ten times as many lines of a tenth the
    // length cost it a tenth as much, and linear parsing no less (more lines to answer): the long
    // fields' import is held against that, in the same run, with a margin a busy machine cannot reach.
    const long = `${device},${'7'.repeat(4000)}x,2,3\n`.repeat(200);
    const short = `${device},${'7'.repeat(400)}x,2,3\n`.repeat(2000);
    const imported = (body: string, lines: number) => async () => {
      const response = await h.inject({
        method: 'POST',
        url: '/data/import',
        headers: { 'content-type': 'text/csv' },
        payload: body,
      });
      assert.equal(response.statusCode, 200, response.body);
      const report = response.json() as { stored: number; rejected: number };
      assert.deepEqual([report.stored, report.rejected], [0, lines]);
    };
    const [longMs, shortMs] = await fastestOfEach(3, imported(long, 200), imported(short, 2000));
    assert.ok(
      longMs < 4 * shortMs,
      `4 KB fields: ${Math.round(longMs)} ms; the same bytes in 400-byte fields: ${Math.round(shortMs)} ms`,
    );

    // /health is answered while an import is open, not after it: half the body sent, /health asked
    // and answered, and only then the rest sent and the import answered.
    const { request, answer } = openImport(base);
    request.write(long.slice(0, long.length / 2));
    let importAnswered = false;
    void answer.then(() => {
      importAnswered = true;
    });
    const health = await fetch(`${base}/health`);
    assert.equal(health.status, 200);
    await health.arrayBuffer();
    assert.equal(importAnswered, false, 'the import was answered before /health');
    request.end(long.slice(long.length / 2));
    const report = await answer;
    assert.equal(report.status, 200, report.body);
    assert.equal(JSON.parse(report.body).rejected, 200);
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

  // 16,000 slashes before a last segment cost the quadratic pattern about 200 ms; 400,000 would cost it
  // about two minutes. Held against a URL as long whose run is of dashes (nothing to trim), in the same
  // run: both end in the same 404 path.
  it('trims 400,000 trailing slashes in linear time (the other spelling of a route is found)', async () => {
    const response = await h.get(`/health${'/'.repeat(400_000)}`);
    assert.equal(response.statusCode, 307);
    assert.equal(response.headers.location, '/health');
    const other = await h.get(`/health${'/'.repeat(400_000)}x/`);
    assert.equal(other.statusCode, 404);
    const [slashesMs, dashesMs] = await fastestOfEach(
      3,
      async () => assert.equal((await h.get(`/health${'/'.repeat(400_000)}x/`)).statusCode, 404),
      async () => assert.equal((await h.get(`/health${'-'.repeat(400_000)}x/`)).statusCode, 404),
    );
    assert.ok(
      slashesMs < 10 * dashesMs + 50,
      `400,000 slashes: ${Math.round(slashesMs)} ms; as many dashes: ${Math.round(dashesMs)} ms`,
    );
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
        // Generous: the body never ends, so only a wait for it would take this long.
        setTimeout(() => reject(new Error('no answer within 60 s: the body was waited for')), 60_000).unref();
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
