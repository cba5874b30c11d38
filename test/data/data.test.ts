import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import type { InjectOptions } from 'fastify';
import type { Reading } from '../../src/data/schemas.js';
import { type Harness, nextLink, onEachEngine } from '../helpers/harness.js';

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** A reading as the API answers it. */
type ReadingJson = Reading;

interface ValidationItem {
  loc: (string | number)[];
  msg: string;
  type: string;
}

/** A request that must be refused: the status, and what the 422 items must say when given. */
interface BadInput {
  label: string;
  raw?: string;
  request?: (device: number) => InjectOptions;
  body?: (device: number) => string;
  status: number;
  loc?: (string | number)[];
  type?: string;
  msg?: string;
}

const byTimeThenId = (a: ReadingJson, b: ReadingJson) =>
  Date.parse(a.timestamp) - Date.parse(b.timestamp) || a.id - b.id;

onEachEngine('data', (h: Harness) => {
  /** Every reading this file stored, as the API answered it: the reference for the listings. */
  const posted: ReadingJson[] = [];
  let deviceA: number;
  let deviceB: number;

  const readingCount = async () =>
    Number(
      (
        await h.db
          .selectFrom('data')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );

  async function postReading(
    device: number,
    x: number,
    y: number,
    z: number,
    timestamp?: string,
  ): Promise<ReadingJson> {
    const response = await h.post('/data/', { device_id: device, x, y, z, timestamp });
    assert.equal(response.statusCode, 200, response.body);
    const reading: ReadingJson = response.json();
    posted.push(reading);
    return reading;
  }

  async function walk(firstUrl: string): Promise<ReadingJson[][]> {
    const pages: ReadingJson[][] = [];
    let url: string | undefined = firstUrl;
    while (url !== undefined) {
      const response = await h.get(url);
      assert.equal(response.statusCode, 200, `${url}: ${response.body}`);
      pages.push(response.json());
      url = nextLink(response.headers.link);
      assert.ok(pages.length < 200, 'pagination does not end');
    }
    return pages;
  }

  const largestBodyLimit = () =>
    Math.max(
      h.config.bodyLimitBytes,
      (h.config as { batchBodyLimitBytes?: number }).batchBodyLimitBytes ?? 0,
    );

  /** Adds readings stored by a request that should have stored nothing, so one failure does not cascade. */
  async function recordStrays(): Promise<void> {
    const known = new Set(posted.map((r) => r.id));
    for (const row of await h.db.selectFrom('data').selectAll().execute()) {
      if (known.has(Number(row.id))) continue;
      posted.push({
        id: Number(row.id),
        device_id: Number(row.device_id),
        x: row.x,
        y: row.y,
        z: row.z,
        timestamp: new Date(Number(row.created_at)).toISOString(),
      });
    }
  }

  const ids = (readings: ReadingJson[]) => readings.map((r) => r.id);
  const expectedIds = (keep: (r: ReadingJson) => boolean) => ids([...posted].filter(keep).sort(byTimeThenId));
  const at = (r: ReadingJson) => Date.parse(r.timestamp);

  before(async () => {
    deviceA = await h.createDevice(undefined, 'a');
    deviceB = await h.createDevice(undefined, 'b');
  });

  it('stores a reading: 200 with id, device_id, x, y, z and a UTC timestamp', async () => {
    const before = Date.now();
    const response = await h.post('/data/', { device_id: deviceA, x: 0.1, y: -2.5, z: 1e-300 });
    const after = Date.now();
    assert.equal(response.statusCode, 200, response.body);
    const body: ReadingJson = response.json();
    posted.push(body);
    assert.deepEqual(Object.keys(body).sort(), ['device_id', 'id', 'timestamp', 'x', 'y', 'z']);
    assert.equal(typeof body.id, 'number');
    assert.deepEqual(
      { device_id: body.device_id, x: body.x, y: body.y, z: body.z },
      { device_id: deviceA, x: 0.1, y: -2.5, z: 1e-300 },
    );
    assert.match(body.timestamp, ISO_UTC);
    assert.ok(at(body) >= before && at(body) <= after, `${body.timestamp} not within the request`);

    const row = await h.db.selectFrom('data').selectAll().where('id', '=', body.id).executeTakeFirstOrThrow();
    assert.equal(Number(row.device_id), deviceA);
    assert.deepEqual([row.x, row.y, row.z], [0.1, -2.5, 1e-300]);
  });

  it('keeps the extremes of a double exactly', async () => {
    const response = await h.post(
      '/data/',
      `{"device_id":${deviceA},"x":1.7976931348623157e308,"y":-1.7976931348623157e308,"z":5e-324}`,
    );
    assert.equal(response.statusCode, 200, response.body);
    const body: ReadingJson = response.json();
    posted.push(body);
    assert.deepEqual([body.x, body.y, body.z], [Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE]);
    const row = await h.db.selectFrom('data').selectAll().where('id', '=', body.id).executeTakeFirstOrThrow();
    assert.deepEqual([row.x, row.y, row.z], [Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE]);
  });

  it('answers an unknown device with 404 and a string detail, storing nothing', async () => {
    const before = await h.countReadings();
    const response = await h.post('/data/', { device_id: 999_999, x: 1, y: 2, z: 3 });
    await recordStrays();
    assert.equal(response.statusCode, 404, response.body);
    assert.equal(typeof response.json().detail, 'string');
    assert.equal(await h.countReadings(), before);
  });

  const big = '9'.repeat(400);
  /** A valid reading's JSON text with one field's raw JSON replaced. */
  const reading =
    (key: 'device_id' | 'x' | 'y' | 'z', rawValue: string) =>
    (device: number): string => {
      const fields: Record<string, string> = {
        device_id: String(device),
        x: '1',
        y: '0',
        z: '0',
        [key]: rawValue,
      };
      return `{${Object.entries(fields)
        .map(([k, v]) => `"${k}":${v}`)
        .join(',')}}`;
    };
  const badInputs: BadInput[] = [
    {
      label: 'empty object',
      raw: '{}',
      status: 422,
      loc: ['body', 'device_id'],
      type: 'value_error.missing',
    },
    {
      label: 'missing z',
      body: (d) => `{"device_id":${d},"x":1,"y":2}`,
      status: 422,
      loc: ['body', 'z'],
      type: 'value_error.missing',
    },
    {
      label: 'x "1.5"',
      body: reading('x', '"1.5"'),
      status: 422,
      loc: ['body', 'x'],
      type: 'type_error.float',
    },
    {
      label: 'x true',
      body: reading('x', 'true'),
      status: 422,
      loc: ['body', 'x'],
      type: 'type_error.float',
    },
    {
      label: 'x null',
      body: reading('x', 'null'),
      status: 422,
      loc: ['body', 'x'],
      type: 'type_error.none.not_allowed',
    },
    { label: 'x [1]', body: reading('x', '[1]'), status: 422, loc: ['body', 'x'], type: 'type_error.float' },
    { label: 'x {}', body: reading('x', '{}'), status: 422, loc: ['body', 'x'], type: 'type_error.float' },
    { label: 'x 1e400', body: reading('x', '1e400'), status: 422, loc: ['body', 'x'] },
    { label: 'x -1e400', body: reading('x', '-1e400'), status: 422, loc: ['body', 'x'] },
    { label: 'z 1e400', body: reading('z', '1e400'), status: 422, loc: ['body', 'z'] },
    { label: 'x 400 digits', body: reading('x', big), status: 422, loc: ['body', 'x'] },
    { label: 'x NaN', body: reading('x', 'NaN'), status: 422, type: 'value_error.jsondecode' },
    { label: 'x Infinity', body: reading('x', 'Infinity'), status: 422, type: 'value_error.jsondecode' },
    { label: 'x -Infinity', body: reading('x', '-Infinity'), status: 422, type: 'value_error.jsondecode' },
    {
      label: 'device_id 3.7',
      body: reading('device_id', '3.7'),
      status: 422,
      loc: ['body', 'device_id'],
      type: 'type_error.integer',
    },
    { label: 'device_id -1', body: reading('device_id', '-1'), status: 422, loc: ['body', 'device_id'] },
    { label: 'device_id 0', body: reading('device_id', '0'), status: 422, loc: ['body', 'device_id'] },
    {
      label: 'device_id "abc"',
      body: reading('device_id', '"abc"'),
      status: 422,
      loc: ['body', 'device_id'],
      type: 'type_error.integer',
    },
    { label: 'device_id "1"', body: reading('device_id', '"1"'), status: 422, loc: ['body', 'device_id'] },
    { label: 'device_id 1e20', body: reading('device_id', '1e20'), status: 422, loc: ['body', 'device_id'] },
    {
      label: 'device_id 400 digits',
      body: reading('device_id', big),
      status: 422,
      loc: ['body', 'device_id'],
    },
    { label: 'device_id null', body: reading('device_id', 'null'), status: 422, loc: ['body', 'device_id'] },
    { label: 'a JSON array of non-readings', raw: '[1,"a"]', status: 422 },
    { label: 'a JSON string', raw: '"hello"', status: 422, loc: ['body'], type: 'type_error.dict' },
    { label: 'a JSON number', raw: '42', status: 422, loc: ['body'], type: 'type_error.dict' },
    { label: 'an empty body', raw: '', status: 422, loc: ['body'], type: 'value_error.missing' },
    { label: 'null', raw: 'null', status: 422, loc: ['body'] },
    {
      label: 'truncated JSON',
      body: (d) => `{"device_id":${d},`,
      status: 422,
      type: 'value_error.jsondecode',
    },
    {
      label: 'a trailing comma',
      body: (d) => `{"device_id":${d},"x":1,"y":0,"z":0,}`,
      status: 422,
      type: 'value_error.jsondecode',
    },
    {
      label: 'a body over the size limit',
      // Past the larger of the general limit and any larger one POST /data/ allows for batches.
      body: (d) =>
        JSON.stringify({ device_id: d, x: 1, y: 0, z: 0, pad: 'p'.repeat(largestBodyLimit() + 1024) }),
      status: 413,
    },
    {
      label: 'text/plain',
      request: (d) => ({
        method: 'POST',
        url: '/data/',
        headers: { 'content-type': 'text/plain' },
        payload: JSON.stringify({ device_id: d, x: 1, y: 0, z: 0 }),
      }),
      status: 422,
      loc: ['body'],
      msg: 'value is not a valid dict',
    },
    {
      label: 'application/xml',
      request: () => ({
        method: 'POST',
        url: '/data/',
        headers: { 'content-type': 'application/xml' },
        payload: '<reading><x>1</x></reading>',
      }),
      status: 415,
    },
  ];

  for (const bad of badInputs) {
    it(`refuses ${bad.label} with ${bad.status} and stores nothing`, async () => {
      const before = await h.countReadings();
      const response = bad.request
        ? await h.inject(bad.request(deviceA))
        : await h.post('/data/', bad.raw ?? bad.body?.(deviceA) ?? '');
      await recordStrays();
      assert.equal(response.statusCode, bad.status, response.body);
      assert.match(String(response.headers['content-type']), /^application\/json/);
      const body = response.json();
      assert.ok('detail' in body, response.body);
      if (bad.status === 422) {
        assert.ok(Array.isArray(body.detail) && body.detail.length > 0, response.body);
        for (const item of body.detail as ValidationItem[]) {
          assert.equal(item.loc[0], 'body', `loc ${JSON.stringify(item.loc)}`);
          assert.equal(typeof item.msg, 'string');
          assert.equal(typeof item.type, 'string');
        }
        const items = body.detail as ValidationItem[];
        if (bad.loc) {
          assert.ok(
            items.some((i) => JSON.stringify(i.loc) === JSON.stringify(bad.loc)),
            `no item at ${JSON.stringify(bad.loc)}: ${response.body}`,
          );
        }
        if (bad.type)
          assert.ok(
            items.some((i) => i.type === bad.type),
            `no ${bad.type}: ${response.body}`,
          );
        if (bad.msg)
          assert.ok(
            items.some((i) => i.msg === bad.msg),
            `no "${bad.msg}": ${response.body}`,
          );
      } else {
        assert.equal(typeof body.detail, 'string', response.body);
      }
      assert.equal(await h.countReadings(), before, 'a reading was stored');
    });
  }

  it('lists every missing field at once', async () => {
    const response = await h.post('/data/', '{}');
    assert.equal(response.statusCode, 422);
    const missing = (response.json().detail as ValidationItem[])
      .filter((i) => i.type === 'value_error.missing')
      .map((i) => i.loc.join('.'))
      .sort();
    assert.deepEqual(missing, ['body.device_id', 'body.x', 'body.y', 'body.z']);
  });

  it('points a JSON syntax error at the offending character, as FastAPI does', async () => {
    const raw = `{"device_id":${deviceA},"x":oops,"y":0,"z":0}`;
    const response = await h.post('/data/', raw);
    assert.equal(response.statusCode, 422);
    const [item] = response.json().detail as ValidationItem[];
    assert.equal(item?.type, 'value_error.jsondecode');
    assert.deepEqual(item?.loc, ['body', raw.indexOf('oops')]);
  });

  it('reads a body without Content-Type as JSON', async () => {
    const response = await h.inject({
      method: 'POST',
      url: '/data/',
      payload: Buffer.from(JSON.stringify({ device_id: deviceB, x: 4, y: 5, z: 6 })),
    });
    assert.equal(response.statusCode, 200, response.body);
    const body: ReadingJson = response.json();
    posted.push(body);
    assert.deepEqual([body.device_id, body.x, body.y, body.z], [deviceB, 4, 5, 6]);
  });

  for (const contentType of [
    'application/json; charset=utf-8',
    'Application/JSON',
    'application/vnd.reading+json',
    'application/vnd.reading+json; charset=utf-8',
  ]) {
    it(`reads a body sent as ${contentType} as JSON`, async () => {
      const response = await h.inject({
        method: 'POST',
        url: '/data/',
        headers: { 'content-type': contentType },
        payload: JSON.stringify({ device_id: deviceB, x: 7, y: 8, z: 9 }),
      });
      assert.equal(response.statusCode, 200, response.body);
      posted.push(response.json());
      assert.equal(response.json().device_id, deviceB);
    });
  }

  it('ignores unknown keys in a reading, including a chosen id', async () => {
    const taken = posted[0] as ReadingJson;
    const response = await h.post('/data/', { device_id: deviceA, x: 1, y: 1, z: 1, id: taken.id });
    assert.equal(response.statusCode, 200, response.body);
    const body: ReadingJson = response.json();
    posted.push(body);
    assert.notEqual(body.id, taken.id);
  });

  it("refuses created_at, the old name of a reading's time, with a 422 that names timestamp; stores nothing", async () => {
    const countBefore = await readingCount();
    const old = { device_id: deviceA, x: 1, y: 1, z: 1, created_at: '2000-01-01T00:00:00.000Z' };
    const single = await h.post('/data/', old);
    assert.equal(single.statusCode, 422, single.body);
    const [item] = single.json().detail as ValidationItem[];
    assert.deepEqual(item?.loc, ['body', 'created_at']);
    assert.match(item?.msg ?? '', /timestamp/);
    const batch = await h.post('/data/', [{ device_id: deviceA, x: 1, y: 1, z: 1 }, old]);
    assert.equal(batch.statusCode, 422, batch.body);
    assert.deepEqual(
      (batch.json().detail as ValidationItem[]).map((i) => i.loc),
      [['body', 1, 'created_at']],
    );
    assert.equal(await readingCount(), countBefore);
  });

  it('takes back a listed reading as it was answered: the round trip keeps its time', async () => {
    const listed: ReadingJson = (await h.get(`/data/?device_id=${deviceA}&limit=1`)).json()[0];
    const { id: _id, ...reading } = listed;
    const response = await h.post('/data/', reading);
    assert.equal(response.statusCode, 200, response.body);
    const body: ReadingJson = response.json();
    posted.push(body);
    assert.equal(body.timestamp, listed.timestamp);
  });

  let boundaryStart: ReadingJson;
  let boundaryEnd: ReadingJson;

  it('lists readings filtered by device_id, start_date and end_date (inclusive)', async () => {
    // Three bursts a second apart, by the device's clock (an hour ago, before every other reading here);
    // the middle burst's first and last readings are the bounds.
    const base = Date.now() - 3_600_000;
    const burst = (second: number, i: number) => new Date(base + second * 1000 + i).toISOString();
    for (let i = 0; i < 3; i++) await postReading(i % 2 ? deviceA : deviceB, i, i * 2, i * 3, burst(0, i));
    const middle: ReadingJson[] = [];
    for (let i = 0; i < 5; i++)
      middle.push(await postReading(i % 2 ? deviceB : deviceA, 10 + i, 0, 0, burst(1, i)));
    for (let i = 0; i < 3; i++) await postReading(i % 2 ? deviceA : deviceB, 20 + i, 0, 0, burst(2, i));
    boundaryStart = middle[0] as ReadingJson;
    boundaryEnd = middle.at(-1) as ReadingJson;
    const start = boundaryStart.timestamp;
    const end = boundaryEnd.timestamp;

    const cases: [string, (r: ReadingJson) => boolean][] = [
      ['', () => true],
      [`device_id=${deviceA}`, (r) => r.device_id === deviceA],
      [`device_id=${deviceB}`, (r) => r.device_id === deviceB],
      [`start_date=${start}`, (r) => at(r) >= Date.parse(start)],
      [`end_date=${end}`, (r) => at(r) <= Date.parse(end)],
      [`start_date=${start}&end_date=${end}`, (r) => at(r) >= Date.parse(start) && at(r) <= Date.parse(end)],
      [
        `device_id=${deviceA}&start_date=${start}&end_date=${end}`,
        (r) => r.device_id === deviceA && at(r) >= Date.parse(start) && at(r) <= Date.parse(end),
      ],
      [`start_date=${start}&end_date=${start}`, (r) => at(r) === Date.parse(start)],
      ['start_date=2100-01-01', () => false],
      ['end_date=2000-01-01', () => false],
      ['device_id=999999', () => false],
    ];
    for (const [query, keep] of cases) {
      const response = await h.get(`/data/?limit=1000&${query}`);
      assert.equal(response.statusCode, 200, `${query}: ${response.body}`);
      assert.deepEqual(ids(response.json()), expectedIds(keep), query);
    }
    const middleIds = expectedIds((r) => at(r) >= Date.parse(start) && at(r) <= Date.parse(end));
    for (const r of middle) assert.ok(middleIds.includes(r.id), 'a bound reading was left out');
  });

  it('reads dates without a zone as UTC and honours offsets, date-only and Unix seconds', async () => {
    const start = Date.parse(boundaryStart.timestamp);
    const shifted = new Date(start + 2 * 3600_000).toISOString().replace('Z', '+02:00');
    const want = expectedIds((r) => at(r) >= start);
    for (const text of [boundaryStart.timestamp.replace('Z', ''), shifted]) {
      const response = await h.get(`/data/?limit=1000&start_date=${encodeURIComponent(text)}`);
      assert.equal(response.statusCode, 200, response.body);
      assert.deepEqual(ids(response.json()), want, text);
    }
    const day = boundaryStart.timestamp.slice(0, 10);
    const fromDay = await h.get(`/data/?limit=1000&start_date=${day}`);
    assert.deepEqual(
      ids(fromDay.json()),
      expectedIds((r) => at(r) >= Date.parse(`${day}T00:00:00Z`)),
    );
    const seconds = Math.floor(start / 1000) + 1;
    const fromSeconds = await h.get(`/data/?limit=1000&end_date=${seconds}`);
    assert.deepEqual(
      ids(fromSeconds.json()),
      expectedIds((r) => at(r) <= seconds * 1000),
    );
  });

  it('pages with limit=2 through Link rel="next": every reading once, in timestamp then id order', async () => {
    const pages = await walk('/data/?limit=2');
    for (const page of pages.slice(0, -1)) assert.equal(page.length, 2);
    assert.ok((pages.at(-1)?.length ?? 0) >= 1, 'an empty last page');
    assert.deepEqual(
      ids(pages.flat()),
      expectedIds(() => true),
    );
    // Cross-check against the database, ordered independently of the API.
    const stored = await h.db.selectFrom('data').select(['id', 'created_at']).execute();
    const storedIds = stored
      .sort((a, b) => Number(a.created_at) - Number(b.created_at) || Number(a.id) - Number(b.id))
      .map((r) => Number(r.id));
    assert.deepEqual(ids(pages.flat()), storedIds);
  });

  it('keeps the filters while paging', async () => {
    const start = boundaryStart.timestamp;
    const pages = await walk(`/data/?device_id=${deviceA}&start_date=${start}&limit=2`);
    assert.deepEqual(
      ids(pages.flat()),
      expectedIds((r) => r.device_id === deviceA && at(r) >= Date.parse(start)),
    );
  });

  it('refuses bad dates, a start after the end, bad limits and bad cursors with 422 naming the parameter', async () => {
    const cases: [string, string][] = [
      ['start_date=yesterday', 'start_date'],
      ['start_date=2024-13-01', 'start_date'],
      ['end_date=2024-02-30T00:00:00', 'end_date'],
      ['end_date=2024-01-01T25:00:00', 'end_date'],
      [`start_date=${'9'.repeat(70)}`, 'start_date'],
      ['start_date=2025-01-02&end_date=2025-01-01', 'start_date'],
      ['device_id=abc', 'device_id'],
      ['device_id=0', 'device_id'],
      ['device_id=1e400', 'device_id'],
      ['limit=0', 'limit'],
      ['limit=1001', 'limit'],
      ['cursor=abc', 'cursor'],
      ['cursor=1_', 'cursor'],
    ];
    for (const [query, field] of cases) {
      const response = await h.get(`/data/?${query}`);
      assert.equal(response.statusCode, 422, `${query}: ${response.body}`);
      const detail = response.json().detail as ValidationItem[];
      assert.ok(
        detail.some((i) => i.loc[0] === 'query' && i.loc.at(-1) === field),
        `${query}: ${response.body}`,
      );
    }
  });
});
