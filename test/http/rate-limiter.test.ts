import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DomainError } from '../../src/http/errors.js';
import { RateLimiter } from '../../src/http/rate-limiter.js';

/** The limiter on a clock the test moves: windows end without waiting for them. */
function limiter(limit: number, windowSeconds: number) {
  const clock = { now: Date.UTC(2026, 0, 1) };
  const limits = new RateLimiter('test', limit, windowSeconds * 1000, () => clock.now);
  return { limits, clock };
}

/** The Retry-After (seconds) of the 429 that `attempt` throws, or undefined when it is allowed. */
function retryAfter(attempt: () => void): number | undefined {
  try {
    attempt();
    return undefined;
  } catch (error) {
    assert.ok(error instanceof DomainError && error.statusCode === 429, String(error));
    return error.retryAfterSeconds;
  }
}

describe('rate limiter', () => {
  it('allows the limit per window, then 429s with the seconds left, and allows again once the window ends', () => {
    const { limits, clock } = limiter(3, 900);
    for (let i = 0; i < 3; i++)
      assert.equal(
        retryAfter(() => limits.hit('a')),
        undefined,
        `attempt ${i + 1}`,
      );
    assert.equal(
      retryAfter(() => limits.hit('a')),
      900,
    );
    clock.now += 899_500;
    assert.equal(
      retryAfter(() => limits.hit('a')),
      1,
      'half a second left is 1 s',
    );
    clock.now += 500;
    assert.equal(
      retryAfter(() => limits.hit('a')),
      undefined,
      'a new window',
    );
  });

  it('counts each key on its own, and forgets a key that is reset', () => {
    const { limits } = limiter(1, 60);
    limits.hit('a');
    assert.equal(
      retryAfter(() => limits.hit('b')),
      undefined,
    );
    assert.equal(
      retryAfter(() => limits.hit('a')),
      60,
    );
    limits.reset('a');
    assert.equal(
      retryAfter(() => limits.hit('a')),
      undefined,
    );
  });

  it('checks without counting, and counts only what is recorded (limits on failures)', () => {
    const { limits } = limiter(2, 60);
    for (let i = 0; i < 10; i++) limits.check('a');
    limits.record('a');
    limits.record('a');
    assert.equal(
      retryAfter(() => limits.check('a')),
      60,
    );
  });

  it('never limits with a limit of 0 (0 turns a limit off)', () => {
    const { limits } = limiter(0, 60);
    for (let i = 0; i < 10_000; i++) limits.hit('a');
  });

  it('remembers at most 100,000 keys: the oldest window goes first', () => {
    const { limits, clock } = limiter(1, 60);
    limits.hit('first');
    for (let i = 0; i < 100_000; i++) limits.hit(`key ${i}`);
    clock.now += 1000;
    // Still inside its window, but dropped to make room: a fresh window.
    assert.equal(
      retryAfter(() => limits.hit('first')),
      undefined,
    );
    assert.equal(
      retryAfter(() => limits.hit('key 99999')),
      59,
      'the newest keys are kept',
    );
  });
});
