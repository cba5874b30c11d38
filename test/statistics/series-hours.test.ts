import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { type Harness, onEachEngine } from '../helpers/harness.js';
import { foldAll, unfoldedMinutes } from '../helpers/rollups.js';
import {
  type AnsweredBucket,
  type Attr,
  asReadings,
  assertSeriesMatches,
  type Point,
  referenceSeries,
} from '../helpers/series-reference.js';

const MINUTE = 60_000;
const HOUR = 3_600_000;
/** Two days before Berlin's spring-forward night (2026-03-29, 02:00 -> 03:00), to two days after. */
const START = Date.UTC(2026, 2, 27, 5, 7, 13, 250);
const ERROR = 0.01;

/** Integers from -500 to 1500, a tenth of them zero. */
const value = (i: number, salt: number) => (i % 10 === 0 ? 0 : ((i * 7919 + salt * 104_729) % 2001) - 500);

/** A bucket of one value, with what an approximate median adds. */
type Answered = AnsweredBucket & { approximate?: boolean; relative_error?: number };
/** A bucket of several values. */
type AnsweredValues = Pick<AnsweredBucket, 'start' | 'count'> &
  Partial<Record<Attr, Omit<Answered, 'start' | 'count'>>>;

onEachEngine(
  'series from the hourly rollups',
  (h: Harness) => {
    const posted: Point[] = [];
    let owner: { id: number; token: string };
    let devices: number[];
    const post = async (points: Point[]) => {
      for (let i = 0; i < points.length; i += 5000) {
        const response = await h.post('/data/', asReadings(points.slice(i, i + 5000)));
        assert.equal(response.statusCode, 200, response.body);
      }
      posted.push(...points);
    };
    const series = async <Bucket = Answered>(query: string) => {
      const response = await h.get(`/analyze_statistics/series?${query}`);
      assert.equal(response.statusCode, 200, response.body);
      return response.json() as Bucket[];
    };
    const iso = (t: number) => new Date(t).toISOString();
    /** Fixed-width bucket starts covering [from, to], aligned to a clock `offset` ahead of UTC. */
    const fixed = (width: number, from: number, to: number, offset = 0) => {
      const boundaries: number[] = [];
      for (let t = Math.floor((from + offset) / width) * width - offset; t <= to; t += width)
        boundaries.push(t);
      boundaries.push((boundaries.at(-1) as number) + width);
      return boundaries;
    };

    before(async () => {
      owner = await h.signUp();
      devices = [await h.createDevice(owner.token, 'a'), await h.createDevice(owner.token, 'b')];
      const points: Point[] = [];
      devices.forEach((device, d) => {
        for (let i = 0; i < 3000; i++) {
          points.push({ device, x: value(i, d), y: value(i, d + 7) / 8, z: -i, at: START + i * 101_003 + d });
        }
      });
      await post(points);
      await foldAll(h);
      assert.equal(await unfoldedMinutes(h), 0);
    });

    /** Each query's answer equals the reference computed here from the readings posted. */
    const assertAll = async (label: string) => {
      const end = posted.reduce((a, p) => Math.max(a, p.at), 0) + 1;
      // Ragged ends (mid-minute, mid-hour) over whole-hour buckets in UTC, every value.
      const from = START + 2 * HOUR + 17 * MINUTE + 3_456;
      const to = end - 5 * HOUR - 41 * MINUTE - 789;
      const ragged = `start_date=${iso(from)}&end_date=${iso(to)}`;
      for (const attr of ['x', 'y', 'z'] as Attr[]) {
        assertSeriesMatches(
          await series(`bucket=1h&attr=${attr}&${ragged}`),
          referenceSeries(posted, fixed(HOUR, from, to), attr, from, to),
          `${label}: 1h ${attr}`,
        );
      }
      assertSeriesMatches(
        await series(`bucket=6h&device_id=${devices[1]}`),
        referenceSeries(
          posted.filter((p) => p.device === devices[1]),
          fixed(6 * HOUR, START, end),
          'x',
        ),
        `${label}: 6h, one device`,
      );
      // Berlin's 3-hour buckets, fixed lengths aligned to its clock at the range's start (+01:00).
      assertSeriesMatches(
        await series(`bucket=3h&tz=Europe/Berlin&${ragged}`),
        referenceSeries(posted, fixed(3 * HOUR, from, to, HOUR), 'x', from, to),
        `${label}: 3h Berlin`,
      );
      // Berlin's days, the 23-hour day of the change among them, over the owner's devices: the local
      // midnights as instants, from the offsets known here (+01:00, then +02:00 from 03-29).
      const midnights = [
        Date.UTC(2026, 2, 26, 23),
        Date.UTC(2026, 2, 27, 23),
        Date.UTC(2026, 2, 28, 23),
        Date.UTC(2026, 2, 29, 22),
        Date.UTC(2026, 2, 30, 22),
      ];
      assertSeriesMatches(
        await series(`bucket=1d&tz=Europe/Berlin&attr=y&user_id=${owner.id}`),
        referenceSeries(posted, midnights, 'y'),
        `${label}: 1d Berlin`,
      );
      // A zone 45 minutes off UTC's hours: its hour buckets read the minutes, to the same answer.
      assertSeriesMatches(
        await series(`bucket=1h&tz=Asia/Kathmandu&${ragged}`),
        referenceSeries(posted, fixed(HOUR, from, to, 45 * MINUTE), 'x', from, to),
        `${label}: 1h Kathmandu`,
      );
    };

    it('answers the same buckets as the readings, over folded hours', async () => {
      await assertAll('folded');
    });

    it('counts late readings before the folder has folded their hours, and after', async () => {
      // Into folded hours of both devices, one of them far below and above every other value.
      const late: Point[] = [0, 1, 2, 3].map((i) => ({
        device: devices[i % 2] as number,
        x: i === 0 ? -1e6 : 2e6 + i,
        y: 0.5,
        z: 7,
        at: START + (20 + i * 7) * HOUR + i * 61_111,
      }));
      await post(late);
      assert.ok((await unfoldedMinutes(h)) > 0);
      await assertAll('unfolded');
      await foldAll(h);
      assert.equal(await unfoldedMinutes(h), 0);
      await assertAll('folded again');
    });

    it('answers medians within the bound from the sketches with accuracy=approx, exact ones by default', async () => {
      // A late reading keeps one hour unfolded: read from the readings, merged with the sketches.
      await post([{ device: devices[0] as number, x: 1234, y: 1, z: 1, at: START + 30 * HOUR + 5 }]);
      assert.ok((await unfoldedMinutes(h)) > 0);
      const end = posted.reduce((a, p) => Math.max(a, p.at), 0) + 1;
      const from = START + 3 * HOUR + 3 * MINUTE + 3;
      const query = `bucket=2h&attr=x,z&median=true&start_date=${iso(from)}&end_date=${iso(end)}`;
      const boundaries = fixed(2 * HOUR, from, end);
      const approx = await series<AnsweredValues>(`${query}&accuracy=approx`);
      const exact = await series<AnsweredValues>(query);
      const valuesOf = (bucket: AnsweredValues, attr: Attr): Answered => ({
        start: bucket.start,
        count: bucket.count,
        ...(bucket[attr] as Omit<Answered, 'start' | 'count'>),
      });
      for (const attr of ['x', 'z'] as const) {
        const want = referenceSeries(posted, boundaries, attr, from, end);
        assert.equal(approx.length, want.length);
        approx.forEach((bucket, i) => {
          const answered = valuesOf(bucket, attr);
          const reference = want[i] as (typeof want)[number];
          assert.equal(Date.parse(answered.start), reference.start);
          assert.deepEqual(
            [answered.count, answered.min, answered.max, answered.approximate, answered.relative_error],
            [reference.count, reference.min, reference.max, true, ERROR],
          );
          assert.ok(Math.abs((answered.mean as number) - reference.mean) <= 1e-9 * Math.abs(reference.mean));
          // Within the bound of the larger of the two middle readings in magnitude.
          const sorted = posted
            .filter((p) => p.at >= reference.start && p.at < reference.start + 2 * HOUR && p.at >= from)
            .map((p) => p[attr])
            .sort((a, b) => a - b);
          const middle = [
            sorted[Math.floor((sorted.length - 1) / 2)],
            sorted[Math.ceil((sorted.length - 1) / 2)],
          ];
          const bound = ERROR * Math.max(...middle.map((v) => Math.abs(v as number))) + 1e-9;
          assert.ok(
            Math.abs((answered.median as number) - reference.median) <= bound,
            `${attr} ${answered.start}: median ${answered.median}, exact ${reference.median}`,
          );
        });
        // The default stays exact, and says nothing of approximation.
        const exactValues = exact.map((bucket) => valuesOf(bucket, attr));
        assertSeriesMatches(exactValues, want, `exact ${attr}`);
        for (const bucket of exactValues) assert.equal(bucket.approximate, undefined);
      }
      // Minute buckets have no sketches: exact medians, not marked approximate.
      const minutes = await series(
        `bucket=30m&median=true&accuracy=approx&start_date=${iso(from)}&end_date=${iso(from + 6 * HOUR)}`,
      );
      assertSeriesMatches(
        minutes,
        referenceSeries(posted, fixed(30 * MINUTE, from, from + 6 * HOUR), 'x', from, from + 6 * HOUR),
        'minute buckets',
      );
      for (const bucket of minutes) assert.equal(bucket.approximate, undefined);
      await foldAll(h);
    });

    it('refuses an unknown accuracy with a 422 naming the parameter', async () => {
      const response = await h.get('/analyze_statistics/series?accuracy=roughly&median=true');
      assert.equal(response.statusCode, 422);
      assert.deepEqual(response.json().detail[0].loc, ['query', 'accuracy']);
    });
  },
  // The test folds by itself, so that it knows which hours are folded.
  { ROLLUP_FOLD_INTERVAL_MS: '0' },
);
