import assert from 'node:assert/strict';
import { it } from 'node:test';
import { type Harness, nextLink, onEachEngine } from '../helpers/harness.js';

/**
 * Keyset pages where readings share a timestamp (device clocks and batches make that common): the
 * `created_at = ? AND id > ?` branch of the cursor, the default page size, export pages inside a tie,
 * and a walk through the pages while readings keep arriving.
 */

interface Listed {
  id: number;
  device_id: number;
  x: number;
  timestamp: string;
}

/** (time, id): the order of the list and of the export. */
const key = (r: Listed): [number, number] => [Date.parse(r.timestamp), r.id];
const after = (a: [number, number], b: [number, number]) => a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]);

/** The ids of readings stored at `times`, in the order a list answers them: by time, then by id. */
function inListOrder(ids: number[], times: string[]): number[] {
  return ids
    .map((id, i) => ({ id, at: Date.parse(times[i] as string) }))
    .sort((a, b) => a.at - b.at || a.id - b.id)
    .map((r) => r.id);
}

onEachEngine('pagination with tied timestamps', (h: Harness) => {
  async function storeAt(device: number, times: string[], firstX = 0): Promise<number[]> {
    const readings = times.map((timestamp, i) => ({
      device_id: device,
      x: firstX + i,
      y: 0,
      z: 0,
      timestamp,
    }));
    const ids: number[] = [];
    for (let i = 0; i < readings.length; i += 10_000) {
      const response = await h.post('/data/', readings.slice(i, i + 10_000));
      assert.equal(response.statusCode, 200, response.body);
      ids.push(...(response.json().ids ?? []));
    }
    return ids;
  }

  async function page(url: string): Promise<{ rows: Listed[]; next: string | undefined }> {
    const response = await h.get(url);
    assert.equal(response.statusCode, 200, `${url}: ${response.body}`);
    return { rows: response.json(), next: nextLink(response.headers.link) };
  }

  it('pages through readings that share a timestamp: every one once, in (time, id) order, pages split inside ties', async () => {
    const device = await h.createDevice();
    const times = [
      ...Array(3).fill('2026-05-01T10:00:00.000Z'),
      ...Array(25).fill('2026-05-01T10:00:00.500Z'),
      '2026-05-01T10:00:00.501Z',
      ...Array(9).fill('2026-05-01T09:59:59.999Z'),
    ];
    const ids = await storeAt(device, times);
    const expected = inListOrder(ids, times);
    const pages: Listed[][] = [];
    for (let url: string | undefined = `/data/?device_id=${device}&limit=4`; url !== undefined; ) {
      const { rows, next } = await page(url);
      pages.push(rows);
      url = next;
      assert.ok(pages.length <= 20, 'the pages do not end');
    }
    assert.deepEqual(
      pages.flat().map((r) => r.id),
      expected,
    );
    const splitInsideTie = pages
      .slice(1)
      .some((rows, i) => rows[0]?.timestamp === pages[i]?.at(-1)?.timestamp);
    assert.ok(splitInsideTie, 'no page boundary fell inside a tie');
  });

  it('answers 100 readings per page by default, with a Link while there are more', async () => {
    const device = await h.createDevice();
    await storeAt(
      device,
      Array.from(
        { length: 250 },
        (_, i) => `2026-05-02T00:00:${String(Math.floor(i / 10)).padStart(2, '0')}.000Z`,
      ),
    );
    const sizes: number[] = [];
    const seen = new Set<number>();
    for (let url: string | undefined = `/data/?device_id=${device}`; url !== undefined; ) {
      const { rows, next } = await page(url);
      sizes.push(rows.length);
      for (const row of rows) seen.add(row.id);
      url = next;
    }
    assert.deepEqual(sizes, [100, 100, 50]);
    assert.equal(seen.size, 250);
  });

  it('takes offset with limit, inside ties: the same readings as the walk, and a Link that goes on by cursor', async () => {
    const device = await h.createDevice();
    const times = [
      ...Array(4).fill('2026-05-05T10:00:00.000Z'),
      ...Array(5).fill('2026-05-05T09:00:00.000Z'),
      '2026-05-05T11:00:00.000Z',
    ];
    const ids = await storeAt(device, times);
    const expected = inListOrder(ids, times);
    for (let offset = 0; offset <= expected.length; offset++) {
      const { rows, next } = await page(`/data/?device_id=${device}&limit=3&offset=${offset}`);
      assert.deepEqual(
        rows.map((r) => r.id),
        expected.slice(offset, offset + 3),
        `offset ${offset}`,
      );
      if (offset + 3 >= expected.length) {
        assert.equal(next, undefined, `offset ${offset}: a Link past the end`);
        continue;
      }
      assert.ok(next !== undefined && !next.includes('offset='), `offset ${offset}: ${next}`);
      const following = await page(next);
      assert.deepEqual(
        following.rows.map((r) => r.id),
        expected.slice(offset + 3, offset + 6),
        `after offset ${offset}`,
      );
    }
    // With a cursor, the offset skips from there.
    const first = await page(`/data/?device_id=${device}&limit=2`);
    const skipped = await page(`${first.next}&offset=3`);
    assert.deepEqual(
      skipped.rows.map((r) => r.id),
      expected.slice(5, 7),
    );
  });

  it('takes offset on the device list, and refuses a negative or huge one with a 422', async () => {
    const all = (await h.get('/device/?limit=1000')).json() as { id: number }[];
    assert.ok(all.length >= 3);
    const response = await h.get('/device/?limit=2&offset=1');
    assert.equal(response.statusCode, 200, response.body);
    assert.deepEqual(
      response.json().map((d: { id: number }) => d.id),
      all.slice(1, 3).map((d) => d.id),
    );
    for (const url of ['/device/?offset=-1', '/data/?offset=1000001', '/data/?offset=x']) {
      const refused = await h.get(url);
      assert.equal(refused.statusCode, 422, `${url}: ${refused.body}`);
      assert.deepEqual(refused.json().detail[0].loc, ['query', 'offset']);
    }
  });

  it('answers 100 devices per page by default', async () => {
    const before = (await h.db.selectFrom('devices').select('id').execute()).length;
    for (let i = before; i < 130; i++) await h.createDevice();
    const first = await h.get('/device/');
    assert.equal(first.json().length, 100);
    const second = await page(nextLink(first.headers.link) as string);
    assert.equal(second.rows.length, 30);
    assert.equal(second.next, undefined);
  });

  it('exports 12,000 readings of one instant, across export pages of 5,000, each once in id order', async () => {
    const device = await h.createDevice();
    await storeAt(device, Array(12_000).fill('2026-05-03T12:00:00.123Z'));
    const exported = await h.get(`/data/export?format=ndjson&device_id=${device}`);
    assert.equal(exported.statusCode, 200);
    const ids = exported.body
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line).id as number);
    const stored = await h.db
      .selectFrom('data')
      .select('id')
      .where('device_id', '=', device)
      .orderBy('id')
      .execute();
    assert.equal(ids.length, 12_000);
    assert.deepEqual(
      ids,
      stored.map((r) => Number(r.id)),
    );
  });

  it('skips and repeats nothing while readings keep arriving, late ones and ties included', async () => {
    const device = await h.createDevice();
    const base = Date.UTC(2026, 4, 4);
    const at = (ms: number) => new Date(base + ms).toISOString();
    // 600 readings, three per instant.
    const original = await storeAt(
      device,
      Array.from({ length: 600 }, (_, i) => at(Math.floor(i / 3) * 10)),
    );
    const walked: Listed[] = [];
    const arrivals: { cursor: [number, number]; rows: Listed[] }[] = [];
    let x = 1000;
    for (let url: string | undefined = `/data/?device_id=${device}&limit=50`; url !== undefined; ) {
      const { rows, next } = await page(url);
      walked.push(...rows);
      url = next;
      const last = rows.at(-1);
      // While there are pages ahead (after the last page, nothing is read again).
      if (!last || url === undefined || arrivals.length >= 30) continue;
      // Meanwhile: readings at the cursor's own instant (a tie, with larger ids), after it, and late ones.
      const cursor = key(last);
      const times = [cursor[0], cursor[0], cursor[0] + 5, cursor[0] - 20, base + 10_000].map((ms) =>
        at(ms - base),
      );
      const ids = await storeAt(device, times, x);
      arrivals.push({
        cursor,
        rows: ids.map((id, i) => ({ id, device_id: device, x: x + i, timestamp: times[i] as string })),
      });
      x += times.length;
    }
    const ids = walked.map((r) => r.id);
    assert.equal(new Set(ids).size, ids.length, 'a reading was listed twice');
    for (let i = 1; i < walked.length; i++) {
      assert.ok(after(key(walked[i] as Listed), key(walked[i - 1] as Listed)), `out of order at ${i}`);
    }
    const seen = new Set(ids);
    assert.deepEqual(
      original.filter((id) => !seen.has(id)),
      [],
      'readings stored before the walk were skipped',
    );
    for (const { cursor, rows } of arrivals) {
      for (const row of rows) {
        // Ahead of the cursor it must come up later in the walk; behind it, it never can.
        assert.equal(seen.has(row.id), after(key(row), cursor), `reading ${row.id} at ${row.timestamp}`);
      }
    }
  });
});
