import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { prng } from '../../bench/readings.js';
import { type Harness, onEachEngine } from '../helpers/harness.js';
import {
  type AnsweredBucket,
  type Attr,
  asReadings,
  assertSeriesMatches,
  type Point,
  referenceSeries,
} from '../helpers/series-reference.js';

/**
 * Time series held against a reference computed here, with many readings per bucket (medians of even
 * and odd counts, ties): calendar days and weeks across daylight-saving changes, hours across them,
 * weeks from Monday, user_id, and zones whose offset has seconds (read from every reading).
 * The bucket starts are written out below from the zones' rules, not computed by the code under test.
 */

const MINUTE = 60_000;
const HOUR = 3_600_000;

const at = (iso: string) => {
  const ms = Date.parse(iso);
  assert.ok(!Number.isNaN(ms), iso);
  return ms;
};

/** Bucket boundaries from the expected starts (as answered) and the end of the last bucket. */
const boundariesOf = (starts: string[], end: string) => [...starts.map(at), at(end)];

onEachEngine('time series against a reference computed here', (h: Harness) => {
  const points: Point[] = [];
  const random = prng(16);
  /** Quarter steps from -10 to 10: ties, and medians that are exact in any engine. */
  const value = () => (Math.floor(random() * 81) - 40) / 4;

  /** Stores readings of `device` every `stepMs` in [from, to), in batches, and remembers them. */
  async function store(device: number, from: string, to: string, stepMs: number): Promise<void> {
    const batch: Point[] = [];
    for (let t = at(from); t < at(to); t += stepMs)
      batch.push({ device, at: t, x: value(), y: value(), z: value() });
    for (let i = 0; i < batch.length; i += 5000) {
      const response = await h.post('/data/', asReadings(batch.slice(i, i + 5000)));
      assert.equal(response.statusCode, 200, response.body);
    }
    points.push(...batch);
  }

  const of = (...devices: number[]) => points.filter((p) => devices.includes(p.device));

  async function series(query: string): Promise<AnsweredBucket[]> {
    const response = await h.get(`/analyze_statistics/series?${query}`);
    assert.equal(response.statusCode, 200, `${query}: ${response.body}`);
    return response.json();
  }

  /** The series of each value, with and without medians (two different paths), against the reference. */
  async function assertAgainstReference(
    query: string,
    starts: string[],
    end: string,
    selected: Point[],
    range: [string, string],
  ): Promise<void> {
    const boundaries = boundariesOf(starts, end);
    const dates = `start_date=${encodeURIComponent(range[0])}&end_date=${encodeURIComponent(range[1])}`;
    for (const attr of ['x', 'y'] as Attr[]) {
      const expected = referenceSeries(selected, boundaries, attr, at(range[0]), at(range[1]));
      for (const median of ['false', 'true']) {
        const answer = await series(`${query}&${dates}&attr=${attr}&median=${median}`);
        assert.deepEqual(
          answer.map((bucket) => bucket.start),
          starts.filter((_, i) => expected.some((bucket) => bucket.start === boundaries[i])),
          `${query} median=${median}: starts`,
        );
        assertSeriesMatches(answer, expected, `${query} ${attr} median=${median}`);
      }
    }
  }

  let fallBack: number;
  let hourly: number;
  let weekly: number;
  let lmt: number;

  before(async () => {
    fallBack = await h.createDevice();
    const other = await h.createDevice();
    hourly = await h.createDevice();
    weekly = await h.createDevice();
    lmt = await h.createDevice();
    await store(fallBack, '2026-10-23T20:00:00Z', '2026-10-27T02:00:00Z', 7 * MINUTE);
    await store(other, '2026-10-23T20:00:00Z', '2026-10-27T02:00:00Z', 13 * MINUTE);
    await store(hourly, '2026-11-01T02:00:00Z', '2026-11-01T11:00:00Z', 6 * MINUTE + 1234);
    await store(hourly, '2026-03-28T22:00:00Z', '2026-03-29T04:00:00Z', 6 * MINUTE + 1234);
    await store(weekly, '2026-10-05T00:00:00Z', '2026-11-10T00:00:00Z', 3 * HOUR + 17 * MINUTE);
    await store(lmt, '1890-05-30T20:00:00Z', '1890-06-01T04:00:00Z', 11 * MINUTE + 7_000);
    await store(lmt, '1960-05-31T22:00:00Z', '1960-06-01T03:00:00Z', 11 * MINUTE + 7_000);
  });

  it('answers the 25-hour fall-back day of Europe/Berlin as one bucket', async () => {
    const starts = ['2026-10-24T00:00:00+02:00', '2026-10-25T00:00:00+02:00', '2026-10-26T00:00:00+01:00'];
    const end = '2026-10-27T00:00:00+01:00';
    assert.equal(at(starts[2] as string) - at(starts[1] as string), 25 * HOUR);
    await assertAgainstReference(
      `device_id=${fallBack}&bucket=1d&tz=Europe/Berlin`,
      starts,
      end,
      of(fallBack),
      ['2026-10-24T00:00:00+02:00', '2026-10-26T23:59:59.999+01:00'],
    );
  });

  it('answers hour buckets across both daylight-saving changes, the repeated hour twice', async () => {
    // New York falls back at 06:00 UTC: 01:00 comes twice, first at -04:00, then at -05:00.
    const newYork = [
      '2026-10-31T23:00:00-04:00',
      '2026-11-01T00:00:00-04:00',
      '2026-11-01T01:00:00-04:00',
      '2026-11-01T01:00:00-05:00',
      '2026-11-01T02:00:00-05:00',
      '2026-11-01T03:00:00-05:00',
      '2026-11-01T04:00:00-05:00',
    ];
    await assertAgainstReference(
      `device_id=${hourly}&bucket=1h&tz=America/New_York`,
      newYork,
      '2026-11-01T05:00:00-05:00',
      of(hourly),
      ['2026-11-01T03:00:00Z', '2026-11-01T09:59:59.999Z'],
    );
    // Berlin springs forward at 01:00 UTC: 02:00 local does not exist.
    const berlin = ['2026-03-29T01:00:00+01:00', '2026-03-29T03:00:00+02:00', '2026-03-29T04:00:00+02:00'];
    await assertAgainstReference(
      `device_id=${hourly}&bucket=1h&tz=Europe/Berlin`,
      berlin,
      '2026-03-29T05:00:00+02:00',
      of(hourly),
      ['2026-03-29T00:00:00Z', '2026-03-29T02:59:59.999Z'],
    );
  });

  it('starts weeks on the Monday at or before the range, in the zone, 7 days and 1 hour across the change', async () => {
    const berlin = [
      '2026-10-12T00:00:00+02:00',
      '2026-10-19T00:00:00+02:00',
      '2026-10-26T00:00:00+01:00',
      '2026-11-02T00:00:00+01:00',
    ];
    for (const start of berlin)
      assert.equal(new Date(start.slice(0, 10)).getUTCDay(), 1, `${start} is a Monday`);
    // From a Wednesday: the first week starts the Monday before, and holds only readings from the range.
    await assertAgainstReference(
      `device_id=${weekly}&bucket=1w&tz=Europe/Berlin`,
      berlin,
      '2026-11-09T00:00:00+01:00',
      of(weekly),
      ['2026-10-14T12:00:00Z', '2026-11-04T12:00:00Z'],
    );
    // From a Sunday, in UTC: that Sunday belongs to the week of the Monday before.
    await assertAgainstReference(
      `device_id=${weekly}&bucket=1w`,
      ['2026-10-12T00:00:00+00:00', '2026-10-19T00:00:00+00:00'],
      '2026-10-26T00:00:00+00:00',
      of(weekly),
      ['2026-10-18T00:00:00Z', '2026-10-20T23:59:59.999Z'],
    );
  });

  it('reads every reading for zones whose offset has seconds, and answers starts that parse to the exact instant', async () => {
    // Before 1892, Europe/Brussels (and Europe/Amsterdam, linked to it) kept mean time, +00:17:30: hour
    // buckets start at hh:42:30 UTC. RFC 3339 offsets are whole minutes, so a start is written with the
    // offset rounded to +00:18 and the wall clock 30 s later: the same instant.
    await assertAgainstReference(
      `device_id=${lmt}&bucket=1h&tz=Europe/Brussels`,
      [
        '1890-05-31T23:00:30+00:18',
        '1890-06-01T00:00:30+00:18',
        '1890-06-01T01:00:30+00:18',
        '1890-06-01T02:00:30+00:18',
      ],
      '1890-06-01T03:00:30+00:18',
      of(lmt),
      ['1890-05-31T23:00:00Z', '1890-06-01T01:59:59.999Z'],
    );
    assert.equal(at('1890-06-01T00:00:30+00:18'), Date.UTC(1890, 4, 31, 23, 42, 30));
    await assertAgainstReference(
      `device_id=${lmt}&bucket=1d&tz=Europe/Amsterdam`,
      ['1890-05-31T00:00:30+00:18', '1890-06-01T00:00:30+00:18'],
      '1890-06-02T00:00:30+00:18',
      of(lmt),
      ['1890-05-31T12:00:00Z', '1890-06-01T12:00:00Z'],
    );
    // Liberia kept -00:44:30 until 1972.
    await assertAgainstReference(
      `device_id=${lmt}&bucket=1h&tz=Africa/Monrovia`,
      ['1960-05-31T23:00:30-00:44', '1960-06-01T00:00:30-00:44', '1960-06-01T01:00:30-00:44'],
      '1960-06-01T02:00:30-00:44',
      of(lmt),
      ['1960-06-01T00:00:00Z', '1960-06-01T02:30:00Z'],
    );
  });

  it("answers user_id with that user's devices only, spanning their readings, and every filter together", async () => {
    const [a, b] = [await h.signUp(), await h.signUp()];
    const [a1, a2, b1] = [
      await h.createDevice(a.token),
      await h.createDevice(a.token),
      await h.createDevice(b.token),
    ];
    // b1 reads first and last: a series of user a spans a's readings only.
    await store(b1, '2026-06-01T00:10:00Z', '2026-06-01T00:30:00Z', 5 * MINUTE);
    await store(a1, '2026-06-01T03:05:00Z', '2026-06-01T07:40:00Z', 9 * MINUTE);
    await store(a2, '2026-06-01T04:00:00Z', '2026-06-01T05:59:00Z', 4 * MINUTE);
    await store(b1, '2026-06-01T09:00:00Z', '2026-06-01T09:30:00Z', 5 * MINUTE);
    const hours = (from: number, to: number) =>
      Array.from({ length: to - from + 2 }, (_, i) => Date.UTC(2026, 5, 1, from + i));
    const cases: [string, Point[], number[]][] = [
      [`user_id=${a.id}`, of(a1, a2), hours(3, 7)],
      [`user_id=${a.id}&device_id=${a2}`, of(a2), hours(4, 5)],
      [`user_id=${b.id}`, of(b1), hours(0, 9)],
    ];
    for (const [query, selected, boundaries] of cases) {
      for (const median of ['false', 'true']) {
        const answer = await series(`${query}&bucket=1h&median=${median}`);
        assertSeriesMatches(answer, referenceSeries(selected, boundaries, 'x'), `${query} median=${median}`);
      }
    }
    const foreign = await h.get(`/analyze_statistics/series?user_id=${b.id}&device_id=${a1}`);
    assert.equal(foreign.statusCode, 404, foreign.body);
  });

  it('answers the median 0 of -1.5e308 and 1.5e308 in a bucket, beside ordinary buckets', async () => {
    const device = await h.createDevice();
    const readings = [
      [-1.5e308, '2026-02-01T10:05:00Z'],
      [1.5e308, '2026-02-01T10:06:00Z'],
      [2, '2026-02-01T11:05:00Z'],
      [4, '2026-02-01T11:06:00Z'],
    ].map(([x, timestamp]) => ({ device_id: device, x, y: 1, z: 1, timestamp }));
    assert.equal((await h.post('/data/', readings)).statusCode, 200);
    const query = `device_id=${device}&bucket=1h&median=true`;
    const single = await series(query);
    assert.deepEqual(
      single.map((b) => [b.start, b.count, b.min, b.max, b.mean, b.median]),
      [
        ['2026-02-01T10:00:00+00:00', 2, -1.5e308, 1.5e308, 0, 0],
        ['2026-02-01T11:00:00+00:00', 2, 2, 4, 3, 3],
      ],
    );
    const response = await h.get(`/analyze_statistics/series?${query}&attr=x,y`);
    assert.equal(response.statusCode, 200, response.body);
    assert.deepEqual(response.json()[0].x, { min: -1.5e308, max: 1.5e308, mean: 0, median: 0 });
  });
});
