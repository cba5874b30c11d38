import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { type Harness, onEachEngine } from '../helpers/harness.js';
import type { AnsweredBucket } from '../helpers/series-reference.js';

const HOUR = 3_600_000;

onEachEngine('statistics time series', (h: Harness) => {
  let device: number;
  // Every 6 hours from 2026-03-27T00:00Z: x = 0, 1, 2, ... around Berlin's spring-forward night (03-29).
  const readings = Array.from({ length: 16 }, (_, i) => ({ at: Date.UTC(2026, 2, 27) + i * 6 * HOUR, x: i }));

  before(async () => {
    device = await h.createDevice();
    const batch = readings.map((r) => ({
      device_id: device,
      x: r.x,
      y: -r.x,
      z: 0,
      timestamp: new Date(r.at).toISOString(),
    }));
    assert.equal((await h.post('/data/', batch)).statusCode, 200);
  });

  const series = async (query: string) => {
    const response = await h.get(`/analyze_statistics/series?device_id=${device}&${query}`);
    assert.equal(response.statusCode, 200, response.body);
    return response.json() as AnsweredBucket[];
  };

  it('buckets by the zone calendar: the daylight-saving day has 23 hours', async () => {
    const days = await series('bucket=1d&tz=Europe/Berlin');
    assert.deepEqual(
      days.map((d) => d.start),
      [
        '2026-03-27T00:00:00+01:00',
        '2026-03-28T00:00:00+01:00',
        '2026-03-29T00:00:00+01:00',
        '2026-03-30T00:00:00+02:00',
      ],
    );
    // Reference: local midnights as instants, computed here from the known offsets.
    const midnights = [
      Date.UTC(2026, 2, 26, 23),
      Date.UTC(2026, 2, 27, 23),
      Date.UTC(2026, 2, 28, 23),
      Date.UTC(2026, 2, 29, 22),
      Date.UTC(2026, 2, 30, 22),
    ];
    days.forEach((day, i) => {
      const inside = readings
        .filter((r) => r.at >= (midnights[i] as number) && r.at < (midnights[i + 1] as number))
        .map((r) => r.x);
      assert.equal(day.count, inside.length);
      assert.equal(day.min, Math.min(...inside));
      assert.equal(day.max, Math.max(...inside));
      assert.equal(day.mean, inside.reduce((a, b) => a + b, 0) / inside.length);
    });
  });

  it('answers fixed-width buckets in UTC by default, with every filter applied', async () => {
    const buckets = await series(
      'bucket=12h&attr=y&start_date=2026-03-27T06:00:00Z&end_date=2026-03-28T12:00:00Z',
    );
    assert.deepEqual(
      buckets.map((b) => [b.start, b.count, b.min, b.max]),
      [
        ['2026-03-27T00:00:00+00:00', 1, -1, -1],
        ['2026-03-27T12:00:00+00:00', 2, -3, -2],
        ['2026-03-28T00:00:00+00:00', 2, -5, -4],
        ['2026-03-28T12:00:00+00:00', 1, -6, -6],
      ],
    );
  });

  it('aligns hour buckets to a zone with a 45-minute offset', async () => {
    const buckets = await series('bucket=1h&tz=Asia/Kathmandu&end_date=2026-03-27T06:00:00Z');
    assert.deepEqual(
      buckets.map((b) => b.start),
      ['2026-03-27T05:00:00+05:45', '2026-03-27T11:00:00+05:45'],
    );
  });

  it('fills empty buckets with nulls or the previous values when asked, and adds medians', async () => {
    const range = 'bucket=3h&start_date=2026-03-27T00:00:00Z&end_date=2026-03-27T08:59:59Z';
    assert.equal((await series(range)).length, 2);
    const nulls = await series(`${range}&fill=null&median=true`);
    assert.deepEqual(
      nulls.map((b) => [b.count, b.min, b.median]),
      [
        [1, 0, 0],
        [0, null, null],
        [1, 1, 1],
      ],
    );
    const previous = await series(`${range}&fill=previous`);
    assert.deepEqual(
      previous.map((b) => [b.start.slice(11, 16), b.count, b.max]),
      [
        ['00:00', 1, 0],
        ['03:00', 0, 0],
        ['06:00', 1, 1],
      ],
    );
  });

  it('answers several values in one call, each equal to its own series', async () => {
    for (const bucket of ['6h', '1d']) {
      const query = `bucket=${bucket}&tz=Europe/Berlin&fill=null&median=true`;
      const all = await h.get(`/analyze_statistics/series?device_id=${device}&${query}&attr=x,y,z`);
      assert.equal(all.statusCode, 200, all.body);
      const combined = all.json() as Record<string, unknown>[];
      for (const attr of ['x', 'y', 'z']) {
        const alone = await series(`${query}&attr=${attr}`);
        assert.deepEqual(
          combined.map((b) => ({ start: b.start, count: b.count, ...(b[attr] as object) })),
          alone,
          `${bucket} ${attr}`,
        );
      }
    }
  });

  it('agrees with every reading at ragged range edges, in fixed and calendar buckets', async () => {
    // 600 readings 17.3 s apart over almost 3 hours: most minutes come from the per-minute rollups,
    // the partial minutes at both ends of the range from the readings themselves.
    const ragged = await h.createDevice();
    const at0 = Date.UTC(2026, 4, 10, 21, 0, 3, 250);
    const points = Array.from({ length: 600 }, (_, i) => ({
      at: at0 + i * 17_300,
      x: ((i * 7919) % 1000) / 8 - 60,
    }));
    const batch = points.map((p) => ({
      device_id: ragged,
      x: p.x,
      y: 0,
      z: 0,
      timestamp: new Date(p.at).toISOString(),
    }));
    assert.equal((await h.post('/data/', batch)).statusCode, 200);
    const start = at0 + 95_123;
    const end = at0 + 9_000_777;
    const range = `start_date=${new Date(start).toISOString()}&end_date=${new Date(end).toISOString()}`;
    const inRange = points.filter((p) => p.at >= start && p.at <= end);
    // Berlin midnight of 2026-05-11 is 22:00 UTC on the 10th: the day buckets split the range.
    const cases: [string, number[]][] = [
      ['bucket=5m', Array.from({ length: 31 }, (_, i) => at0 - 3_250 + i * 300_000)],
      ['bucket=1d&tz=Europe/Berlin', [Date.UTC(2026, 4, 9, 22), Date.UTC(2026, 4, 10, 22)]],
    ];
    for (const [bucket, starts] of cases) {
      const answer = (
        await h.get(`/analyze_statistics/series?device_id=${ragged}&attr=x&${bucket}&${range}`)
      ).json() as { start: string; count: number; min: number; max: number; mean: number }[];
      const expected = starts
        .map((from, i) => {
          const inside = inRange
            .filter((p) => p.at >= from && p.at < (starts[i + 1] ?? Number.POSITIVE_INFINITY))
            .map((p) => p.x);
          return { from, inside };
        })
        .filter(({ inside }) => inside.length > 0);
      assert.equal(answer.length, expected.length, bucket);
      answer.forEach((got, i) => {
        const { from, inside } = expected[i] as { from: number; inside: number[] };
        assert.equal(Date.parse(got.start), from, bucket);
        assert.deepEqual(
          [got.count, got.min, got.max],
          [inside.length, Math.min(...inside), Math.max(...inside)],
          `${bucket} ${got.start}`,
        );
        const mean = inside.reduce((a, b) => a + b, 0) / inside.length;
        assert.ok(Math.abs(got.mean - mean) < 1e-9, `${bucket} ${got.start}: ${got.mean} vs ${mean}`);
      });
    }
  });

  it('answers an empty selection with an empty series', async () => {
    assert.deepEqual(await series('start_date=2030-01-01T00:00:00Z&end_date=2030-01-02T00:00:00Z'), []);
    const lonely = await h.createDevice();
    assert.deepEqual((await h.get(`/analyze_statistics/series?device_id=${lonely}`)).json(), []);
  });

  it('refuses too many buckets, bad buckets, unknown zones and unknown devices', async () => {
    const cases: [string, number, string?][] = [
      ['bucket=1m&start_date=2000-01-01&end_date=2026-01-01', 422, 'bucket'],
      ['bucket=0h', 422, 'bucket'],
      ['bucket=1y', 422, 'bucket'],
      ['bucket=h', 422, 'bucket'],
      ['tz=Mars/Olympus', 422, 'tz'],
      ['fill=zero', 422, 'fill'],
      ['attr=w', 422, 'attr'],
      ['start_date=2026-02-01&end_date=2026-01-01', 422, 'start_date'],
    ];
    for (const [query, status, field] of cases) {
      const response = await h.get(`/analyze_statistics/series?device_id=${device}&${query}`);
      assert.equal(response.statusCode, status, `${query}: ${response.body}`);
      assert.equal(response.json().detail[0].loc.at(-1), field, query);
    }
    const tooMany = await h.get(
      `/analyze_statistics/series?device_id=${device}&bucket=1m&start_date=2000-01-01&end_date=2026-01-01`,
    );
    assert.match(tooMany.json().detail[0].msg, /10000/);
    assert.equal((await h.get('/analyze_statistics/series?device_id=999999')).statusCode, 404);
    assert.equal((await h.get('/analyze_statistics/series?user_id=999999')).statusCode, 404);
  });
});
