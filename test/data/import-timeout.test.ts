import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ENGINES, engineSkipReason, Harness } from '../helpers/harness.js';
import { listen, openImport } from '../helpers/streamed-import.js';

/** Streams `lines` (one per `gapMs`) as a CSV import, then ends the body unless `hang`; answers the reply. */
async function streamImport(
  base: string,
  lines: string[],
  gapMs: number,
  hang = false,
): Promise<{ status: number; body: string; ms: number }> {
  const started = performance.now();
  const { request, answer } = openImport(base);
  const writing = (async () => {
    for (const line of lines) {
      if (request.destroyed) return;
      request.write(line);
      await sleep(gapMs);
    }
    if (!hang) request.end();
  })();
  const [reply] = await Promise.all([answer, writing]);
  return { ...reply, ms: performance.now() - started };
}

/**
 * Both engines at once: the slow stream must outlast the old limit (30 s, which Node checks every 30 s,
 * so a request was cut between 30 and 60 s), and running them one after the other would double that.
 */
describe('import: an idle timeout, not a total one', () => {
  const harnesses = ENGINES.filter((engine) => !engineSkipReason(engine)).map(
    (engine) => new Harness(engine),
  );
  before(() => Promise.all(harnesses.map((h) => h.start())));
  after(() => Promise.all(harnesses.map((h) => h.stop())));

  it('takes a slow stream longer than 60 s whole, and stops a silent one with a 408 saying what was stored', async () => {
    await Promise.all(harnesses.map((h) => slowAndSilent(h)));
  });
});

async function slowAndSilent(h: Harness): Promise<void> {
  const base = await listen(h);
  const slow = await h.createDevice();
  const silent = await h.createDevice();
  const line = (device: number, i: number) => `${device},${i},2,3\n`;
  const [slowAnswer, silentAnswer] = await Promise.all([
    // 64 lines, one a second: past the old limit on a whole request.
    streamImport(
      base,
      Array.from({ length: 64 }, (_, i) => line(slow, i)),
      1000,
    ),
    // 5 lines, then nothing more without ending the body.
    streamImport(
      base,
      Array.from({ length: 5 }, (_, i) => line(silent, i)),
      10,
      true,
    ),
  ]);
  assert.equal(slowAnswer.status, 200, `${h.engine}: ${slowAnswer.body}`);
  assert.deepEqual(JSON.parse(slowAnswer.body), { stored: 64, rejected: 0, errors: [] });
  assert.ok(slowAnswer.ms > 63_000, `${slowAnswer.ms} ms`);

  assert.equal(silentAnswer.status, 408, `${h.engine}: ${silentAnswer.body}`);
  const { detail } = JSON.parse(silentAnswer.body);
  assert.match(detail, /no bytes came for 30 s\. Stored 5 readings from lines 1 to 5 .*after line 5/);
  const stored = await h.db
    .selectFrom('data')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('device_id', '=', silent)
    .executeTakeFirstOrThrow();
  assert.equal(Number(stored.n), 5, h.engine);
}
