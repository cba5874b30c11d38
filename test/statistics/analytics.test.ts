import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { type Harness, onEachEngine } from '../helpers/harness.js';

/**
 * The analytics of /analyze_statistics/ (issue 4): mean, variance and stddev (sample and population),
 * percentiles, several attributes in one call and group_by=device, checked against a reference
 * computed here in plain JS from the readings the test posted, on each engine.
 *
 * Tolerances (the engines may add in another order than the reference, so sums are compared within a
 * bound relative to the magnitude of the inputs, not to the result, which may cancel to near zero):
 * - count, min, max and the 0th and 100th percentiles: strict equality (they are values read back).
 * - median and other percentiles: relative 1e-9 of the larger of the two sorted values interpolated
 *   (numpy's default, linear between sorted[floor(h)] and sorted[ceil(h)] with h = (n - 1) * p / 100).
 * - sum: |got - want| <= 1e-12 * sum(|v|); mean: that bound divided by n.
 * - the sum of squared deviations ss (variance * (n - 1), or * n for the population): 1e-12 * ss, plus
 *   n * meanTol^2, because an engine squares the deviations from its own mean, which is only known to
 *   lie within meanTol of the true mean, and sum((v - m')^2) = ss + n * (m - m')^2. A naive
 *   sum-of-squares variance (sum(v^2) - sum(v)^2 / n) misses this by orders of magnitude on 1e9 + small
 *   offsets. stddev: the bound that the variance's tolerance implies for a square root.
 * - where the reference itself overflows to Infinity (a sum, or a sum of squared deviations), null.
 */

type Axis = 'x' | 'y' | 'z';
const AXES: Axis[] = ['x', 'y', 'z'];
const PERCENTILES = [0, 5, 25, 50, 75, 95, 99, 100];
const PERCENTILE_QUERY = `percentiles=${PERCENTILES.join(',')}`;
const T0 = Date.UTC(2024, 0, 1);
const MINUTE = 60_000;

type Answer = Record<string, unknown>;

// ---------------------------------------------------------------------------------------------------
// The reference.

/** mulberry32: a tiny seeded PRNG, so every run posts the same readings. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Neumaier's compensated sum: the reference sum, accurate to about one rounding of the result. */
function accurateSum(values: number[]): number {
  let sum = 0;
  let compensation = 0;
  for (const v of values) {
    const t = sum + v;
    if (!Number.isFinite(t)) return t;
    compensation += Math.abs(sum) >= Math.abs(v) ? sum - t + v : v - t + sum;
    sum = t;
  }
  return sum + compensation;
}

/** An expected statistic: null, or a number and how far from it an answer may lie (0: exactly it). */
interface Expected {
  want: number | null;
  tol: number;
}

const nothing: Expected = { want: null, tol: 0 };

/** Linear interpolation between the two nearest ranks, numpy's default: h = (n - 1) * p / 100. */
function percentileOf(sorted: number[], p: number): Expected {
  const h = ((sorted.length - 1) * p) / 100;
  const lo = Math.floor(h);
  const hi = Math.ceil(h);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  const t = h - lo;
  // a + (b - a) * t, the engines' form, unless b - a overflows where the result does not (±1.5e308).
  const want = lo === hi ? a : Number.isFinite(b - a) ? a + (b - a) * t : a * (1 - t) + b * t;
  const tol = p === 0 || p === 100 ? 0 : 1e-9 * Math.max(Math.abs(a), Math.abs(b));
  return { want, tol };
}

interface Reference {
  fields: Record<string, Expected>;
  percentiles: Record<string, Expected>;
}

function reference(values: number[], percentiles: number[] = PERCENTILES): Reference {
  const n = values.length;
  assert.ok(n > 0, 'the reference needs readings');
  const sorted = [...values].sort((a, b) => a - b);
  const sum = accurateSum(values);
  const sumTol = 1e-12 * accurateSum(values.map(Math.abs));
  const meanTol = sumTol / n;
  const fields: Record<string, Expected> = {
    count: { want: n, tol: 0 },
    min: { want: sorted[0] as number, tol: 0 },
    max: { want: sorted[n - 1] as number, tol: 0 },
    median: percentileOf(sorted, 50),
    sum: Number.isFinite(sum) ? { want: sum, tol: sumTol } : nothing,
    mean: Number.isFinite(sum) ? { want: sum / n, tol: meanTol } : nothing,
    variance: nothing,
    stddev: nothing,
    variance_population: nothing,
    stddev_population: nothing,
  };
  if (Number.isFinite(sum)) {
    // Two-pass: the squared deviations from the (accurate) mean.
    const mean = sum / n;
    const ss = accurateSum(values.map((v) => (v - mean) ** 2));
    if (Number.isFinite(ss)) {
      const ssTol = 1e-12 * ss + n * meanTol ** 2;
      const spread = (divisor: number): [Expected, Expected] => {
        const variance = ss / divisor;
        const varianceTol = ssTol / divisor;
        const stddev = Math.sqrt(variance);
        // |sqrt(a) - sqrt(b)| <= min(sqrt(|a - b|), |a - b| / sqrt(b)), plus the rounding of the root.
        const stddevTol =
          Math.min(Math.sqrt(varianceTol), stddev > 0 ? varianceTol / stddev : Number.POSITIVE_INFINITY) +
          4 * Number.EPSILON * stddev;
        return [
          { want: variance, tol: varianceTol },
          { want: stddev, tol: stddevTol },
        ];
      };
      [fields.variance_population, fields.stddev_population] = spread(n);
      if (n >= 2) [fields.variance, fields.stddev] = spread(n - 1);
    }
  }
  return {
    fields,
    percentiles: Object.fromEntries(percentiles.map((p) => [String(p), percentileOf(sorted, p)])),
  };
}

/** Why `got` is not the expected statistic, or null when it is. */
function mismatch(got: unknown, expected: Expected, label: string): string | null {
  if (expected.want === null) return got === null ? null : `${label}: got ${got}, want null`;
  if (typeof got !== 'number') return `${label}: got ${got}, want ${expected.want}`;
  const error = Math.abs(got - expected.want);
  return error <= expected.tol
    ? null
    : `${label}: got ${got}, want ${expected.want} (off by ${error}, tolerance ${expected.tol})`;
}

const STATISTICS_KEYS = [
  'count',
  'min',
  'max',
  'sum',
  'mean',
  'median',
  'variance',
  'stddev',
  'variance_population',
  'stddev_population',
];

/**
 * Every way one attribute's statistics (asked with the given percentiles) differ from the reference,
 * all of them rather than the first, so that a failure shows the whole picture.
 */
function mismatches(
  got: Answer,
  values: number[],
  label: string,
  percentiles: number[] | null = PERCENTILES,
): string[] {
  const want = reference(values, percentiles ?? []);
  const keys = percentiles ? [...STATISTICS_KEYS, 'percentiles'] : STATISTICS_KEYS;
  const found: (string | null)[] = [];
  if (JSON.stringify(Object.keys(got).sort()) !== JSON.stringify([...keys].sort())) {
    found.push(`${label}: fields ${Object.keys(got)}, want ${keys}`);
  }
  for (const [key, expected] of Object.entries(want.fields)) {
    found.push(mismatch(got[key], expected, `${label} ${key}`));
  }
  if (percentiles) {
    const answered = (got.percentiles ?? {}) as Record<string, unknown>;
    const wantKeys = percentiles.map(String).sort();
    if (JSON.stringify(Object.keys(answered).sort()) !== JSON.stringify(wantKeys)) {
      found.push(`${label}: percentile keys ${Object.keys(answered)}, want ${wantKeys}`);
    }
    for (const [key, expected] of Object.entries(want.percentiles)) {
      found.push(mismatch(answered[key], expected, `${label} percentile ${key}`));
    }
  }
  return found.filter((m): m is string => m !== null);
}

function assertNoMismatches(found: string[]) {
  assert.ok(found.length === 0, `${found.length} mismatches:\n${found.join('\n')}`);
}

function assertMatchesReference(
  got: Answer,
  values: number[],
  label: string,
  percentiles: number[] | null = PERCENTILES,
) {
  assertNoMismatches(mismatches(got, values, label, percentiles));
}

const ORDER_FREE = ['count', 'min', 'max', 'median', 'percentiles'];

/**
 * Two answers over the same readings (one attribute of a multi-attribute answer, or one group, against
 * the single answer): the order-free statistics identical; sums, means and spreads identical or, as an
 * engine may visit the rows in another order, within the reference's tolerance of each other.
 */
function assertSameStatistics(got: Answer, single: Answer, values: number[], label: string) {
  assert.deepEqual(Object.keys(got).sort(), Object.keys(single).sort(), `${label}: fields`);
  for (const key of ORDER_FREE) assert.deepEqual(got[key], single[key], `${label} ${key}`);
  const want = reference(values, []).fields;
  for (const key of STATISTICS_KEYS.filter((k) => !ORDER_FREE.includes(k))) {
    const a = got[key];
    const b = single[key];
    if (a === null || b === null) {
      assert.equal(a, b, `${label} ${key}`);
      continue;
    }
    const tol = (want[key] as Expected).tol;
    assert.ok(Math.abs((a as number) - (b as number)) <= tol, `${label} ${key}: ${a} vs ${b} (tol ${tol})`);
  }
}

// ---------------------------------------------------------------------------------------------------
// The data.

interface Dataset {
  name: string;
  values: Record<Axis, number[]>;
}

/** sign * mantissa * 10^exponent with the exponent uniform in [lowest, highest]: a magnitude spread. */
const magnitudes = (lowest: number, highest: number) => (random: () => number) =>
  (random() < 0.5 ? -1 : 1) * (1 + random() * 9) * 10 ** (lowest + random() * (highest - lowest - 1));

function makeDatasets(): Dataset[] {
  const random = mulberry32(20240101);
  const generators: [string, number, (random: () => number) => number][] = [
    ['ties', 400, (r) => [-3, -1, 0, 0, 2, 2.5, 2.5, 7][Math.floor(r() * 8)] as number],
    ['constant', 10, () => 4.2],
    ['negatives, odd count', 101, (r) => -(r() * 1000 + 0.001)],
    ['single value', 1, (r) => (r() - 0.5) * 1e6],
    ['even count', 64, (r) => (r() - 0.5) * 200],
    ['odd count', 63, (r) => (r() - 0.5) * 200],
    ['integers', 500, (r) => Math.floor(r() * 2_000_001) - 1_000_000],
    ['large integers', 200, (r) => Math.floor((r() - 0.5) * 2 * Number.MAX_SAFE_INTEGER)],
    ['1e9 + small offsets', 1000, (r) => 1e9 + r()],
    ['1e15 + tiny offsets', 300, (r) => 1e15 + Math.floor(r() * 100) / 8],
    ['magnitudes near 1e-300', 50, magnitudes(-300, -290)],
    ['magnitudes near 1e300', 50, magnitudes(290, 300)],
    ['magnitudes 1e-300 to 1e300 mixed', 99, magnitudes(-300, 300)],
    ['magnitudes 1e-150 to 1e150 mixed', 99, magnitudes(-150, 150)],
  ];
  return generators.map(([name, n, generate]) => ({
    name,
    values: {
      x: Array.from({ length: n }, () => generate(random)),
      y: Array.from({ length: n }, () => generate(random)),
      z: Array.from({ length: n }, () => generate(random)),
    },
  }));
}

/** Posts the readings of one device, a minute apart from `start`, in batches. */
async function postReadings(h: Harness, device: number, values: Record<Axis, number[]>, start = T0) {
  const readings = values.x.map((x, i) => ({
    device_id: device,
    x,
    y: values.y[i] as number,
    z: values.z[i] as number,
    timestamp: new Date(start + i * MINUTE).toISOString(),
  }));
  for (let i = 0; i < readings.length; i += 10_000) {
    const batch = readings.slice(i, i + 10_000);
    const response = await h.post('/data/', batch);
    assert.equal(response.statusCode, 200, response.body);
    assert.equal(response.json().stored, batch.length);
  }
}

async function getJson(h: Harness, url: string): Promise<unknown> {
  const response = await h.get(url);
  assert.equal(response.statusCode, 200, `${url}: ${response.statusCode} ${response.body}`);
  return JSON.parse(response.body);
}

// ---------------------------------------------------------------------------------------------------
// 1. Exactness.

onEachEngine('analytics: every statistic against a plain JS reference', (h: Harness) => {
  const datasets = makeDatasets();
  const devices = new Map<string, number>();

  before(async () => {
    const owner = await h.signUp();
    for (const dataset of datasets) {
      const device = await h.createDevice(owner.token, dataset.name.slice(0, 50));
      devices.set(dataset.name, device);
      await postReadings(h, device, dataset.values);
    }
  });

  for (const dataset of datasets) {
    it(`${dataset.name}: x, y and z with percentiles ${PERCENTILES.join(',')}`, async () => {
      const device = devices.get(dataset.name) as number;
      const found: string[] = [];
      for (const axis of AXES) {
        const url = `/analyze_statistics/?device_id=${device}&attr=${axis}&${PERCENTILE_QUERY}`;
        found.push(
          ...mismatches((await getJson(h, url)) as Answer, dataset.values[axis], `${dataset.name} ${axis}`),
        );
      }
      assertNoMismatches(found);
    });
  }

  it('answers every dataset alike in attr=all and in group_by=device', async () => {
    const grouped = (await getJson(
      h,
      `/analyze_statistics/?group_by=device&attr=all&${PERCENTILE_QUERY}`,
    )) as Answer[];
    assert.deepEqual(
      grouped.map((entry) => entry.device_id),
      [...devices.values()].sort((a, b) => a - b),
    );
    const found: string[] = [];
    for (const dataset of datasets) {
      const device = devices.get(dataset.name) as number;
      const all = (await getJson(
        h,
        `/analyze_statistics/?device_id=${device}&attr=all&${PERCENTILE_QUERY}`,
      )) as Record<Axis, Answer>;
      const group = grouped.find((entry) => entry.device_id === device) as Answer;
      for (const axis of AXES) {
        found.push(...mismatches(all[axis], dataset.values[axis], `${dataset.name} attr=all ${axis}`));
        found.push(
          ...mismatches(group[axis] as Answer, dataset.values[axis], `${dataset.name} group_by ${axis}`),
        );
      }
    }
    assertNoMismatches(found);
  });
});

// ---------------------------------------------------------------------------------------------------
// 2-4 and 6. Several attributes, group_by=device, percentiles validation, OpenAPI.

onEachEngine('analytics: attributes, groups and percentiles', (h: Harness) => {
  const random = mulberry32(7);
  const readings = new Map<number, { values: Record<Axis, number[]>; start: number }>();
  let owner: { id: number; token: string };
  let other: { id: number; token: string };
  let ownerA: number;
  let ownerB: number;
  let ownerEmpty: number;
  let otherA: number;
  let otherLate: number;

  /** A device's readings of one attribute, those at indices [from, to] when given (a minute apart). */
  const valuesOf = (device: number, axis: Axis, from = 0, to = Number.POSITIVE_INFINITY) =>
    (readings.get(device)?.values[axis] ?? []).filter((_, i) => i >= from && i <= to);

  before(async () => {
    owner = await h.signUp();
    other = await h.signUp();
    // Interleaved, so that device order is not the order of the owners.
    ownerA = await h.createDevice(owner.token, 'a');
    otherA = await h.createDevice(other.token, 'other a');
    ownerB = await h.createDevice(owner.token, 'b');
    ownerEmpty = await h.createDevice(owner.token, 'never sent anything');
    otherLate = await h.createDevice(other.token, 'other, later');
    const plan: [number, number, number][] = [
      [ownerA, 40, T0],
      [otherA, 25, T0],
      [ownerB, 31, T0],
      [otherLate, 12, T0 + 24 * 60 * MINUTE],
    ];
    for (const [device, n, start] of plan) {
      const draw = () => Array.from({ length: n }, () => Math.round((random() - 0.4) * 1e4) / 100);
      const values = { x: draw(), y: draw(), z: draw() };
      readings.set(device, { values, start });
      await postReadings(h, device, values, start);
    }
  });

  const withReadings = () => [...readings.keys()].sort((a, b) => a - b);

  it('answers attr=x,y,z and attr=all per attribute, each equal to the single-attribute answer', async () => {
    for (const filter of ['', `device_id=${ownerA}&`, `device_id=${otherLate}&`]) {
      const singles = {} as Record<Axis, Answer>;
      for (const axis of AXES) {
        singles[axis] = (await getJson(
          h,
          `/analyze_statistics/?${filter}attr=${axis}&${PERCENTILE_QUERY}`,
        )) as Answer;
      }
      for (const attr of ['x,y,z', 'all', 'z,x,y', 'x,y,z,x']) {
        const url = `/analyze_statistics/?${filter}attr=${attr}&${PERCENTILE_QUERY}`;
        const body = (await getJson(h, url)) as Record<string, Answer>;
        assert.deepEqual(Object.keys(body).sort(), ['x', 'y', 'z'], url);
        for (const axis of AXES) {
          const values = [...readings.entries()]
            .filter(([device]) => filter === '' || filter === `device_id=${device}&`)
            .flatMap(([device]) => valuesOf(device, axis));
          assertSameStatistics(body[axis] as Answer, singles[axis], values, `${url} ${axis}`);
          assertMatchesReference(body[axis] as Answer, values, `${url} ${axis}`);
        }
      }
    }
  });

  it('answers a subset of attributes per attribute, and the flat object for one attribute given twice', async () => {
    const pair = (await getJson(h, `/analyze_statistics/?device_id=${ownerB}&attr=z,y`)) as Record<
      string,
      Answer
    >;
    assert.deepEqual(Object.keys(pair).sort(), ['y', 'z']);
    assertMatchesReference(pair.y as Answer, valuesOf(ownerB, 'y'), 'attr=z,y y', null);
    assertMatchesReference(pair.z as Answer, valuesOf(ownerB, 'z'), 'attr=z,y z', null);

    const flat = await getJson(h, `/analyze_statistics/?device_id=${ownerB}&attr=x`);
    for (const attr of ['x,x', 'x,x,x']) {
      assert.deepEqual(await getJson(h, `/analyze_statistics/?device_id=${ownerB}&attr=${attr}`), flat, attr);
    }
    assertMatchesReference(flat as Answer, valuesOf(ownerB, 'x'), 'attr=x', null);
  });

  it('is a 422 at query.attr for an attribute list it does not know', async () => {
    for (const attr of ['w', 'x,', '', ',x', 'x,,y', 'x,w', 'all,x', 'ALL', 'X', 'x y']) {
      const url = `/analyze_statistics/?attr=${encodeURIComponent(attr)}`;
      for (const route of [url, url.replace('/?', `/${owner.id}?`)]) {
        const response = await h.get(route);
        assert.equal(response.statusCode, 422, `${route}: ${response.body}`);
        const detail = response.json().detail;
        assert.ok(
          Array.isArray(detail) && detail.some((item) => JSON.stringify(item.loc) === '["query","attr"]'),
          `${route}: ${response.body}`,
        );
      }
    }
  });

  it('answers group_by=device with one entry per device, in device order, equal to device_id=', async () => {
    const grouped = (await getJson(
      h,
      `/analyze_statistics/?group_by=device&${PERCENTILE_QUERY}`,
    )) as Answer[];
    assert.ok(Array.isArray(grouped));
    assert.deepEqual(
      grouped.map((entry) => entry.device_id),
      withReadings(),
    );
    for (const entry of grouped) {
      const device = entry.device_id as number;
      const { device_id: _, ...statistics } = entry;
      const single = (await getJson(
        h,
        `/analyze_statistics/?device_id=${device}&${PERCENTILE_QUERY}`,
      )) as Answer;
      assertSameStatistics(statistics, single, valuesOf(device, 'x'), `group ${device}`);
      assertMatchesReference(statistics, valuesOf(device, 'x'), `group ${device}`);
    }
    // Without percentiles, an entry has none either; with device_id, the one device.
    const plain = (await getJson(h, '/analyze_statistics/?group_by=device&attr=y')) as Answer[];
    for (const entry of plain) {
      const { device_id: device, ...statistics } = entry;
      assertMatchesReference(statistics, valuesOf(device as number, 'y'), `group ${device} y`, null);
    }
    const one = (await getJson(h, `/analyze_statistics/?group_by=device&device_id=${ownerB}`)) as Answer[];
    assert.deepEqual(
      one.map((entry) => entry.device_id),
      [ownerB],
    );
  });

  it('combines group_by=device with start_date and end_date, and with attr=all', async () => {
    // Minutes 10 to 20 of the first hour: otherLate (a day later) is outside, the others partly inside.
    const start = new Date(T0 + 10 * MINUTE).toISOString();
    const end = new Date(T0 + 20 * MINUTE).toISOString();
    const dates = `start_date=${start}&end_date=${end}`;
    for (const attr of ['x', 'all', 'x,y,z']) {
      const url = `/analyze_statistics/?group_by=device&${dates}&attr=${attr}&${PERCENTILE_QUERY}`;
      const grouped = (await getJson(h, url)) as Answer[];
      assert.deepEqual(
        grouped.map((entry) => entry.device_id),
        [ownerA, otherA, ownerB].sort((a, b) => a - b),
        url,
      );
      for (const entry of grouped) {
        const { device_id: device, ...rest } = entry;
        const single = (await getJson(
          h,
          `/analyze_statistics/?device_id=${device}&${dates}&attr=${attr}&${PERCENTILE_QUERY}`,
        )) as Answer;
        if (attr === 'x') {
          assertSameStatistics(rest, single, valuesOf(device as number, 'x', 10, 20), `${url} ${device}`);
          assertMatchesReference(rest, valuesOf(device as number, 'x', 10, 20), `${url} ${device}`);
          assert.equal(rest.count, 11);
          continue;
        }
        assert.deepEqual(Object.keys(rest).sort(), ['x', 'y', 'z'], `${url} ${device}`);
        for (const axis of AXES) {
          const values = valuesOf(device as number, axis, 10, 20);
          const label = `${url} ${device} ${axis}`;
          assertSameStatistics(rest[axis] as Answer, (single as Record<Axis, Answer>)[axis], values, label);
          assertMatchesReference(rest[axis] as Answer, values, label);
        }
      }
    }
  });

  it("limits group_by=device on /analyze_statistics/{user_id} to that user's devices", async () => {
    const mine = (await getJson(
      h,
      `/analyze_statistics/${owner.id}?group_by=device&attr=all&${PERCENTILE_QUERY}`,
    )) as Answer[];
    // ownerEmpty has no readings, so it has no entry.
    assert.deepEqual(
      mine.map((entry) => entry.device_id),
      [ownerA, ownerB],
    );
    assert.ok(!mine.some((entry) => entry.device_id === ownerEmpty));
    const theirs = (await getJson(h, `/analyze_statistics/${other.id}?group_by=device`)) as Answer[];
    assert.deepEqual(
      theirs.map((entry) => entry.device_id),
      [otherA, otherLate],
    );
    for (const entry of [...mine, ...theirs]) {
      const device = entry.device_id as number;
      if (mine.includes(entry)) {
        for (const axis of AXES) {
          assertMatchesReference(entry[axis] as Answer, valuesOf(device, axis), `owner ${device} ${axis}`);
        }
      } else {
        const { device_id: _, ...statistics } = entry;
        assertMatchesReference(statistics, valuesOf(device, 'x'), `other ${device}`, null);
      }
    }
    const filtered = (await getJson(
      h,
      `/analyze_statistics/${other.id}?group_by=device&end_date=${new Date(T0 + 60 * MINUTE).toISOString()}`,
    )) as Answer[];
    assert.deepEqual(
      filtered.map((entry) => entry.device_id),
      [otherA],
    );
  });

  it('answers [] for group_by=device over an empty selection', async () => {
    const lonely = await h.signUp();
    await h.createDevice(lonely.token, 'silent');
    for (const url of [
      '/analyze_statistics/?group_by=device&start_date=2100-01-01T00:00:00Z',
      '/analyze_statistics/?group_by=device&attr=all&start_date=2100-01-01T00:00:00Z&percentiles=50',
      `/analyze_statistics/?group_by=device&device_id=${ownerEmpty}`,
      `/analyze_statistics/${lonely.id}?group_by=device`,
      `/analyze_statistics/${lonely.id}?group_by=device&attr=x,y`,
      `/analyze_statistics/${owner.id}?group_by=device&device_id=${ownerEmpty}`,
    ]) {
      assert.deepEqual(await getJson(h, url), [], url);
    }
  });

  it('is a 422 naming percentiles for a value out of 0-100, not a number, or more than 20', async () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => i * 4).join(',');
    for (const percentiles of ['101', '-1', 'a', '100.5', '50,101', '5,a', many(21)]) {
      const url = `/analyze_statistics/?percentiles=${encodeURIComponent(percentiles)}`;
      for (const route of [url, `${url}&group_by=device`, url.replace('/?', `/${owner.id}?`)]) {
        const response = await h.get(route);
        assert.equal(response.statusCode, 422, `${route}: ${response.body}`);
        const detail = response.json().detail;
        assert.ok(
          Array.isArray(detail) &&
            detail.some((item) => JSON.stringify(item.loc) === '["query","percentiles"]'),
          `${route}: ${response.body}`,
        );
      }
    }
    // Twenty values is the limit, not past it.
    const twenty = (await getJson(
      h,
      `/analyze_statistics/?device_id=${ownerA}&percentiles=${many(20)}`,
    )) as Answer;
    const wanted = many(20).split(',').map(Number);
    assertMatchesReference(twenty, valuesOf(ownerA, 'x'), 'twenty percentiles', wanted);
  });

  it('answers percentiles=50 equal to the median, and fractional percentiles keyed as given', async () => {
    for (const device of withReadings()) {
      for (const axis of AXES) {
        const body = (await getJson(
          h,
          `/analyze_statistics/?device_id=${device}&attr=${axis}&percentiles=50`,
        )) as Answer;
        assert.deepEqual(Object.keys(body.percentiles as object), ['50']);
        assert.equal((body.percentiles as Record<string, number>)['50'], body.median, `${device} ${axis}`);
      }
    }
    const body = (await getJson(
      h,
      `/analyze_statistics/?device_id=${ownerA}&percentiles=2.5,97.5,12.25,100,0`,
    )) as Answer;
    assertMatchesReference(body, valuesOf(ownerA, 'x'), 'fractional percentiles', [2.5, 97.5, 12.25, 100, 0]);
  });

  it('documents percentiles, group_by and attr in /openapi.json', async () => {
    const doc = (await getJson(h, '/openapi.json')) as {
      paths: Record<string, { get?: { parameters?: { name: string; in: string; schema?: object }[] } }>;
    };
    for (const path of ['/analyze_statistics/', '/analyze_statistics/{user_id}']) {
      const parameters = doc.paths[path]?.get?.parameters ?? [];
      for (const name of ['percentiles', 'group_by', 'attr']) {
        const parameter = parameters.find((p) => p.name === name && p.in === 'query');
        assert.ok(parameter, `${path} documents ${name}: ${JSON.stringify(parameters.map((p) => p.name))}`);
        assert.ok(parameter.schema, `${path} ${name} has a schema`);
      }
      const groupBy = parameters.find((p) => p.name === 'group_by') as { schema: { enum?: string[] } };
      assert.deepEqual(groupBy.schema.enum, ['device']);
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// 5. A sum beyond the double range.

onEachEngine('analytics: a sum beyond the double range', (h: Harness) => {
  let device: number;
  let negative: number;
  let ordinary: number;
  const usual = { x: [1, 2, 3.5], y: [-4, 0.25, 9], z: [1e-300, 3e-300, -2e-300] };

  before(async () => {
    device = await h.createDevice();
    negative = await h.createDevice();
    ordinary = await h.createDevice();
    await postReadings(h, device, { x: [1.5e308, 1.5e308], y: [1, 2], z: [-1.5e308, 1.5e308] });
    await postReadings(h, negative, { x: [-1.5e308, -1.5e308], y: [1.5e308, 1], z: [0, 0] });
    await postReadings(h, ordinary, usual);
  });

  it('answers 200 and valid JSON with sum and mean null, the rest exact', async () => {
    const response = await h.get(`/analyze_statistics/?device_id=${device}&percentiles=0,50,100`);
    assert.equal(response.statusCode, 200, response.body);
    const body = JSON.parse(response.body);
    assert.equal(body.count, 2);
    assert.equal(body.min, 1.5e308);
    assert.equal(body.max, 1.5e308);
    assert.equal(body.sum, null);
    assert.equal(body.mean, null);
    assert.equal(body.median, 1.5e308);
    assert.deepEqual(body.percentiles, { '0': 1.5e308, '50': 1.5e308, '100': 1.5e308 });
    // A sum beyond the double range makes the spread null too, never Infinity or NaN.
    for (const key of ['variance', 'stddev', 'variance_population', 'stddev_population']) {
      assert.equal(body[key], null, key);
    }
  });

  it('answers the same for a negative overflow, and keeps the other attributes exact', async () => {
    const body = (await getJson(h, `/analyze_statistics/?device_id=${negative}&attr=all`)) as Record<
      Axis,
      Answer
    >;
    assert.equal(body.x.count, 2);
    assert.equal(body.x.min, -1.5e308);
    assert.equal(body.x.median, -1.5e308);
    assert.equal(body.x.sum, null);
    assert.equal(body.x.mean, null);
    assertMatchesReference(body.z, [0, 0], 'z', null);
    // y: 1.5e308 + 1 is finite; its squared deviations are not.
    assertMatchesReference(body.y, [1.5e308, 1], 'y', null);
  });

  it('answers 200 over every device at once, grouped or not', async () => {
    for (const url of [
      '/analyze_statistics/?attr=all&percentiles=50',
      '/analyze_statistics/?group_by=device&attr=all&percentiles=50',
      `/analyze_statistics/?device_id=${device}&attr=z`,
    ]) {
      const response = await h.get(url);
      assert.equal(response.statusCode, 200, `${url}: ${response.body}`);
      JSON.parse(response.body);
    }
  });

  it("keeps the other devices' sums in group_by=device when one device's sum overflows", async () => {
    const grouped = (await getJson(h, '/analyze_statistics/?group_by=device&attr=x,y')) as Answer[];
    assert.deepEqual(
      grouped.map((entry) => entry.device_id),
      [device, negative, ordinary],
    );
    const entry = grouped[2] as Answer;
    assertNoMismatches([
      ...mismatches(entry.x as Answer, usual.x, 'ordinary x', null),
      ...mismatches(entry.y as Answer, usual.y, 'ordinary y', null),
    ]);
    assert.equal(((grouped[0] as Answer).x as Answer).sum, null);
  });

  // Both engines interpolate as a + (b - a) * t, and b - a overflows here: the service computes such
  // percentiles again from the halved values, so the answer is exact and never null.
  it('answers the median 0 of -1.5e308 and 1.5e308, whose sum is 0 but whose range overflows', async () => {
    const body = (await getJson(
      h,
      `/analyze_statistics/?device_id=${device}&attr=z&percentiles=25,50`,
    )) as Answer;
    assertMatchesReference(body, [-1.5e308, 1.5e308], 'z = ±1.5e308', [25, 50]);
    assert.equal(body.median, 0);
    assert.deepEqual(body.percentiles, { '25': -0.75e308, '50': 0 });
    // Grouped, and beside other values and devices whose percentiles need no second look.
    const grouped = (await getJson(
      h,
      '/analyze_statistics/?group_by=device&attr=all&percentiles=25',
    )) as Answer[];
    const entry = grouped.find((e) => e.device_id === device) as Record<Axis, Answer>;
    assert.deepEqual([entry.z.median, entry.z.percentiles], [0, { '25': -0.75e308 }]);
    assert.equal(entry.x.median, 1.5e308);
    const other = grouped.find((e) => e.device_id === ordinary) as Record<Axis, Answer>;
    assertMatchesReference(other.x, usual.x, 'ordinary x beside the overflow', [25]);
  });
});
