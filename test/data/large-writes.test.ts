import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { type Harness, onEachEngine } from '../helpers/harness.js';

// Large enough for PostgreSQL's COPY path (src/data/copy-readings.ts, from 2,000 readings); SQLite takes
// its one statement. The import's chunks of 5,000 leave a last one of 2,000.
const BATCH = 2500;
const IMPORT_LINES = 12_000;
const START = Date.UTC(2025, 5, 1);

/** x of the device's stored readings, in id order. */
async function xInIdOrder(h: Harness, device: number): Promise<number[]> {
  const rows = await h.db
    .selectFrom('data')
    .select(['id', 'x'])
    .where('device_id', '=', device)
    .orderBy('id')
    .execute();
  return rows.map((row) => row.x);
}

onEachEngine('large batches and imports', (h) => {
  let devices: number[];
  before(async () => {
    devices = [await h.createDevice(), await h.createDevice()];
  });

  it('stores a large batch with ids in input order', async () => {
    const device = await h.createDevice();
    // Times out of order, spread over many minutes: the ids still follow the input.
    const readings = Array.from({ length: BATCH }, (_, i) => ({
      device_id: device,
      x: i,
      y: -(i + 1) / 7,
      z: 1e300 / (i + 1),
      timestamp: new Date(START + ((i * 7919) % BATCH) * 13_000).toISOString(),
    }));
    const response = await h.post('/data/', readings);
    assert.equal(response.statusCode, 200, response.body);
    assert.deepEqual(response.json(), { stored: BATCH });
    const rows = await h.db
      .selectFrom('data')
      .select(['x', 'y', 'z', 'created_at'])
      .where('device_id', '=', device)
      .orderBy('id')
      .execute();
    assert.deepEqual(
      rows.map((row) => ({ ...row, created_at: Number(row.created_at) })),
      readings.map(({ x, y, z, timestamp }) => ({ x, y, z, created_at: Date.parse(timestamp) })),
    );
  });

  it('imports thousands of lines of two devices, each stored in line order, the bad ones reported', async () => {
    const [first, second] = devices as [number, number];
    const lines = ['device_id,x,y,z,timestamp'];
    for (let i = 0; i < IMPORT_LINES; i++) {
      const device = i % 3 === 0 ? second : first;
      lines.push(`${device},${i},${i * 0.5},${-i},${new Date(START + i * 1500).toISOString()}`);
    }
    lines.push(`${first},not-a-number,1,1`);
    const response = await h.inject({
      method: 'POST',
      url: '/data/import',
      headers: { 'content-type': 'text/csv' },
      payload: lines.join('\n'),
    });
    assert.equal(response.statusCode, 200, response.body);
    assert.deepEqual(response.json(), {
      stored: IMPORT_LINES,
      rejected: 1,
      errors: [{ line: IMPORT_LINES + 2, reason: response.json().errors[0]?.reason }],
    });
    const all = Array.from({ length: IMPORT_LINES }, (_, i) => i);
    assert.deepEqual(
      await xInIdOrder(h, first),
      all.filter((i) => i % 3 !== 0),
    );
    assert.deepEqual(
      await xInIdOrder(h, second),
      all.filter((i) => i % 3 === 0),
    );
    const statistics = await h.get(`/analyze_statistics/?attr=x&device_id=${second}`);
    const xs = all.filter((i) => i % 3 === 0);
    assert.equal(statistics.json().count, xs.length);
    assert.equal(
      statistics.json().sum,
      xs.reduce((sum, x) => sum + x, 0),
    );
  });

  it('stores nothing of a large batch whose device was deleted behind its back, and answers 404', async () => {
    // The service still knows the device (its cache) when the insert reaches the foreign key.
    const { kept, deleted } = await h.devicesWithOneDeletedBehindTheCache();
    const readings = Array.from({ length: BATCH }, (_, i) => ({
      device_id: i === BATCH - 1 ? deleted : kept,
      x: i,
      y: 0,
      z: 0,
    }));
    const response = await h.post('/data/', readings);
    assert.equal(response.statusCode, 404, response.body);
    assert.deepEqual(response.json(), { detail: 'A device of this batch was deleted while it was stored' });
    assert.deepEqual(await xInIdOrder(h, kept), [1]);
  });
});
