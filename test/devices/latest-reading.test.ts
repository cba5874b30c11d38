import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { CompiledQuery } from 'kysely';
import { latestReading, sqliteActivity } from '../../src/devices/queries.js';
import { type Harness, onEachEngine } from '../helpers/harness.js';

/** A past UTC minute that both devices' readings fall in. */
const MINUTE = Date.UTC(2026, 10, 20, 8, 30);
const BUSY_READINGS = 5000;
const iso = (ms: number) => new Date(ms).toISOString();

/** A node of PostgreSQL's EXPLAIN (ANALYZE, FORMAT JSON). */
interface PlanNode {
  'Relation Name'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  Plans?: PlanNode[];
}

/** The rows every scan of a table in the plan read, kept or filtered out. */
function rowsRead(node: PlanNode): number {
  const own = node['Relation Name']
    ? ((node['Actual Rows'] ?? 0) + (node['Rows Removed by Filter'] ?? 0)) * (node['Actual Loops'] ?? 1)
    : 0;
  return own + (node.Plans ?? []).reduce((sum, child) => sum + rowsRead(child), 0);
}

onEachEngine("the device list's latest reading of each device", (h: Harness) => {
  let busy: number;
  let quiet: number;

  before(async () => {
    busy = await h.createDevice();
    quiet = await h.createDevice();
    // The quiet device reads once, a second into the minute; the busy one thousands of times after it.
    const first = await h.post('/data/', [
      { device_id: quiet, x: 1, y: 1, z: 1, timestamp: iso(MINUTE + 1000) },
    ]);
    assert.equal(first.statusCode, 200, first.body);
    const readings = Array.from({ length: BUSY_READINGS }, (_, i) => ({
      device_id: busy,
      x: i,
      y: 0,
      z: 0,
      timestamp: iso(MINUTE + 2000 + i * 10),
    }));
    const batch = await h.post('/data/', readings);
    assert.equal(batch.statusCode, 200, batch.body);
  });

  it('lists the time of each one, in the same minute as thousands of another', async () => {
    const response = await h.get('/device/');
    assert.equal(response.statusCode, 200, response.body);
    const listed = new Map<number, { readings: number; last_reading_at: string | null }>(
      response.json().map((d: { id: number; readings: number; last_reading_at: string | null }) => [d.id, d]),
    );
    assert.deepEqual(listed.get(quiet), {
      ...listed.get(quiet),
      readings: 1,
      last_reading_at: iso(MINUTE + 1000),
    });
    assert.deepEqual(listed.get(busy), {
      ...listed.get(busy),
      readings: BUSY_READINGS,
      last_reading_at: iso(MINUTE + 2000 + (BUSY_READINGS - 1) * 10),
    });
  });

  it("seeks a device's key rather than reading the other device's readings of that minute", async () => {
    // A plan that read the minute's readings (the time index, or every reading of the minute grouped)
    // took the device list of the mixed scenario to seconds on PostgreSQL (issue 17).
    // PostgreSQL seeks each device in a statement of its own, SQLite in a subquery of the page's statement.
    const query =
      h.engine === 'postgres'
        ? latestReading(h.db, quiet, MINUTE).compile()
        : sqliteActivity(h.db, [quiet, busy]).compile();
    if (h.engine === 'postgres') {
      const { rows } = await h.db.executeQuery<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(
        CompiledQuery.raw(`explain (analyze, format json) ${query.sql}`, [...query.parameters]),
      );
      const plan = rows[0]?.['QUERY PLAN'][0]?.Plan as PlanNode;
      assert.ok(rowsRead(plan) <= 2, `read ${rowsRead(plan)} rows: ${JSON.stringify(plan)}`);
    } else {
      const { rows } = await h.db.executeQuery<{ detail: string }>(
        CompiledQuery.raw(`explain query plan ${query.sql}`, [...query.parameters]),
      );
      const details = rows.map((row) => row.detail).join('\n');
      assert.match(
        details,
        /SEARCH data USING (COVERING )?INDEX data_device_time \(device_id=\? AND created_at>\? AND created_at<\?\)/,
      );
    }
  });
});
