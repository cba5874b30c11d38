import assert from 'node:assert/strict';
import { it } from 'node:test';
import { sql } from 'kysely';
import { rowsAsTable, type TableRow } from '../../src/db/dialect.js';
import { prepare } from '../../src/db/prepared.js';
import type { Database } from '../../src/db/tables.js';
import { type Harness, onEachEngine } from '../helpers/harness.js';

const COLUMNS = [
  ['k', 'int'],
  ['v', 'float8'],
] as const;

onEachEngine('statements compiled once (db/prepared.ts)', (h: Harness) => {
  it("binds each run's rows into one SQL text, whatever their number, and keeps fixed values", async () => {
    const totals = prepare<{ rows: TableRow[]; factor: number }, Database>(
      h.db,
      (late) => sql`
        select count(*) as rows, sum(v * ${late((input) => input.factor)}) as total, max(k) + ${5} as top
        from ${rowsAsTable(
          h.engine,
          COLUMNS,
          late((input) => input.rows),
        )} as incoming`,
    );
    const runs = [
      { rows: [[1, 0.1]], factor: 2 },
      {
        rows: [
          [1, 0.5],
          [2, -1.25],
          [7, 1e-300],
        ],
        factor: 3,
      },
      {
        rows: [
          [4, 2.5],
          [3, 3.5],
        ],
        factor: -1,
      },
    ];
    for (const input of runs) {
      const bound = totals.bind(input);
      assert.equal(bound.sql, totals.sql, 'the SQL of every run is the one compiled');
      const result = await h.db.executeQuery<{ rows: number | string; total: number; top: number | string }>(
        bound,
      );
      const row = result.rows[0];
      assert.equal(Number(row?.rows), input.rows.length);
      const expected = input.rows.reduce((sum, [, v]) => sum + (v as number) * input.factor, 0);
      assert.ok(Math.abs(Number(row?.total) - expected) < 1e-12, `total ${row?.total}, expected ${expected}`);
      assert.equal(Number(row?.top), Math.max(...input.rows.map(([k]) => k as number)) + 5);
    }
  });
});
