import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { type Harness, onEachEngine } from '../helpers/harness.js';

type Axis = 'x' | 'y' | 'z';
interface Posted {
  device: number;
  x: number;
  y: number;
  z: number;
  at: number;
}

/** The reference: computed here from what the test posted, not by the code under test. */
function expected(values: number[]) {
  if (values.length === 0) return { count: 0, min: null, max: null, sum: 0, mean: null, median: null };
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const median =
    sorted.length % 2 === 1
      ? sorted[middle]
      : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
  const sum = values.reduce((a, b) => a + b, 0);
  return { count: values.length, min: sorted[0], max: sorted.at(-1), sum, mean: sum / values.length, median };
}

function assertStatistics(actual: Record<string, unknown>, values: number[]) {
  const want = expected(values);
  assert.equal(actual.count, want.count);
  for (const key of ['min', 'max', 'sum', 'mean', 'median'] as const) {
    const got = actual[key];
    const target = want[key];
    if (target === null || target === undefined) assert.equal(got, target ?? null, key);
    else
      assert.ok(
        Math.abs((got as number) - target) <= 1e-9 * Math.max(1, Math.abs(target)),
        `${key}: ${got} != ${target}`,
      );
  }
}

onEachEngine('statistics', (h: Harness) => {
  const posted: Posted[] = [];
  let owner: { id: number; token: string };
  let other: { id: number; token: string };
  let deviceA: number;
  let deviceB: number;
  let deviceOther: number;
  let middle: string;

  const values = (axis: Axis, keep: (p: Posted) => boolean = () => true) =>
    posted.filter(keep).map((p) => p[axis]);

  before(async () => {
    owner = await h.signUp();
    other = await h.signUp();
    deviceA = await h.createDevice(owner.token, 'a');
    deviceB = await h.createDevice(owner.token, 'b');
    deviceOther = await h.createDevice(other.token, 'other');
    const plan: [number, number, number, number][] = [
      [deviceA, 1, -5, 0.5],
      [deviceA, 7, 2.25, -3],
      [deviceB, 3, 8, 100],
      [deviceOther, -40, 0, 1e6],
      [deviceA, 7, 11, 2],
      [deviceB, 12.5, -1, -7.75],
      [deviceOther, 99, 3, 3],
      [deviceA, 2, 6, 4],
    ];
    // By the device's clock, a second apart from ten minutes ago, with a clear boundary (`middle`)
    // between the first four readings and the rest.
    const base = Date.now() - 600_000;
    middle = new Date(base + 4500).toISOString();
    for (const [index, [device, x, y, z]] of plan.entries()) {
      const timestamp = new Date(base + index * 1000 + (index >= 4 ? 1000 : 0)).toISOString();
      const response = await h.post('/data/', { device_id: device, x, y, z, timestamp });
      assert.equal(response.statusCode, 200, response.body);
      posted.push({ device, x, y, z, at: Date.parse(response.json().timestamp) });
    }
  });

  it('summarises every reading, with x as the default value', async () => {
    const response = await h.get('/analyze_statistics/');
    assert.equal(response.statusCode, 200);
    assertStatistics(response.json(), values('x'));
  });

  for (const axis of ['x', 'y', 'z'] as const) {
    it(`summarises attr=${axis}`, async () => {
      assertStatistics((await h.get(`/analyze_statistics/?attr=${axis}`)).json(), values(axis));
    });
  }

  it('applies device_id alone', async () => {
    const body = (await h.get(`/analyze_statistics/?device_id=${deviceA}&attr=y`)).json();
    assertStatistics(
      body,
      values('y', (p) => p.device === deviceA),
    );
  });

  it('applies start_date alone and end_date alone, inclusively', async () => {
    const after = (await h.get(`/analyze_statistics/?start_date=${middle}`)).json();
    assertStatistics(
      after,
      values('x', (p) => p.at >= Date.parse(middle)),
    );
    const before = (await h.get(`/analyze_statistics/?end_date=${middle}`)).json();
    assertStatistics(
      before,
      values('x', (p) => p.at <= Date.parse(middle)),
    );
    const exact = posted[2] as Posted;
    const instant = new Date(exact.at).toISOString();
    const single = (
      await h.get(`/analyze_statistics/?start_date=${instant}&end_date=${instant}&device_id=${exact.device}`)
    ).json();
    assertStatistics(
      single,
      values('x', (p) => p.at === exact.at && p.device === exact.device),
    );
  });

  it('applies every filter together', async () => {
    const url = `/analyze_statistics/?device_id=${deviceA}&start_date=${middle}&end_date=${new Date(Date.now() + 60_000).toISOString()}&attr=z`;
    const body = (await h.get(url)).json();
    assertStatistics(
      body,
      values('z', (p) => p.device === deviceA && p.at >= Date.parse(middle)),
    );
    assert.equal(body.count, 2);
  });

  it('reads a date without a zone as UTC and honours an explicit offset', async () => {
    const utc = middle.replace('Z', '');
    const shifted = new Date(Date.parse(middle) + 3 * 3600_000).toISOString().replace('Z', '+03:00');
    const a = (await h.get(`/analyze_statistics/?start_date=${encodeURIComponent(utc)}`)).json();
    const b = (await h.get(`/analyze_statistics/?start_date=${encodeURIComponent(shifted)}`)).json();
    const want = values('x', (p) => p.at >= Date.parse(middle));
    assertStatistics(a, want);
    assertStatistics(b, want);
  });

  it('answers an empty selection with count 0, sum 0 and nulls', async () => {
    const response = await h.get('/analyze_statistics/?start_date=2100-01-01T00:00:00Z');
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), {
      count: 0,
      min: null,
      max: null,
      sum: 0,
      mean: null,
      median: null,
      variance: null,
      stddev: null,
      variance_population: null,
      stddev_population: null,
    });
  });

  it("limits /analyze_statistics/{user_id} to that user's devices, with the other filters", async () => {
    assertStatistics(
      (await h.get(`/analyze_statistics/${owner.id}?attr=z`)).json(),
      values('z', (p) => p.device !== deviceOther),
    );
    assertStatistics(
      (await h.get(`/analyze_statistics/${other.id}`)).json(),
      values('x', (p) => p.device === deviceOther),
    );
    const combined = (
      await h.get(`/analyze_statistics/${owner.id}?device_id=${deviceB}&end_date=${middle}`)
    ).json();
    assertStatistics(
      combined,
      values('x', (p) => p.device === deviceB && p.at <= Date.parse(middle)),
    );
  });

  it('answers a user without devices with an empty selection, not global statistics', async () => {
    const lonely = await h.signUp();
    assert.deepEqual((await h.get(`/analyze_statistics/${lonely.id}`)).json().count, 0);
  });

  it('is a 404 for an unknown user, an unknown device, or a device the user does not own', async () => {
    for (const url of [
      '/analyze_statistics/999999',
      '/analyze_statistics/?device_id=999999',
      `/analyze_statistics/${owner.id}?device_id=${deviceOther}`,
    ]) {
      const response = await h.get(url);
      assert.equal(response.statusCode, 404, url);
      assert.equal(typeof response.json().detail, 'string');
    }
  });

  it('is a 422 naming the parameter for bad input', async () => {
    const cases: [string, string][] = [
      ['/analyze_statistics/?attr=id', 'attr'],
      ['/analyze_statistics/?attr=create_date', 'attr'],
      ['/analyze_statistics/?device_id=abc', 'device_id'],
      ['/analyze_statistics/?device_id=-3', 'device_id'],
      ['/analyze_statistics/?device_id=1e400', 'device_id'],
      ['/analyze_statistics/?device_id=99999999999999999999', 'device_id'],
      ['/analyze_statistics/?start_date=yesterday', 'start_date'],
      ['/analyze_statistics/?end_date=2024-02-30T00:00:00', 'end_date'],
      ['/analyze_statistics/?start_date=2024-13-01', 'start_date'],
      ['/analyze_statistics/?start_date=2025-01-02&end_date=2025-01-01', 'start_date'],
      ['/analyze_statistics/abc', 'user_id'],
      ['/analyze_statistics/-1', 'user_id'],
    ];
    for (const [url, field] of cases) {
      const response = await h.get(url);
      assert.equal(response.statusCode, 422, `${url}: ${response.body}`);
      const detail = response.json().detail;
      assert.ok(
        Array.isArray(detail) && detail.some((item) => item.loc.at(-1) === field),
        `${url}: ${response.body}`,
      );
    }
  });

  it('computes the median of an even count as the mean of the two middle values', async () => {
    const device = await h.createDevice();
    for (const x of [10, 1, 4, 3]) await h.post('/data/', { device_id: device, x, y: 0, z: 0 });
    const body = (await h.get(`/analyze_statistics/?device_id=${device}`)).json();
    assert.deepEqual(body, {
      count: 4,
      min: 1,
      max: 10,
      sum: 18,
      mean: 4.5,
      median: 3.5,
      variance: 15,
      stddev: Math.sqrt(15),
      variance_population: 11.25,
      stddev_population: Math.sqrt(11.25),
    });
  });

  it('answers valid JSON when a sum overflows a double', async () => {
    const device = await h.createDevice();
    for (const x of [1.5e308, 1.5e308]) await h.post('/data/', { device_id: device, x, y: 0, z: 0 });
    const response = await h.get(`/analyze_statistics/?device_id=${device}`);
    assert.equal(response.statusCode, 200);
    const body = response.json();
    assert.equal(body.count, 2);
    assert.equal(body.max, 1.5e308);
    assert.equal(body.sum, null);
  });
});
