import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import fc from 'fast-check';
import { percentilesOf, selectRanks, ValueCollector } from '../../src/db/collected-values.js';

/**
 * The selection of ranks that SQLite's exact percentiles read (db/collected-values.ts): each rank asked
 * must hold what a full sort puts there, on any input, including the ones a quickselect handles worst
 * (sorted, reversed, all equal, few distinct values) and arrays far above the sorted small segments.
 */
const sortedCopy = (values: Float64Array) => Float64Array.from(values).sort();

function checkRanks(values: Float64Array, ranks: number[]) {
  const sorted = sortedCopy(values);
  const selected = Float64Array.from(values);
  selectRanks(selected, ranks);
  for (const rank of ranks) assert.equal(selected[rank], sorted[rank], `rank ${rank} of ${values.length}`);
  assert.deepEqual(sortedCopy(selected), sorted, 'the values are only reordered');
}

describe('selectRanks and percentilesOf', () => {
  it('puts each asked rank where a sort would, on any values', () => {
    const values = fc.array(
      fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer({ min: -3, max: 3 })),
      {
        minLength: 1,
        maxLength: 3000,
      },
    );
    fc.assert(
      fc.property(
        values,
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 8 }),
        (list, fractions) => {
          const array = Float64Array.from(list);
          checkRanks(
            array,
            fractions.flatMap((f) => [Math.floor(f * (array.length - 1)), Math.ceil(f * (array.length - 1))]),
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it('handles the inputs a quickselect meets at its worst, 100,000 values each', () => {
    const n = 100_000;
    const ranks = [0, 4_999, 5_000, 49_999, 50_000, 98_999, 99_999];
    const shapes: Record<string, (i: number) => number> = {
      sorted: (i) => i,
      reversed: (i) => n - i,
      'all equal': () => 7.5,
      'two values': (i) => i % 2,
      'organ pipe': (i) => Math.min(i, n - i),
      sawtooth: (i) => i % 1000,
    };
    for (const [name, shape] of Object.entries(shapes)) {
      const values = Float64Array.from({ length: n }, (_, i) => shape(i));
      assert.doesNotThrow(() => checkRanks(values, ranks), name);
    }
  });

  it("interpolates between the two nearest ranks as numpy's default does", () => {
    const values = Float64Array.from([10, 1, 4, 3]);
    assert.deepEqual(percentilesOf(values, [0, 0.25, 0.5, 1]), [1, 2.5, 3.5, 10]);
    assert.deepEqual(percentilesOf(new Float64Array(0), [0.5]), [null]);
    // b - a overflows where the percentile does not: computed on the halves.
    assert.deepEqual(percentilesOf(Float64Array.from([1.5e308, -1.5e308]), [0.5]), [0]);
  });
});

describe('ValueCollector', () => {
  it("answers each query from its own values when it refills the last query's arrays", () => {
    const connection = new SQLite(':memory:');
    const collector = new ValueCollector(connection);
    connection.exec('create table readings (device integer, value real)');
    const insert = connection.prepare('insert into readings values (?, ?)');
    // Three devices of 5,000, 300 and 40 readings, with values that differ between them.
    const sizes = [5000, 300, 40];
    sizes.forEach((size, device) => {
      for (let i = 0; i < size; i++) insert.run(device, device * 1000 + ((i * 7919) % size) / 10);
    });
    const collect = (where: string) => {
      const rows = connection
        .prepare(
          `select device, collect_values(value, (select count(*) from readings r where ${where.replaceAll('readings.', 'r.')} and r.device = readings.device)) as handle
           from readings where ${where} group by device order by device`,
        )
        .all() as Array<{ device: number; handle: number }>;
      const answers = rows.map(({ device, handle }) => {
        const { values, ...moments } = collector.take(handle);
        return { device, ...moments, median: percentilesOf(values, [0.5])[0] };
      });
      collector.clear();
      return answers;
    };
    const expected = (device: number) => {
      const values = Float64Array.from(
        { length: sizes[device] as number },
        (_, i) => device * 1000 + ((i * 7919) % (sizes[device] as number)) / 10,
      ).sort();
      const n = values.length;
      const sum = values.reduce((a, b) => a + b, 0);
      const median =
        n % 2 ? values[(n - 1) / 2] : ((values[n / 2 - 1] as number) + (values[n / 2] as number)) / 2;
      return { device, count: n, min: values[0], max: values[n - 1], sum, median };
    };
    const check = (answers: ReturnType<typeof collect>, devices: number[]) => {
      assert.deepEqual(
        answers.map(({ device, count, min, max, median }) => ({ device, count, min, max, median })),
        devices.map((device) => {
          const { sum: _, ...rest } = expected(device);
          return rest;
        }),
      );
      for (const answer of answers) assert.ok(Math.abs(answer.sum - expected(answer.device).sum) < 1e-6);
    };
    // Large, then smaller (the large arrays refilled in part), then all three, then the large one again.
    check(collect('readings.device = 0'), [0]);
    check(collect('readings.device = 2'), [2]);
    check(collect('readings.device >= 0'), [0, 1, 2]);
    check(collect('readings.device = 1'), [1]);
    check(collect('readings.device = 0'), [0]);
    connection.close();
  });
});
