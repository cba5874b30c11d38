import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { DomainError } from '../../src/http/errors.js';
import { AttemptLimit, countsStore } from '../../src/http/rate-limits.js';

/** The Retry-After (seconds) of the 429 that `attempt` throws, or undefined when it is allowed. */
async function retryAfter(attempt: () => Promise<void>): Promise<number | undefined> {
  try {
    await attempt();
    return undefined;
  } catch (error) {
    assert.ok(error instanceof DomainError && error.statusCode === 429, String(error));
    return error.retryAfterSeconds;
  }
}

describe('attempt limits', () => {
  // The clock (Date and the store's timers) is moved by the test: windows end without waiting.
  beforeEach(() => mock.timers.enable({ apis: ['Date', 'setTimeout'], now: Date.UTC(2026, 0, 1) }));
  afterEach(() => mock.timers.reset());

  it('allows the limit per window, then 429s with the seconds left, and allows again once the window ends', async () => {
    const limits = new AttemptLimit('test', 3, 900, countsStore());
    for (let i = 0; i < 3; i++)
      assert.equal(await retryAfter(() => limits.hit('a')), undefined, `attempt ${i + 1}`);
    assert.equal(await retryAfter(() => limits.hit('a')), 900);
    mock.timers.tick(899_500);
    assert.equal(await retryAfter(() => limits.hit('a')), 1, 'half a second left is 1 s');
    mock.timers.tick(500);
    assert.equal(await retryAfter(() => limits.hit('a')), undefined, 'a new window');
  });

  it('counts each key on its own, and forgets a key that is reset', async () => {
    const limits = new AttemptLimit('test', 1, 60, countsStore());
    await limits.hit('a');
    assert.equal(await retryAfter(() => limits.hit('b')), undefined);
    assert.equal(await retryAfter(() => limits.hit('a')), 60);
    await limits.reset('a');
    assert.equal(await retryAfter(() => limits.hit('a')), undefined);
  });

  it('counts attempts made at the same moment: 40 at once get the limit through and 429s for the rest', async () => {
    const limits = new AttemptLimit('test', 10, 60, countsStore());
    const answers = await Promise.all(Array.from({ length: 40 }, () => retryAfter(() => limits.hit('a'))));
    assert.equal(answers.filter((answer) => answer === undefined).length, 10);
  });

  it('never limits with a limit of 0 (0 turns a limit off)', async () => {
    const limits = new AttemptLimit('test', 0, 60, countsStore());
    for (let i = 0; i < 10_000; i++) await limits.hit('a');
  });

  it("keeps a victim's count through a flood of 150,000 made-up keys (nothing is evicted early)", async () => {
    const limits = new AttemptLimit('test', 2, 900, countsStore());
    await limits.hit('victim');
    await limits.hit('victim');
    for (let i = 0; i < 150_000; i++) await limits.hit(`made-up-${i}@example.com 203.0.113.${i % 256}`);
    mock.timers.tick(1000);
    assert.equal(await retryAfter(() => limits.hit('victim')), 899);
  });
});
