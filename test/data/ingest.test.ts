import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ENGINES, engineSkipReason, Harness, nextLink, onEachEngine } from '../helpers/harness.js';
import { assertRollupsMatchReadings } from '../helpers/rollups.js';

const reading = (device_id: number, x: number, extra: Record<string, unknown> = {}) => ({
  device_id,
  x,
  y: x * 2,
  z: -x,
  ...extra,
});

onEachEngine('ingest: batches, device timestamps, group commit', (h: Harness) => {
  let device: number;
  before(async () => {
    device = await h.createDevice();
  });

  it('stores a batch and answers how many, with their ids in request order', async () => {
    const before = await h.countReadings();
    const batch = [1, 2, 3, 4, 5].map((x) => reading(device, x * 1000));
    const response = await h.post('/data/', batch);
    assert.equal(response.statusCode, 200, response.body);
    const body = response.json();
    assert.equal(body.stored, 5);
    assert.equal(body.ids.length, 5);
    assert.equal(await h.countReadings(), before + 5);
    const rows = await h.db.selectFrom('data').select(['id', 'x']).where('id', 'in', body.ids).execute();
    const xById = new Map(rows.map((r) => [Number(r.id), r.x]));
    assert.deepEqual(
      body.ids.map((id: number) => xById.get(id)),
      [1000, 2000, 3000, 4000, 5000],
    );
  });

  it('answers a reading, a batch and a replayed write as JSON, saying so in Content-Type', async () => {
    // Clients that pick a parser by Content-Type (fetch wrappers, generated clients) need it on every answer.
    const answers = [
      await h.post('/data/', reading(device, 7)),
      await h.post('/data/', [reading(device, 8)]),
      ...(await keyedTwice(reading(device, 9))),
    ];
    for (const response of answers) {
      assert.equal(response.statusCode, 200, response.body);
      assert.equal(response.headers['content-type'], 'application/json; charset=utf-8');
    }
    assert.equal(answers[3]?.headers['idempotent-replayed'], 'true');
    assert.equal(answers[3]?.json().id, answers[2]?.json().id);
  });

  /** The same keyed write sent twice: the first answer, then its replay. */
  async function keyedTwice(body: unknown) {
    const send = () =>
      h.inject({
        method: 'POST',
        url: '/data/',
        headers: { 'content-type': 'application/json', 'idempotency-key': 'content-type-check' },
        payload: JSON.stringify(body),
      });
    const first = await send();
    return [first, await send()];
  }

  it('stores nothing of a batch with a bad item, and names each bad item by index and field', async () => {
    const before = await h.countReadings();
    const batch = [
      reading(device, 1),
      { device_id: device, x: 'oops', y: 1, z: 1 },
      reading(device, 3),
      { device_id: device, y: 1, z: 1 },
    ];
    const response = await h.post('/data/', batch);
    assert.equal(response.statusCode, 422);
    const locs = response.json().detail.map((item: { loc: unknown[] }) => item.loc.join('.'));
    assert.ok(locs.includes('body.1.x'), locs.join());
    assert.ok(locs.includes('body.3.x'), locs.join());
    assert.equal(await h.countReadings(), before);
  });

  it('stores nothing of a batch naming an unknown device, and names the item', async () => {
    const before = await h.countReadings();
    const response = await h.post('/data/', [reading(device, 1), reading(987654, 2)]);
    assert.equal(response.statusCode, 422);
    assert.deepEqual(response.json().detail[0].loc, ['body', 1, 'device_id']);
    assert.equal(await h.countReadings(), before);
  });

  it('refuses more than 10,000 readings with a 413 that says the limit', async () => {
    const before = await h.countReadings();
    const response = await h.post(
      '/data/',
      Array.from({ length: 10_001 }, (_, i) => reading(device, i)),
    );
    assert.equal(response.statusCode, 413);
    assert.match(response.json().detail, /10000/);
    assert.equal(await h.countReadings(), before);
  });

  it('stores 10,000 readings in one request, without listing the ids', async () => {
    const before = await h.countReadings();
    const response = await h.post(
      '/data/',
      Array.from({ length: 10_000 }, (_, i) => reading(device, i)),
    );
    assert.equal(response.statusCode, 200, response.body.slice(0, 300));
    assert.deepEqual(response.json(), { stored: 10_000 });
    assert.equal(await h.countReadings(), before + 10_000);
  });

  it('keeps device timestamps, late and out of order, and counts them in statistics', async () => {
    const own = await h.createDevice();
    const batch = [
      reading(own, 3, { timestamp: '2024-03-01T12:00:00.250Z' }),
      reading(own, 1, { timestamp: '2024-03-01T10:00:00+02:00' }), // 08:00 UTC, earlier than the first
      reading(own, 2),
    ];
    assert.equal((await h.post('/data/', batch)).statusCode, 200);
    const single = await h.post('/data/', reading(own, 4, { timestamp: '2024-02-29T23:59:59.999Z' }));
    assert.equal(single.json().timestamp, '2024-02-29T23:59:59.999Z');
    const listed = (await h.get(`/data/?device_id=${own}`)).json();
    assert.deepEqual(
      listed.map((r: { x: number; timestamp: string }) => [r.x, r.timestamp.slice(0, 19)]),
      [
        [4, '2024-02-29T23:59:59'],
        [1, '2024-03-01T08:00:00'],
        [3, '2024-03-01T12:00:00'],
        [2, listed[3].timestamp.slice(0, 19)],
      ],
    );
    const march = (
      await h.get(`/analyze_statistics/?device_id=${own}&start_date=2024-03-01&end_date=2024-03-02`)
    ).json();
    assert.deepEqual([march.count, march.min, march.max], [2, 1, 3]);
  });

  it('refuses a timestamp too far in the future, or without a zone, with a 422', async () => {
    const before = await h.countReadings();
    const soon = new Date(Date.now() + 60_000).toISOString();
    assert.equal((await h.post('/data/', reading(device, 1, { timestamp: soon }))).statusCode, 200);
    const far = new Date(Date.now() + 3600_000).toISOString();
    const single = await h.post('/data/', reading(device, 1, { timestamp: far }));
    assert.equal(single.statusCode, 422);
    assert.deepEqual(single.json().detail[0].loc, ['body', 'timestamp']);
    assert.match(single.json().detail[0].msg, /ahead/);
    const batch = await h.post('/data/', [reading(device, 1), reading(device, 2, { timestamp: far })]);
    assert.equal(batch.statusCode, 422);
    assert.deepEqual(batch.json().detail[0].loc, ['body', 1, 'timestamp']);
    for (const timestamp of ['2024-03-01T12:00:00', 'yesterday', 1700000000000]) {
      assert.equal(
        (await h.post('/data/', reading(device, 1, { timestamp }))).statusCode,
        422,
        String(timestamp),
      );
    }
    assert.equal(await h.countReadings(), before + 1);
  });

  it('group-commits concurrent single readings: N requests, N rows, each answered with its own id', async () => {
    const own = await h.createDevice();
    const n = 300;
    const responses = await Promise.all(
      Array.from({ length: n }, (_, i) => h.post('/data/', reading(own, i))),
    );
    assert.ok(responses.every((r) => r.statusCode === 200));
    const answered = responses.map((r) => r.json());
    assert.equal(new Set(answered.map((a) => a.id)).size, n);
    const rows = await h.db.selectFrom('data').select(['id', 'x']).where('device_id', '=', own).execute();
    assert.equal(rows.length, n);
    const xById = new Map(rows.map((r) => [Number(r.id), r.x]));
    for (const a of answered) assert.equal(xById.get(a.id), a.x);
  });

  it('stores nothing of a batch whose device vanished after the check, and refuses only its single readings', async () => {
    const { kept, deleted: doomed } = await h.devicesWithOneDeletedBehindTheCache();
    const before = await h.countReadings();
    const batch = await h.post('/data/', [reading(kept, 2), reading(doomed, 3)]);
    assert.equal(batch.statusCode, 404, batch.body);
    assert.equal(await h.countReadings(), before, 'a batch is all or nothing');
    // Single readings are written together: the group fails, and is written again one by one.
    const singles = await Promise.all(
      [reading(kept, 4), reading(doomed, 5), reading(kept, 6)].map((r) => h.post('/data/', r)),
    );
    assert.deepEqual(
      singles.map((r) => r.statusCode),
      [200, 404, 200],
    );
    const stored = await h.db
      .selectFrom('data')
      .select('x')
      .where('device_id', '=', kept)
      .orderBy('x')
      .execute();
    assert.deepEqual(
      stored.map((r) => r.x),
      [1, 4, 6],
    );
  });

  it('refuses only the reading of an unknown device among concurrent ones', async () => {
    const own = await h.createDevice();
    const responses = await Promise.all([
      h.post('/data/', reading(own, 1)),
      h.post('/data/', reading(999_999, 2)),
      h.post('/data/', reading(own, 3)),
    ]);
    assert.deepEqual(
      responses.map((r) => r.statusCode),
      [200, 404, 200],
    );
    assert.equal((await h.get(`/analyze_statistics/?device_id=${own}`)).json().count, 2);
  });
});

onEachEngine('import and export', (h: Harness) => {
  let device: number;
  before(async () => {
    device = await h.createDevice();
  });

  const importText = (body: string, type: string) =>
    h.inject({ method: 'POST', url: '/data/import', headers: { 'content-type': type }, payload: body });

  it('imports CSV, storing the good lines and reporting each bad one by line number', async () => {
    const before = await h.countReadings();
    const csv = [
      'device_id,x,y,z,timestamp',
      `${device},1,2,3`,
      `${device},4.5,-5,6e2,2021-01-01T00:00:00Z`,
      `${device},abc,2,3`,
      '',
      `999999,1,1,1`,
      `${device},1,2`,
      `${device},1e400,2,3`,
      `${device},7,8,9,2999-01-01T00:00:00Z`,
      `${device},10,11,12\r`,
    ].join('\n');
    const response = await importText(csv, 'text/csv');
    assert.equal(response.statusCode, 200, response.body);
    const report = response.json();
    assert.equal(report.stored, 3);
    assert.equal(report.rejected, 5);
    assert.deepEqual(
      report.errors.map((e: { line: number }) => e.line),
      [4, 6, 7, 8, 9],
    );
    assert.match(report.errors[1].reason, /device 999999 not found/);
    assert.equal(await h.countReadings(), before + 3);
  });

  it('imports NDJSON with the same rules', async () => {
    const lines = [
      JSON.stringify(reading(device, 5)),
      '{not json',
      JSON.stringify({ device_id: device, x: true, y: 1, z: 1 }),
    ];
    const report = (await importText(lines.join('\n'), 'application/x-ndjson')).json();
    assert.deepEqual([report.stored, report.rejected], [1, 2]);
    assert.deepEqual(
      report.errors.map((e: { line: number }) => e.line),
      [2, 3],
    );
  });

  it('counts every rejected line but lists only the first 1,000, in line order', async () => {
    const lines = ['device_id,x,y,z'];
    const bad: number[] = [];
    for (let i = 0; i < 2500; i++) {
      const good = i % 5 === 0;
      lines.push(good ? `${device},${i},0,0` : `${device},not-a-number-${i},0,0`);
      if (!good) bad.push(lines.length);
    }
    const report = (await importText(lines.join('\n'), 'text/csv')).json();
    assert.deepEqual([report.stored, report.rejected, report.errors.length], [500, 2000, 1000]);
    assert.deepEqual(
      report.errors.map((e: { line: number }) => e.line),
      bad.slice(0, 1000),
    );
    assert.match(report.errors[0].reason, /^x: /);
  });

  it('refuses an unknown device in a late chunk of a large import, storing every other line', async () => {
    const own = await h.createDevice();
    const unknownAt = 11_001;
    const lines = Array.from({ length: 12_001 }, (_, i) =>
      i + 1 === unknownAt
        ? `999999,${i},0,0`
        : `${own},${i},0,0,2025-03-01T00:00:00.${String(i % 1000).padStart(3, '0')}Z`,
    );
    const report = (await importText(lines.join('\n'), 'text/csv')).json();
    assert.deepEqual(report, {
      stored: 12_000,
      rejected: 1,
      errors: [{ line: unknownAt, reason: 'device 999999 not found' }],
    });
    const rows = await h.db
      .selectFrom('data')
      .select('x')
      .where('device_id', '=', own)
      .orderBy('x')
      .execute();
    assert.deepEqual(
      rows.map((r) => r.x),
      Array.from({ length: 12_001 }, (_, i) => i).filter((i) => i + 1 !== unknownAt),
    );
  });

  it('refuses another content type with a 415', async () => {
    assert.equal((await importText('x', 'text/plain')).statusCode, 415);
  });

  it('exports only what the filters select', async () => {
    const other = await h.createDevice();
    await h.post('/data/', reading(other, 42));
    const csv = (await h.get(`/data/export?format=csv&device_id=${other}`)).body.trim().split('\n');
    assert.equal(csv[0], 'device_id,x,y,z,timestamp');
    assert.equal(csv.length, 2);
    assert.match(csv[1] as string, new RegExp(`^${other},42,84,-42,`));
  });
});

/** A stored reading as a comparable tuple: device, x, y, z and time (epoch ms). */
type Row = [number, number, number, number, number];

async function storedRows(h: Harness): Promise<Row[]> {
  const rows = await h.db.selectFrom('data').select(['device_id', 'x', 'y', 'z', 'created_at']).execute();
  return rows
    .map((r): Row => [Number(r.device_id), r.x, r.y, r.z, Number(r.created_at)])
    .sort((a, b) => a[4] - b[4] || a[0] - b[0] || a[1] - b[1] || a[2] - b[2] || a[3] - b[3]);
}

/** 12,345 readings of two devices, at millisecond times, four at each instant, values of every magnitude. */
const roundTripReadings = (devices: number[]) =>
  Array.from({ length: 12_345 }, (_, i) => ({
    device_id: devices[i % 2] as number,
    x: Math.sin(i) * 10 ** ((i % 40) - 20),
    y: i % 7 === 0 ? -0.1 : i / 3,
    z: i % 11 === 0 ? Number.MIN_VALUE : 1e300 * ((i % 5) - 2),
    timestamp: new Date(Date.UTC(2025, 0, 1) + Math.floor(i / 4) * 1237).toISOString(),
  }));

for (const engine of ENGINES) {
  describe(`round trips, row by row [${engine}]`, { skip: engineSkipReason(engine) }, () => {
    const source = new Harness(engine);
    const targets = { csv: new Harness(engine), ndjson: new Harness(engine) };
    let sent: Row[];
    before(async () => {
      await Promise.all([source.start(), targets.csv.start(), targets.ndjson.start()]);
      const devices = [await source.createDevice(), await source.createDevice()];
      const readings = roundTripReadings(devices);
      for (let i = 0; i < readings.length; i += 5000) {
        assert.equal((await source.post('/data/', readings.slice(i, i + 5000))).statusCode, 200);
      }
      sent = readings
        .map((r): Row => [r.device_id, r.x, r.y, r.z, Date.parse(r.timestamp)])
        .sort((a, b) => a[4] - b[4] || a[0] - b[0] || a[1] - b[1] || a[2] - b[2] || a[3] - b[3]);
      for (const target of Object.values(targets)) {
        await target.createDevice();
        await target.createDevice();
      }
    });
    after(async () => {
      for (const h of [source, ...Object.values(targets)]) {
        await assertRollupsMatchReadings(h.db, h === source ? 'source' : 'target');
        await h.stop();
      }
    });

    it('stores a batch exactly, to the millisecond, and lists every reading back in (time, id) order', async () => {
      assert.deepEqual(await storedRows(source), sent);
      const listed: { id: number; device_id: number; x: number; y: number; z: number; timestamp: string }[] =
        [];
      for (let url: string | undefined = '/data/?limit=1000'; url !== undefined; ) {
        const page = await source.get(url);
        assert.equal(page.statusCode, 200, page.body);
        listed.push(...page.json());
        url = nextLink(page.headers.link);
      }
      const order = listed.map((r) => [Date.parse(r.timestamp), r.id]);
      assert.deepEqual(
        order,
        [...order].sort((a, b) => (a[0] as number) - (b[0] as number) || (a[1] as number) - (b[1] as number)),
      );
      const rows = listed
        .map((r): Row => [r.device_id, r.x, r.y, r.z, Date.parse(r.timestamp)])
        .sort((a, b) => a[4] - b[4] || a[0] - b[0] || a[1] - b[1] || a[2] - b[2] || a[3] - b[3]);
      assert.deepEqual(rows, sent);
    });

    for (const format of ['csv', 'ndjson'] as const) {
      it(`exports ${format} in (time, id) order that imports into a fresh database row for row`, async () => {
        const exported = await source.get(`/data/export?format=${format}`);
        assert.equal(exported.statusCode, 200);
        const lines = exported.body.trim().split('\n');
        if (format === 'csv') assert.equal(lines.shift(), 'device_id,x,y,z,timestamp');
        assert.equal(lines.length, sent.length);
        // The export's order is the list's: time, then id (the order the readings were stored in).
        const stored = await source.db
          .selectFrom('data')
          .select(['id', 'x', 'created_at'])
          .orderBy('created_at')
          .orderBy('id')
          .execute();
        const exportedX = lines.map((line) =>
          format === 'csv' ? Number(line.split(',')[1]) : JSON.parse(line).x,
        );
        assert.deepEqual(
          exportedX,
          stored.map((r) => r.x),
        );
        if (format === 'ndjson')
          assert.deepEqual(
            lines.map((line) => JSON.parse(line).id),
            stored.map((r) => Number(r.id)),
          );

        const target = targets[format];
        const report = (
          await target.inject({
            method: 'POST',
            url: '/data/import',
            headers: { 'content-type': format === 'csv' ? 'text/csv' : 'application/x-ndjson' },
            payload: exported.body,
          })
        ).json();
        assert.deepEqual([report.stored, report.rejected], [sent.length, 0]);
        assert.deepEqual(await storedRows(target), sent);
      });
    }
  });
}
