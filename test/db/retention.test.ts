import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { maintain } from '../../src/db/maintenance.js';
import { ENGINES, engineSkipReason, Harness } from '../helpers/harness.js';
import { foldAll, rollupValues } from '../helpers/rollups.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;

/** The start of the UTC day of `time`. */
const dayOf = (time: number) => Math.floor(time / DAY) * DAY;

// Not onEachEngine: after retention the minute rollups rightly hold more than the readings left.
for (const engine of ENGINES) {
  describe(`retention [${engine}]`, { skip: engineSkipReason(engine) }, () => {
    const h = new Harness(engine);
    before(() => h.start({ RETENTION_DAYS: '30', ROLLUP_RETENTION_DAYS: '400' }));
    after(() => h.stop());

    it('removes the readings older than RETENTION_DAYS, keeps their rollups and touches nothing newer', async () => {
      const device = await h.createDevice();
      // Whole hours 40 days ago (past the retention), 29 days ago (inside it) and 500 days ago (past both).
      const old = dayOf(Date.now() - 40 * DAY) + 10 * HOUR;
      const kept = dayOf(Date.now() - 29 * DAY) + 10 * HOUR;
      const ancient = dayOf(Date.now() - 500 * DAY) + 10 * HOUR;
      const at = (start: number, x: number, i: number) => ({
        device_id: device,
        x,
        y: 0,
        z: 0,
        timestamp: new Date(start + i * 61_000).toISOString(),
      });
      const batch = [
        ...[3, 5, 10].map((x, i) => at(old, x, i)),
        ...[7, 9].map((x, i) => at(kept, x, i)),
        ...[1].map((x, i) => at(ancient, x, i)),
      ];
      const stored = await h.post('/data/', batch);
      assert.equal(stored.statusCode, 200, stored.body);
      const keptIds: number[] = stored.json().ids.slice(3, 5);
      // The hour, day and month rollups of accuracy=approx, folded now: each of the three times has one of each.
      await foldAll(h);
      const periodRollups = async () => {
        const starts: Record<string, number[]> = {};
        for (const table of ['reading_hours', 'reading_days', 'reading_months'] as const) {
          const rows = await h.db
            .selectFrom(table)
            .select(['start', 'readings'])
            .where('device_id', '=', device)
            .orderBy('start')
            .execute();
          starts[table] = rows.map((row) => Number(row.readings));
        }
        return starts;
      };
      const everyLevel = { reading_hours: [1, 3, 2], reading_days: [1, 3, 2], reading_months: [1, 3, 2] };
      // (40 and 29 days ago may share a month: then the months are [1, 5].)
      const months = new Date(old).getUTCMonth() === new Date(kept).getUTCMonth() ? [1, 5] : [1, 3, 2];
      assert.deepEqual(await periodRollups(), { ...everyLevel, reading_months: months });
      const rollupsBefore = await h.db
        .selectFrom('reading_minutes')
        .selectAll()
        .where('minute', '>=', dayOf(old))
        .orderBy('minute')
        .execute();

      const report = await maintain(h.db, h.engine, h.config.retention);
      assert.equal(report.ran, true);
      assert.equal(report.deletedReadings, 4);

      const left = await h.db
        .selectFrom('data')
        .select(['id', 'x'])
        .where('device_id', '=', device)
        .orderBy('id')
        .execute();
      assert.deepEqual(
        left.map((r) => ({ id: Number(r.id), x: r.x })),
        keptIds.map((id, i) => ({ id, x: [7, 9][i] })),
      );
      // The rollups of the readings removed stay as they were, but those past ROLLUP_RETENTION_DAYS.
      const rollupsAfter = await h.db
        .selectFrom('reading_minutes')
        .selectAll()
        .where('minute', '>=', dayOf(old))
        .orderBy('minute')
        .execute();
      assert.deepEqual(rollupsAfter.map(rollupValues), rollupsBefore.map(rollupValues));
      assert.equal(rollupsBefore.length, 5);
      const ancientRollups = await h.db
        .selectFrom('reading_minutes')
        .select('minute')
        .where('minute', '<', dayOf(old))
        .execute();
      assert.deepEqual(ancientRollups, []);
      // The hours, day and month 500 days ago went with them; the newer ones stay.
      assert.deepEqual(await periodRollups(), {
        reading_hours: [3, 2],
        reading_days: [3, 2],
        reading_months: months.slice(1),
      });
      assert.equal(report.deletedRollups, 1 + 3);
      // The device counts what its rollups hold: the 5 readings of the kept minutes, not the ancient one.
      const shown = (await h.get(`/device/${device}`)).json();
      assert.deepEqual([shown.readings, shown.last_reading_at], [5, new Date(kept + 61_000).toISOString()]);

      // The series over the removed hour still answers from the rollups.
      const series = await h.get(
        `/analyze_statistics/series?device_id=${device}&bucket=1h&start_date=${new Date(old).toISOString()}` +
          `&end_date=${new Date(old + HOUR - 1).toISOString()}`,
      );
      assert.equal(series.statusCode, 200, series.body);
      assert.deepEqual(
        series
          .json()
          .map((b: { count: number; min: number; max: number; mean: number }) => [
            b.count,
            b.min,
            b.max,
            b.mean,
          ]),
        [[3, 3, 10, 6]],
      );

      // Statistics over a range reaching back before the retention say from when readings are kept.
      const horizon = new Date(dayOf(Date.now() - 30 * DAY)).toISOString();
      const over = await h.get(
        `/analyze_statistics/?device_id=${device}&start_date=${new Date(old).toISOString()}`,
      );
      assert.equal(over.statusCode, 200, over.body);
      assert.deepEqual([over.json().count, over.json().readings_retained_from], [2, horizon]);
      const grouped = await h.get(`/analyze_statistics/?device_id=${device}&attr=x,y&group_by=device`);
      assert.equal(grouped.json()[0].x.readings_retained_from, horizon);
      const recent = await h.get(
        `/analyze_statistics/?device_id=${device}&start_date=${new Date(kept).toISOString()}`,
      );
      assert.deepEqual([recent.json().count, 'readings_retained_from' in recent.json()], [2, false]);

      // A second run finds nothing more to do.
      const again = await maintain(h.db, h.engine, h.config.retention);
      assert.equal(again.deletedReadings, 0);
      assert.equal(again.deletedRollups, 0);
    });

    it('keeps everything when no retention is set', async () => {
      const device = await h.createDevice();
      const stored = await h.post('/data/', [
        { device_id: device, x: 1, y: 1, z: 1, timestamp: new Date(Date.now() - 3000 * DAY).toISOString() },
      ]);
      assert.equal(stored.statusCode, 200, stored.body);
      const report = await maintain(h.db, h.engine, { readingsDays: undefined, rollupsDays: undefined });
      assert.deepEqual([report.deletedReadings, report.deletedRollups, report.dropped], [0, 0, []]);
      assert.equal(
        (await h.db.selectFrom('data').select('id').where('device_id', '=', device).execute()).length,
        1,
      );
    });

    it('stores readings far in the past (before any partition) and answers their ids in order', async () => {
      const device = await h.createDevice();
      const timestamps = ['1971-06-01T00:00:00Z', '2001-01-01T12:00:00Z', new Date().toISOString()];
      const stored = await h.post(
        '/data/',
        timestamps.map((timestamp, i) => ({ device_id: device, x: i, y: 0, z: 0, timestamp })),
      );
      assert.equal(stored.statusCode, 200, stored.body);
      const ids: number[] = stored.json().ids;
      assert.deepEqual(
        [...ids].sort((a, b) => a - b),
        ids,
      );
      const single = await h.post('/data/', { device_id: device, x: 9, y: 0, z: 0 });
      assert.ok(single.json().id > (ids.at(-1) as number));
    });
  });
}
