import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { toIsoString } from '../../src/http/dates.js';

const DATE_RANGE_MS = 8.64e15;

it('writes every instant as Date#toISOString does, in any order (the formatted second is reused)', () => {
  const instant = fc.oneof(
    fc.integer({ min: -DATE_RANGE_MS, max: DATE_RANGE_MS }),
    // Neighbours of one second, negative ones and second boundaries included, called in a row.
    fc.integer({ min: -3_000, max: 3_000 }).map((offset) => 1_796_168_133_000 + offset),
    fc.integer({ min: -3_000, max: 3_000 }),
    fc.double({ min: -1e13, max: 1e13, noNaN: true }),
  );
  fc.assert(
    fc.property(fc.array(instant, { minLength: 1, maxLength: 50 }), (instants) => {
      for (const ms of instants) assert.equal(toIsoString(ms), new Date(ms).toISOString());
    }),
    { numRuns: 2000 },
  );
});

it('refuses what Date cannot write', () => {
  for (const ms of [Number.NaN, DATE_RANGE_MS + 1, -DATE_RANGE_MS - 1, Number.POSITIVE_INFINITY]) {
    assert.throws(() => new Date(ms).toISOString(), RangeError);
    assert.throws(() => toIsoString(ms), RangeError);
  }
});
