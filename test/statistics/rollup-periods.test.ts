import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { dayUnit, decompose, HOUR_MS, hourUnit, monthUnit } from '../../src/statistics/rollup-periods.js';

const YEAR = Date.UTC(2026, 0, 1);
const units = { reading_months: monthUnit, reading_days: dayUnit, reading_hours: hourUnit };

describe('the decomposition of a range into months, days, hours and readings', () => {
  it('covers the range exactly once, with whole periods only, and never a period holding an unfolded hour', () => {
    const time = fc.integer({ min: YEAR - 40 * 86_400_000, max: YEAR + 400 * 86_400_000 });
    fc.assert(
      fc.property(time, time, fc.array(time, { maxLength: 6 }), (a, b, dirtyTimes) => {
        const [from, to] = a <= b ? [a, b] : [b, a];
        const dirty = new Set(dirtyTimes.map((t) => hourUnit.floor(t)));
        const pieces = decompose(from, to, dirty);
        // Every piece as [start, end) in time, then sorted: they must tile [from, to).
        const spans: Array<[number, number]> = [
          ...pieces.readings.map(([s, e]) => [s, e] as [number, number]),
        ];
        for (const [table, unit] of Object.entries(units)) {
          for (const [first, last] of pieces[table as keyof typeof units]) {
            for (let start = first; start < last; start = unit.next(start)) {
              assert.equal(unit.floor(start), start, `${table} ${start} is a whole period`);
              for (const hour of dirty) {
                assert.ok(
                  hour < start || hour >= unit.next(start),
                  `${table} ${start} holds unfolded hour ${hour}`,
                );
              }
              spans.push([start, unit.next(start)]);
            }
          }
        }
        spans.sort((x, y) => x[0] - y[0]);
        let cursor = from;
        for (const [start, end] of spans) {
          assert.equal(start, cursor, 'no gap and no overlap');
          cursor = end;
        }
        assert.equal(cursor, to);
      }),
    );
  });

  it('reads an open range as whole months, and an unfolded hour from the readings', () => {
    const hour = Date.UTC(2026, 4, 17, 9);
    const pieces = decompose(Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY, new Set([hour]));
    assert.deepEqual(pieces.reading_months, [
      [Number.NEGATIVE_INFINITY, Date.UTC(2026, 4)],
      [Date.UTC(2026, 5), Number.POSITIVE_INFINITY],
    ]);
    assert.deepEqual(pieces.readings, [[hour, hour + HOUR_MS]]);
  });
});
