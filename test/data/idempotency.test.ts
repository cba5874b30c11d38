import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LightMyRequestResponse } from 'fastify';
import { buildApp } from '../../src/app.js';
import { openDatabase } from '../../src/db/database.js';
import { type Harness, onEachEngine, testConfig } from '../helpers/harness.js';
import { listen, openImport } from '../helpers/streamed-import.js';

// Issue 11 item 12: a client that retries a write with the same Idempotency-Key stores it once and
// gets the first answer again; the same key with another body is a 409; failures are not remembered.

const HOUR_MS = 3_600_000;
let keyCounter = 0;
const newKey = () => `key-${process.pid}-${++keyCounter}-${Math.random().toString(36).slice(2)}`;

function send(
  h: Harness,
  url: string,
  body: unknown,
  key: string | undefined,
): Promise<LightMyRequestResponse> {
  return h.inject({
    method: 'POST',
    url,
    headers: { 'content-type': 'application/json', ...(key === undefined ? {} : { 'idempotency-key': key }) },
    payload: JSON.stringify(body),
  });
}

function sendImport(h: Harness, csv: string, key: string): Promise<LightMyRequestResponse> {
  return h.inject({
    method: 'POST',
    url: '/data/import',
    headers: { 'content-type': 'text/csv', 'idempotency-key': key },
    payload: csv,
  });
}

/** The readings of a device as GET /data/ lists them, and the count the statistics give. */
async function stored(h: Harness, device: number) {
  const list = (await h.get(`/data/?device_id=${device}&limit=1000`)).json() as { x: number }[];
  const statistics = (await h.get(`/analyze_statistics/?device_id=${device}`)).json() as { count: number };
  return { xs: list.map((r) => r.x).sort((a, b) => a - b), count: statistics.count };
}

onEachEngine('Idempotency-Key on writes of readings', (h: Harness) => {
  let device: number;
  before(async () => {
    device = await h.createDevice();
  });

  it('answers a retried reading with the first answer, stored once', async () => {
    const own = await h.createDevice();
    const key = newKey();
    const reading = { device_id: own, x: 1.5, y: 2, z: 3 };
    const first = await send(h, '/data/', reading, key);
    assert.equal(first.statusCode, 200, first.body);
    assert.equal(first.headers['idempotent-replayed'], undefined);
    const retry = await send(h, '/data/', reading, key);
    assert.equal(retry.statusCode, 200, retry.body);
    assert.equal(retry.headers['idempotent-replayed'], 'true');
    // The same answer: the same id and the time the server gave the first request.
    assert.deepEqual(retry.json(), first.json());
    assert.deepEqual(await stored(h, own), { xs: [1.5], count: 1 });
  });

  it('answers a retried batch with the first answer, stored once', async () => {
    const own = await h.createDevice();
    const key = newKey();
    const batch = [10, 20, 30].map((x) => ({ device_id: own, x, y: 0, z: 0 }));
    const first = await send(h, '/data/', batch, key);
    assert.equal(first.statusCode, 200, first.body);
    assert.equal(first.json().stored, 3);
    const retry = await send(h, '/data/', batch, key);
    assert.equal(retry.statusCode, 200);
    assert.equal(retry.headers['idempotent-replayed'], 'true');
    assert.deepEqual(retry.json(), first.json());
    assert.deepEqual(await stored(h, own), { xs: [10, 20, 30], count: 3 });
  });

  it('refuses the same key with another body (409) and stores nothing of it', async () => {
    const own = await h.createDevice();
    const key = newKey();
    assert.equal((await send(h, '/data/', { device_id: own, x: 1, y: 1, z: 1 }, key)).statusCode, 200);
    const other = await send(h, '/data/', { device_id: own, x: 2, y: 1, z: 1 }, key);
    assert.equal(other.statusCode, 409, other.body);
    assert.match(other.json().detail, /idempotency key .* was used with another request/);
    const asBatch = await send(h, '/data/', [{ device_id: own, x: 1, y: 1, z: 1 }], key);
    assert.equal(asBatch.statusCode, 409, 'a batch of the same reading is another body');
    assert.deepEqual(await stored(h, own), { xs: [1], count: 1 });
  });

  it('stores 20 parallel requests with one key once, and answers each the same', async () => {
    const own = await h.createDevice();
    const key = newKey();
    const batch = [{ device_id: own, x: 7, y: 0, z: 0 }];
    const single = { device_id: own, x: 8, y: 0, z: 0 };
    const batchKey = newKey();
    const answers = await Promise.all([
      ...Array.from({ length: 20 }, () => send(h, '/data/', single, key)),
      ...Array.from({ length: 20 }, () => send(h, '/data/', batch, batchKey)),
    ]);
    for (const answer of answers) assert.equal(answer.statusCode, 200, answer.body);
    const singles = answers.slice(0, 20);
    const batches = answers.slice(20);
    for (const group of [singles, batches]) {
      assert.equal(group.filter((a) => a.headers['idempotent-replayed'] === undefined).length, 1);
      for (const answer of group) assert.deepEqual(answer.json(), group[0]?.json());
    }
    assert.deepEqual(await stored(h, own), { xs: [7, 8], count: 2 });
  });

  it('does not remember a refused request: the fixed one is stored under the same key', async () => {
    const own = await h.createDevice();
    const key = newKey();
    const bad = await send(h, '/data/', { device_id: own, x: 'oops', y: 1, z: 1 }, key);
    assert.equal(bad.statusCode, 422);
    const unknown = await send(h, '/data/', { device_id: 2_000_000_000, x: 1, y: 1, z: 1 }, key);
    assert.equal(unknown.statusCode, 404);
    const fixed = await send(h, '/data/', { device_id: own, x: 4, y: 1, z: 1 }, key);
    assert.equal(fixed.statusCode, 200, fixed.body);
    assert.equal(fixed.headers['idempotent-replayed'], undefined);
    assert.deepEqual(await stored(h, own), { xs: [4], count: 1 });
  });

  // Several processes share one PostgreSQL database; SQLite is one process's, so there is nothing to test.
  if (h.engine === 'postgres')
    it('stores once what two processes are sent in parallel under one key', async () => {
      const own = await h.createDevice();
      const database = openDatabase(h.databaseUrl, 'server');
      const other = await buildApp(testConfig(h.databaseUrl), database);
      try {
        const key = newKey();
        const batch = [1, 2].map((x) => ({ device_id: own, x, y: 0, z: 0 }));
        const request = {
          method: 'POST' as const,
          url: '/data/',
          headers: { 'content-type': 'application/json', 'idempotency-key': key },
          payload: JSON.stringify(batch),
        };
        const answers = await Promise.all(
          Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? h.inject(request) : other.inject(request))),
        );
        for (const answer of answers) assert.equal(answer.statusCode, 200, answer.body);
        assert.equal(answers.filter((a) => a.headers['idempotent-replayed'] === undefined).length, 1);
        for (const answer of answers) assert.deepEqual(answer.json(), answers[0]?.json());
        assert.deepEqual(await stored(h, own), { xs: [1, 2], count: 2 });
      } finally {
        await other.close();
        await database.close();
      }
    });

  it('refuses a malformed key with a 422 naming the header', async () => {
    const before = await h.countReadings();
    for (const key of ['', 'k'.repeat(256), 'naïve', 'tab\there']) {
      const response = await send(h, '/data/', { device_id: device, x: 1, y: 1, z: 1 }, key);
      assert.equal(response.statusCode, 422, `${JSON.stringify(key)}: ${response.body}`);
      assert.deepEqual(response.json().detail[0].loc, ['header', 'idempotency-key']);
    }
    const longest = await send(h, '/data/', { device_id: device, x: 1, y: 1, z: 1 }, 'k'.repeat(255));
    assert.equal(longest.statusCode, 200, longest.body);
    assert.equal(await h.countReadings(), before + 1);
  });

  it('keeps keys across a restart', async () => {
    const own = await h.createDevice();
    const key = newKey();
    const batch = [{ device_id: own, x: 5, y: 5, z: 5 }];
    const first = await send(h, '/data/', batch, key);
    assert.equal(first.statusCode, 200);
    await h.close();
    await h.open();
    const retry = await send(h, '/data/', batch, key);
    assert.equal(retry.headers['idempotent-replayed'], 'true');
    assert.deepEqual(retry.json(), first.json());
    assert.deepEqual(await stored(h, own), { xs: [5], count: 1 });
  });

  it('answers a retried import with its report, stored once; another body is a 409', async () => {
    const own = await h.createDevice();
    const key = newKey();
    const csv = `device_id,x,y,z\n${own},1,2,3\n${own},4,5,6\nnot a line\n`;
    const first = await sendImport(h, csv, key);
    assert.equal(first.statusCode, 200, first.body);
    assert.deepEqual(first.json(), {
      stored: 2,
      rejected: 1,
      errors: [{ line: 4, reason: 'expected device_id,x,y,z[,timestamp], got 1 fields' }],
    });
    const retry = await sendImport(h, csv, key);
    assert.equal(retry.statusCode, 200, retry.body);
    assert.equal(retry.headers['idempotent-replayed'], 'true');
    assert.deepEqual(retry.json(), first.json());
    const other = await sendImport(h, `${own},7,8,9\n`, key);
    assert.equal(other.statusCode, 409, other.body);
    assert.deepEqual(await stored(h, own), { xs: [1, 4], count: 2 });
  });

  it('stores an import of many chunks once, and refuses a retry of one that stopped with what it stored', async () => {
    const own = await h.createDevice();
    const key = newKey();
    const lines = Array.from({ length: 12_000 }, (_, i) => `${own},${i},0,0`);
    const first = await sendImport(h, `${lines.join('\n')}\n`, key);
    assert.equal(first.json().stored, 12_000);
    const retry = await sendImport(h, `${lines.join('\n')}\n`, key);
    assert.equal(retry.headers['idempotent-replayed'], 'true');
    assert.equal((await stored(h, own)).count, 12_000);
    // What a stopped import leaves: its key with the progress of its last committed chunk.
    const stopped = newKey();
    await h.db
      .insertInto('idempotency_keys')
      .values({
        scope: 'open',
        key: stopped,
        progress: JSON.stringify({ stored: 5000, rejected: 0, line: 5000 }),
        created_at: Date.now(),
      })
      .execute();
    const again = await sendImport(h, `${own},1,1,1\n`, stopped);
    assert.equal(again.statusCode, 409);
    assert.match(again.json().detail, /stored 5000 readings from lines 1 to 5000 .*after line 5000/);
    assert.equal((await stored(h, own)).count, 12_000);
  });

  it('refuses a retry of an import still running (409), and answers its report once it ended', async () => {
    const own = await h.createDevice();
    const key = newKey();
    const csv = `${own},1,0,0\n${own},2,0,0\n`;
    const first = openImport(await listen(h), { 'idempotency-key': key });
    first.request.write(`${own},1,0,0\n`);
    await sleep(500); // the import is under way, its body still open
    const retry = await sendImport(h, csv, key);
    assert.equal(retry.statusCode, 409, retry.body);
    assert.match(retry.json().detail, /still running/);
    first.request.end(`${own},2,0,0\n`);
    const answer = await first.answer;
    assert.equal(answer.status, 200, answer.body);
    assert.deepEqual(JSON.parse(answer.body), { stored: 2, rejected: 0, errors: [] });
    const after = await sendImport(h, csv, key);
    assert.equal(after.headers['idempotent-replayed'], 'true');
    assert.deepEqual(after.json(), JSON.parse(answer.body));
    assert.deepEqual(await stored(h, own), { xs: [1, 2], count: 2 });
  });

  it('keeps keys 24 hours, then deletes them', async () => {
    const own = await h.createDevice();
    const [expired, kept] = [newKey(), newKey()];
    const batch = [{ device_id: own, x: 3, y: 3, z: 3 }];
    for (const key of [expired, kept]) assert.equal((await send(h, '/data/', batch, key)).statusCode, 200);
    // Their ages, as if written 25 and 23 hours ago.
    const age = async (key: string, hours: number) =>
      h.db
        .updateTable('idempotency_keys')
        .set({ created_at: Date.now() - hours * HOUR_MS })
        .where('key', '=', key)
        .execute();
    await age(expired, 25);
    await age(kept, 23);
    // The sweep runs with the first keyed write of a process, then every 10 minutes.
    await h.close();
    await h.open();
    const keptRetry = await send(h, '/data/', batch, kept);
    assert.equal(keptRetry.headers['idempotent-replayed'], 'true');
    const keys = await h.db
      .selectFrom('idempotency_keys')
      .select('key')
      .where('key', 'in', [expired, kept])
      .execute();
    assert.deepEqual(
      keys.map((k) => k.key),
      [kept],
    );
    const expiredRetry = await send(h, '/data/', batch, expired);
    assert.equal(expiredRetry.headers['idempotent-replayed'], undefined, 'an expired key is a new write');
    assert.deepEqual(await stored(h, own), { xs: [3, 3, 3], count: 3 });
  });
});

onEachEngine(
  'Idempotency-Key with INGEST_AUTH=token',
  (h: Harness) => {
    it("keeps each device's keys apart", async () => {
      const devices = [];
      for (const name of ['a', 'b']) {
        const created = (await h.post('/device/', { name })).json();
        devices.push({ id: created.id as number, token: created.ingest_token as string });
      }
      const key = newKey();
      for (const { id, token } of devices) {
        const response = await h.inject({
          method: 'POST',
          url: '/data/',
          headers: { 'content-type': 'application/json', 'idempotency-key': key, 'x-device-token': token },
          payload: JSON.stringify({ device_id: id, x: 1, y: 1, z: 1 }),
        });
        assert.equal(response.statusCode, 200, response.body);
        assert.equal(response.headers['idempotent-replayed'], undefined);
      }
      for (const { id } of devices) assert.equal((await stored(h, id)).count, 1);
    });
  },
  { INGEST_AUTH: 'token' },
);
