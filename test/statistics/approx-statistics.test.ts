import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { type FoldCursor, foldRollups } from '../../src/statistics/rollup-fold.js';
import { type Harness, onEachEngine } from '../helpers/harness.js';
import { foldAll, unfoldedMinutes } from '../helpers/rollups.js';
import { asReadings, type Point } from '../helpers/series-reference.js';

type Axis = 'x' | 'y' | 'z';

const ERROR = 0.01;
const DAY = 86_400_000;
const START = Date.UTC(2026, 0, 20, 7, 13);

/** Integers from -500 to 1500, a tenth of them zero: negative values and zero must survive the sketch. */
const value = (i: number, salt: number) => (i % 10 === 0 ? 0 : ((i * 7919 + salt * 104_729) % 2001) - 500);

/** The exact reference, computed here: moments by two passes, and each percentile's neighbouring readings. */
function reference(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  const count = values.length;
  const sum = values.reduce((a, b) => a + b, 0);
  const mean = sum / count;
  const m2 = values.reduce((a, v) => a + (v - mean) ** 2, 0);
  const around = (fraction: number) => {
    const rank = fraction * (count - 1);
    const low = sorted[Math.floor(rank)] as number;
    return { low, high: sorted[Math.ceil(rank)] as number, weight: rank - Math.floor(rank) };
  };
  return { count, min: sorted[0], max: sorted.at(-1), sum, mean, variance: m2 / (count - 1), around };
}

const close = (actual: unknown, expected: number, what: string) =>
  assert.ok(
    Math.abs((actual as number) - expected) <= 1e-9 * Math.max(1, Math.abs(expected)),
    `${what}: ${actual} != ${expected}`,
  );

/** Exact moments equal the reference; the median and percentiles within the stated bound of their rank. */
function assertApprox(actual: Record<string, unknown>, values: number[], percentiles: number[]) {
  const want = reference(values);
  assert.equal(actual.approximate, true);
  assert.equal(actual.relative_error, ERROR);
  assert.equal(actual.count, want.count);
  assert.equal(actual.min, want.min);
  assert.equal(actual.max, want.max);
  close(actual.sum, want.sum, 'sum');
  close(actual.mean, want.mean, 'mean');
  close(actual.variance, want.variance, 'variance');
  // Within the bound of the exact percentile, interpolated between its two readings as numpy does
  // (of the larger reading in magnitude, where the two have different signs).
  const within = (got: unknown, fraction: number, what: string) => {
    const { low, high, weight } = want.around(fraction);
    const exact = low + (high - low) * weight;
    const bound = ERROR * Math.max(Math.abs(low), Math.abs(high)) + 1e-9;
    assert.ok(Math.abs((got as number) - exact) <= bound, `${what}: ${got} not within ${ERROR} of ${exact}`);
  };
  within(actual.median, 0.5, 'median');
  const answered = actual.percentiles as Record<string, number>;
  for (const p of percentiles) within(answered[String(p)], p / 100, `p${p}`);
}

onEachEngine(
  'statistics with accuracy=approx',
  (h: Harness) => {
    const posted: Point[] = [];
    let owner: { id: number; token: string };
    let devices: number[];
    const post = async (readings: Point[]) => {
      for (let i = 0; i < readings.length; i += 5000) {
        const chunk = readings.slice(i, i + 5000);
        const response = await h.post('/data/', asReadings(chunk));
        assert.equal(response.statusCode, 200, response.body);
      }
      posted.push(...readings);
    };
    const values = (axis: Axis, keep: (p: Point) => boolean = () => true) =>
      posted.filter(keep).map((p) => p[axis]);
    const get = async (query: string, path = '/analyze_statistics/') => {
      const response = await h.get(`${path}?${query}`);
      assert.equal(response.statusCode, 200, response.body);
      return response.json();
    };

    before(async () => {
      owner = await h.signUp();
      devices = [await h.createDevice(owner.token, 'a'), await h.createDevice(owner.token, 'b')];
      // Two devices over 75 days (three calendar months), one reading every ~17 minutes each, posted
      // out of order.
      const readings: Point[] = [];
      devices.forEach((device, d) => {
        for (let i = 0; i < 6400; i++) {
          readings.push({
            device,
            x: value(i, d),
            y: value(i, d + 7) / 8,
            z: -value(i, d + 3),
            at: START + i * 1_013_000,
          });
        }
      });
      readings.sort((a, b) => (a.at % 7) - (b.at % 7));
      await post(readings);
      await foldAll(h);
      assert.equal(await unfoldedMinutes(h), 0);
    });

    it('answers exact moments and percentiles within the bound, over the whole table and over a ragged range', async () => {
      const percentiles = [1, 5, 25, 75, 95, 99];
      const all = await get(`attr=all&accuracy=approx&percentiles=${percentiles.join(',')}`);
      for (const axis of ['x', 'y', 'z'] as const) assertApprox(all[axis], values(axis), percentiles);
      const from = START + 3 * DAY + 1_234_567;
      const to = START + 61 * DAY + 7_654_321;
      const query = `start_date=${new Date(from).toISOString()}&end_date=${new Date(to).toISOString()}`;
      const ranged = await get(`attr=x,z&accuracy=approx&percentiles=5,95&${query}`);
      const inRange = (p: Point) => p.at >= from && p.at <= to;
      assertApprox(ranged.x, values('x', inRange), [5, 95]);
      assertApprox(ranged.z, values('z', inRange), [5, 95]);
      const exact = await get(`attr=x&percentiles=5,95&${query}`);
      assert.equal(exact.approximate, undefined);
      assert.equal(exact.count, ranged.x.count);
    });

    it('groups by device and answers for one owner', async () => {
      const grouped = await get('attr=y&accuracy=approx&group_by=device&percentiles=50');
      assert.deepEqual(
        grouped.map((g: { device_id: number }) => g.device_id),
        devices,
      );
      for (const group of grouped) {
        assertApprox(
          group,
          values('y', (p) => p.device === group.device_id),
          [50],
        );
      }
      const owned = await get(
        `attr=x&accuracy=approx&device_id=${devices[1]}`,
        `/analyze_statistics/${owner.id}`,
      );
      assertApprox(
        owned,
        values('x', (p) => p.device === devices[1]),
        [],
      );
    });

    it('reads unfolded hours from the readings: late readings count before the folder runs, and after', async () => {
      const late: Point[] = [0, 1, 2].map((i) => ({
        device: devices[0] as number,
        x: 100_000 + i,
        y: -3,
        z: 0,
        at: START + 20 * DAY + i * 60_000,
      }));
      await post(late);
      assert.ok((await unfoldedMinutes(h)) > 0);
      const before = await get('attr=x&accuracy=approx&percentiles=99');
      assertApprox(before, values('x'), [99]);
      assert.equal(before.max, 100_002);
      await foldAll(h);
      assert.equal(await unfoldedMinutes(h), 0);
      // The same answer from the rollups (the variance up to rounding: the parts merge in another order).
      const after = await get('attr=x&accuracy=approx&percentiles=99');
      assert.deepEqual(
        { ...after, variance: 0, stddev: 0, variance_population: 0, stddev_population: 0 },
        {
          ...before,
          variance: 0,
          stddev: 0,
          variance_population: 0,
          stddev_population: 0,
        },
      );
      close(after.variance, before.variance, 'variance');
    });

    it('counts a late reading merged into a minute already folded, before the folder runs again and after', async () => {
      const device = devices[1] as number;
      // One second after the device's 100th reading: the same minute, folded in `before`.
      const late: Point = { device, x: 300_000, y: 1, z: 1, at: START + 100 * 1_013_000 + 1_000 };
      await post([late]);
      // Whether the app's folder has folded the minute again by now or not, the answer holds the reading:
      // a minute left marked folded would be read from an hour rollup without it.
      const answer = await get(`attr=x&accuracy=approx&device_id=${device}`);
      assertApprox(
        answer,
        values('x', (p) => p.device === device),
        [],
      );
      assert.equal(answer.max, 300_000);
      await foldAll(h);
      assert.equal(await unfoldedMinutes(h), 0);
      const folded = await get(`attr=x&accuracy=approx&device_id=${device}`);
      assert.equal(folded.count, answer.count);
      assert.equal(folded.max, 300_000);
    });

    it('folds a late reading that lands behind the cursor of the folder (it wraps around to it)', async () => {
      const device = devices[0] as number;
      // Sparse readings over 30 days, a few per hour: many fold steps of many hours.
      const spread: Point[] = Array.from({ length: 240 }, (_, i) => ({
        device,
        x: (i % 17) - 8,
        y: 5,
        z: -5,
        at: START + 2 * DAY + i * 10_800_000 + 17_000,
      }));
      await post(spread);
      let after: FoldCursor | undefined;
      for (let i = 0; i < 3; i++)
        after = (await foldRollups(h.db, h.engine, 20, undefined, undefined, after))?.next;
      assert.ok(after, 'the steps left a cursor');
      const late: Point = { device, x: -77_777, y: 5, z: -5, at: START + 2 * DAY + 5_000 };
      assert.ok(late.at < (after?.[1] as number), 'the late reading is behind the cursor');
      await post([late]);
      await foldAll(h, 20, after);
      assert.equal(await unfoldedMinutes(h), 0);
      const answer = await get(`attr=x&accuracy=approx&device_id=${device}`);
      assertApprox(
        answer,
        values('x', (p) => p.device === device),
        [],
      );
      assert.equal(answer.min, -77_777);
    });

    it('keeps an import, and readings that arrive while the folder runs, in the rollups', async () => {
      const device = devices[1] as number;
      const lines = Array.from({ length: 500 }, (_, i) => {
        const at = START + 40 * DAY + i * 7_000;
        posted.push({ device, x: i - 250, y: i, z: 1, at });
        return `${device},${i - 250},${i},1,${new Date(at).toISOString()}`;
      });
      const imported = await h.inject({
        method: 'POST',
        url: '/data/import',
        headers: { 'content-type': 'text/csv' },
        payload: `device_id,x,y,z,timestamp\n${lines.join('\n')}\n`,
      });
      assert.equal(imported.statusCode, 200, imported.body);
      // Ingest and folding interleaved: each fold step races the posts into the same hours.
      const arriving: Point[] = Array.from({ length: 300 }, (_, i) => ({
        device,
        x: (i % 13) - 6,
        y: 2,
        z: 3,
        at: START + 40 * DAY + (i % 60) * 60_000 + i,
      }));
      const folding = (async () => {
        let after: FoldCursor | undefined;
        for (let i = 0; i < 30; i++)
          after = (await foldRollups(h.db, h.engine, 50, undefined, undefined, after))?.next;
      })();
      for (let i = 0; i < arriving.length; i += 10) await post(arriving.slice(i, i + 10));
      await folding;
      await foldAll(h);
      assert.equal(await unfoldedMinutes(h), 0);
      const answer = await get('attr=all&accuracy=approx&percentiles=10,90');
      for (const axis of ['x', 'y', 'z'] as const) assertApprox(answer[axis], values(axis), [10, 90]);
      // The hour rollups, recomputed here from what was posted: nothing lost, nothing counted twice.
      const hours = await h.db
        .selectFrom('reading_hours')
        .select(['device_id', 'start', 'readings', 'x_sum'])
        .execute();
      const expected = new Map<string, { readings: number; sum: number }>();
      for (const p of posted) {
        const key = `${p.device}/${p.at - (p.at % 3_600_000)}`;
        const entry = expected.get(key) ?? { readings: 0, sum: 0 };
        entry.readings++;
        entry.sum += p.x;
        expected.set(key, entry);
      }
      assert.equal(hours.length, expected.size);
      for (const hour of hours) {
        const want = expected.get(`${hour.device_id}/${Number(hour.start)}`);
        assert.equal(Number(hour.readings), want?.readings, `hour ${hour.start} of device ${hour.device_id}`);
        close(hour.x_sum, want?.sum as number, 'hour sum');
      }
    });

    it('drops a deleted device from the rollups and from the answers', async () => {
      const device = devices[0] as number;
      const deleted = await h.inject({
        method: 'DELETE',
        url: `/device/${device}`,
        headers: { authorization: `Bearer ${owner.token}` },
      });
      assert.equal(deleted.statusCode, 204);
      posted.splice(0, posted.length, ...posted.filter((p) => p.device !== device));
      for (const table of ['reading_hours', 'reading_days', 'reading_months'] as const) {
        const left = await h.db
          .selectFrom(table)
          .select('device_id')
          .where('device_id', '=', device)
          .execute();
        assert.equal(left.length, 0, table);
      }
      const answer = await get('attr=x&accuracy=approx&group_by=device&percentiles=50');
      assert.equal(answer.length, 1);
      assertApprox(answer[0], values('x'), [50]);
    });

    it('answers an empty selection as the exact path does, and refuses an unknown accuracy', async () => {
      const empty = await get('attr=x&accuracy=approx&start_date=2020-01-01&end_date=2020-01-02');
      assert.equal(empty.count, 0);
      assert.equal(empty.sum, 0);
      assert.equal(empty.median, null);
      assert.equal((await h.get('/analyze_statistics/?accuracy=roughly')).statusCode, 422);
    });
  },
  { ROLLUP_FOLD_INTERVAL_MS: '0' },
);

onEachEngine(
  'the rollup folder of the running service',
  (h: Harness) => {
    it('folds what ingest marks, by itself, off the event loop (SQLite: a heavy-query worker plans; PostgreSQL: steps in a thread of their own)', async () => {
      const device = await h.createDevice();
      const at = Date.UTC(2026, 2, 3, 10, 17);
      const readings = Array.from({ length: 2000 }, (_, i) => ({
        device_id: device,
        x: value(i, 5),
        y: i,
        z: -i,
        timestamp: new Date(at + i * 97_000).toISOString(),
      }));
      assert.equal((await h.post('/data/', readings)).statusCode, 200);
      for (let waited = 0; (await unfoldedMinutes(h)) > 0; waited += 100) {
        assert.ok(waited < 30_000, 'the folder did not catch up within 30 s');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const hours = await h.db.selectFrom('reading_hours').select('readings').execute();
      assert.equal(
        hours.reduce((sum, hour) => sum + Number(hour.readings), 0),
        readings.length,
      );
      const answer = await h.get(
        `/analyze_statistics/?attr=x&accuracy=approx&percentiles=50&device_id=${device}`,
      );
      assertApprox(
        answer.json(),
        readings.map((r) => r.x),
        [50],
      );
    });
  },
  { ROLLUP_FOLD_INTERVAL_MS: '50' },
);
