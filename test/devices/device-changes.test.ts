import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { openDatabase } from '../../src/db/database.js';
import { engineSkipReason, Harness, testConfig } from '../helpers/harness.js';

// Issue 13, item 1: two API processes on one PostgreSQL each remember devices; an ingest token rotated
// or a device deleted through one is refused by the other within a second (LISTEN/NOTIFY).

describe('device changes reach every process on the same PostgreSQL', {
  skip: engineSkipReason('postgres'),
}, () => {
  const first = new Harness('postgres');
  let second: FastifyInstance;
  let closeSecond: () => Promise<void>;

  before(async () => {
    await first.start({ INGEST_AUTH: 'token' });
    const config = testConfig(first.databaseUrl, { INGEST_AUTH: 'token' });
    const database = openDatabase(config.databaseUrl, 'server');
    second = await buildApp(config, database);
    await second.ready();
    closeSecond = async () => {
      await second.close();
      await database.close();
    };
  });
  after(async () => {
    await closeSecond();
    await first.stop();
  });

  const sendTo = (app: FastifyInstance, device: number, token: string) =>
    app.inject({
      method: 'POST',
      url: '/data/',
      headers: { 'content-type': 'application/json', 'x-device-token': token },
      payload: JSON.stringify({ device_id: device, x: 1, y: 2, z: 3 }),
    });

  /** The status the second process answers, once it is not `while`, or after a second. */
  async function secondAnswerWithin1s(device: number, token: string, whileStatus: number): Promise<number> {
    const end = Date.now() + 1000;
    for (;;) {
      const status = (await sendTo(second, device, token)).statusCode;
      if (status !== whileStatus || Date.now() > end) return status;
      await sleep(20);
    }
  }

  it('a token rotated through one process is refused by the other within a second', async () => {
    const owner = await first.signUp();
    const created = (await first.post('/device/', { name: 'shared' }, owner.token)).json();
    // The second process has seen the device and remembers its token.
    assert.equal((await sendTo(second, created.id, created.ingest_token)).statusCode, 200);

    const rotated = await first.post(`/device/${created.id}/ingest-token`, {}, owner.token);
    assert.equal(rotated.statusCode, 200, rotated.body);
    assert.equal(await secondAnswerWithin1s(created.id, created.ingest_token, 200), 401);
    assert.equal((await sendTo(second, created.id, rotated.json().ingest_token)).statusCode, 200);
  });

  it('a device deleted through one process is unknown to the other within a second', async () => {
    const owner = await first.signUp();
    const created = (await first.post('/device/', { name: 'gone' }, owner.token)).json();
    assert.equal((await sendTo(second, created.id, created.ingest_token)).statusCode, 200);

    const deleted = await first.inject({
      method: 'DELETE',
      url: `/device/${created.id}`,
      headers: { authorization: `Bearer ${owner.token}` },
    });
    assert.equal(deleted.statusCode, 204);
    const status = await secondAnswerWithin1s(created.id, created.ingest_token, 200);
    assert.ok(status === 404 || status === 422, `refused as unknown, not ${status}`);
    const kept = await first.db.selectFrom('data').select('id').where('device_id', '=', created.id).execute();
    assert.deepEqual(kept, [], 'nothing stored for the deleted device');
  });
});
