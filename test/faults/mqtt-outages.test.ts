import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import BetterSqlite3 from 'better-sqlite3';
import type { MqttClient } from 'mqtt';
import pg from 'pg';
import { openDatabase } from '../../src/db/database.js';
import { ENGINES, engineSkipReason, type FreshDatabase, freshDatabase, Harness } from '../helpers/harness.js';
import {
  brokerSkipReason,
  PrivateBroker,
  publisher,
  SHARED_BROKER,
  subscribed,
  uniqueMqtt,
  waitUntil,
} from '../helpers/mqtt.js';
import { type Server, startServer, stopServer } from '../helpers/server.js';

// Issue 14: a message the broker acknowledged to its publisher is stored once the service has it,
// whatever happens to the service (SIGKILL) or to the broker (a restart) meanwhile.

const brokerSkip = await brokerSkipReason();
/**
 * Messages in flight at once from the publisher, each loop pausing PAUSE_MS between its messages: at
 * most ~200 a second, so that the shared broker (max_queued_messages 1000 by default) keeps all of
 * those published while the service is down. Every 10th message is a batch of BATCH readings.
 */
const IN_FLIGHT = 2;
const PAUSE_MS = 10;
const BATCH = 10;
/** Bounds of every publishing loop. */
const MAX_MESSAGES = 5000;
const LOOP_DEADLINE_MS = 20_000;

/** The readings of message k: x = k * 100 + i, so every reading names its message. */
const messageReadings = (k: number) =>
  k % 10 === 0
    ? Array.from({ length: BATCH }, (_, i) => ({ x: k * 100 + i, y: 0, z: 0 }))
    : { x: k * 100, y: 0, z: 0 };
const readingCount = (k: number) => (k % 10 === 0 ? BATCH : 1);

/** Publishes messages 1, 2, ... at QoS 1 until `stop.stopped`; records those the broker acknowledged. */
function publishContinuously(client: MqttClient, topic: string, stop: { stopped: boolean }) {
  const acknowledged = new Set<number>();
  let next = 1;
  const deadline = Date.now() + LOOP_DEADLINE_MS;
  const loop = async () => {
    while (!stop.stopped && next <= MAX_MESSAGES && Date.now() < deadline) {
      const k = next++;
      try {
        await client.publishAsync(topic, JSON.stringify(messageReadings(k)), { qos: 1 });
        acknowledged.add(k);
      } catch {
        // Not acknowledged: it may or may not arrive; only acknowledged messages are promised.
      }
      await sleep(PAUSE_MS);
    }
  };
  const done = Promise.all(Array.from({ length: IN_FLIGHT }, loop));
  return { acknowledged, done, sent: () => next - 1 };
}

/**
 * Holds the readings table's write lock from another connection until released, so that the
 * service's commits wait (and its messages stay received but uncommitted) at the moment of a kill.
 */
async function holdWrites(databaseUrl: string): Promise<() => Promise<void>> {
  if (databaseUrl.startsWith('sqlite:')) {
    const sqlite = new BetterSqlite3(databaseUrl.slice('sqlite:'.length));
    sqlite.exec('begin immediate');
    return async () => {
      sqlite.exec('rollback');
      sqlite.close();
    };
  }
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  await client.query('begin');
  await client.query('lock table data in share row exclusive mode');
  return async () => {
    await client.query('rollback');
    await client.end();
  };
}

/** How often each x is stored, from the database itself. */
async function storedTimes(databaseUrl: string, deviceId: number): Promise<Map<number, number>> {
  const { db } = openDatabase(databaseUrl);
  try {
    const rows = await db.selectFrom('data').select('x').where('device_id', '=', deviceId).execute();
    const times = new Map<number, number>();
    for (const { x } of rows) times.set(x, (times.get(x) ?? 0) + 1);
    return times;
  } finally {
    await db.destroy();
  }
}

/** The acknowledged messages not stored whole, and the readings stored more than once. */
function compare(acknowledged: Set<number>, times: Map<number, number>) {
  const missing = [...acknowledged].filter((k) => {
    const xs = Array.from({ length: readingCount(k) }, (_, i) => k * 100 + i);
    return xs.some((x) => !times.has(x));
  });
  const doubled = [...times].filter(([, n]) => n > 1).map(([x]) => x);
  return { missing, doubled };
}

for (const engine of ENGINES) {
  describe(`MQTT: the service killed mid-stream [${engine}]`, {
    skip: brokerSkip || engineSkipReason(engine),
  }, () => {
    let database: FreshDatabase;
    let dataDir: string;
    const { prefix, clientId } = uniqueMqtt();
    const env = {
      MQTT_URL: SHARED_BROKER,
      MQTT_TOPIC_PREFIX: prefix,
      MQTT_CLIENT_ID: clientId,
      MQTT_SESSION_EXPIRY_SECONDS: '120',
    };
    before(async () => {
      database = await freshDatabase(engine);
      dataDir = mkdtempSync(join(tmpdir(), 'statistics-mqtt-kill-'));
    });
    after(async () => {
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('stores every acknowledged message, those published while it was down included', async () => {
      let server: Server = await startServer(database.url, dataDir, env);
      const ready = async () => (await (await fetch(`${server.url}/ready`)).json()).checks.mqtt === 'ok';
      await waitUntil('the subscription', ready);
      const created = await fetch(`${server.url}/device/`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"name": "mqtt"}',
      });
      const deviceId = ((await created.json()) as { id: number }).id;
      const client = await publisher(SHARED_BROKER);
      const stop = { stopped: false };
      const stream = publishContinuously(client, `${prefix}/${deviceId}/readings`, stop);
      try {
        await sleep(1000);
        const beforeKill = stream.acknowledged.size;
        // Messages arrive while the commits wait: a PUBACK sent before the commit would lose them.
        const release = await holdWrites(database.url);
        await sleep(300);
        await stopServer(server, 'SIGKILL');
        await release();
        const killedAt = stream.sent();
        await sleep(700);
        // The publisher stops before the restart: on a loaded machine the start under tsx took long
        // enough for the shared broker's queue (max_queued_messages 1000) to overflow and drop messages
        // it had acknowledged to the publisher, which no service can store.
        stop.stopped = true;
        await stream.done;
        const whileDown = stream.sent() - killedAt;
        server = await startServer(database.url, dataDir, env);
        assert.ok(beforeKill > 20, `only ${beforeKill} messages before the kill`);
        assert.ok(whileDown > 20, `only ${whileDown} messages published while the service was down`);
        const expected = [...stream.acknowledged].reduce((sum, k) => sum + readingCount(k), 0);
        await waitUntil(
          `${expected} readings of ${stream.acknowledged.size} acknowledged messages`,
          async () =>
            [...(await storedTimes(database.url, deviceId)).values()].reduce((a, b) => a + b, 0) >= expected,
          30_000,
        );
        const { missing, doubled } = compare(stream.acknowledged, await storedTimes(database.url, deviceId));
        assert.deepEqual(missing, [], 'acknowledged messages not stored');
        // Committed but not yet acknowledged at the kill: the broker sends those again (DUP), and the
        // idempotency key recorded with their readings says they are stored already.
        assert.deepEqual(doubled, [], 'readings stored twice');
        assert.equal(
          await stopServer(server),
          0,
          'SIGTERM stops it, broker connection and all, with exit code 0',
        );
      } finally {
        stop.stopped = true;
        await client.endAsync();
        await stopServer(server);
      }
    });
  });
}

describe('MQTT: a broker of its own', { skip: brokerSkip }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'statistics-mqtt-broker-'));
    // Mosquitto run as root drops to its own user, which must write its persistence file here.
    chmodSync(dir, 0o777);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reconnects after a broker restart without a restart of its own and loses nothing acknowledged', async () => {
    const broker = await PrivateBroker.start(mkdtempSync(join(dir, 'restart-')));
    chmodSync(broker.dir, 0o777);
    const h = new Harness('sqlite');
    await h.start({
      MQTT_URL: broker.url,
      MQTT_CLIENT_ID: 'statistics-restart',
      MQTT_RECONNECT_MAX_SECONDS: '1',
    });
    const client = await publisher(broker.url, { clientId: 'device-restart', clean: false });
    const stop = { stopped: false };
    try {
      await subscribed(h);
      const deviceId = await h.createDevice();
      const stream = publishContinuously(client, `devices/${deviceId}/readings`, stop);
      await sleep(800);
      await broker.stop();
      await waitUntil(
        '/ready showing the broker lost',
        async () => (await h.get('/ready')).json().checks.mqtt === 'unavailable',
      );
      assert.equal((await h.get('/ready')).statusCode, 200, 'HTTP stays ready without its broker');
      await sleep(300);
      await broker.start();
      await sleep(1500);
      stop.stopped = true;
      await stream.done;
      await subscribed(h);
      const expected = [...stream.acknowledged].reduce((sum, k) => sum + readingCount(k), 0);
      await waitUntil(
        `${expected} readings`,
        async () =>
          [...(await storedTimes(h.databaseUrl, deviceId)).values()].reduce((a, b) => a + b, 0) >= expected,
        30_000,
      );
      const { missing } = compare(stream.acknowledged, await storedTimes(h.databaseUrl, deviceId));
      assert.deepEqual(missing, [], 'acknowledged messages not stored');
    } finally {
      stop.stopped = true;
      await client.endAsync(true);
      await h.stop();
      await broker.stop();
    }
  });

  it("holds each device to its own topic with the README's Mosquitto password file and ACL", async () => {
    const brokerDir = mkdtempSync(join(dir, 'acl-'));
    chmodSync(brokerDir, 0o777);
    const passwords = join(brokerDir, 'passwords');
    const acl = join(brokerDir, 'acl');
    execFileSync('mosquitto_passwd', ['-c', '-b', passwords, 'statistics', 'service-password']);
    writeFileSync(
      acl,
      [
        'pattern write devices/%u/readings',
        'pattern read devices/%u/errors',
        'user statistics',
        'topic read devices/+/readings',
        'topic write devices/+/errors',
        '',
      ].join('\n'),
    );
    chmodSync(passwords, 0o644);
    const broker = await PrivateBroker.start(brokerDir, [
      'allow_anonymous false',
      `password_file ${passwords}`,
      `acl_file ${acl}`,
    ]);
    const h = new Harness('sqlite');
    await h.start({
      MQTT_URL: `mqtt://statistics:service-password@127.0.0.1:${broker.port}`,
      MQTT_CLIENT_ID: 'statistics-acl',
      INGEST_AUTH: 'token',
      MQTT_DEVICE_AUTH: 'broker',
    });
    const clients: MqttClient[] = [];
    try {
      await subscribed(h);
      // Each device's user name is its id, its password the ingest token the service gave it.
      const devices = [];
      for (let i = 0; i < 2; i++) {
        const created = (await h.post('/device/', { name: `acl-${i}` })).json();
        devices.push({ id: created.id as number, token: created.ingest_token as string });
        execFileSync('mosquitto_passwd', ['-b', passwords, String(created.id), created.ingest_token]);
      }
      await broker.reload();
      const [one, two] = devices as [{ id: number; token: string }, { id: number; token: string }];
      const deviceOne = await publisher(broker.url, { username: String(one.id), password: one.token });
      clients.push(deviceOne);
      await deviceOne.publishAsync(`devices/${one.id}/readings`, '{"x": 1, "y": 2, "z": 3}', { qos: 1 });
      await assert.rejects(
        deviceOne.publishAsync(`devices/${two.id}/readings`, '{"x": 9, "y": 9, "z": 9}', { qos: 1 }),
        (error: { code?: number }) => error.code === 0x87,
        'the broker refuses another device its topic (PUBACK: not authorized)',
      );
      await waitUntil('the reading of device one', async () => (await h.countReadings()) === 1);
      await assert.rejects(
        publisher(broker.url, { username: String(two.id), password: one.token, reconnectPeriod: 0 }),
        /Not authorized|Bad User Name or Password/i,
      );
      await sleep(300);
      assert.equal(await h.countReadings(), 1);
      assert.equal((await h.get(`/data/?device_id=${two.id}`)).json().length, 0);
    } finally {
      await Promise.all(clients.map((c) => c.endAsync(true)));
      await h.stop();
      await broker.stop();
    }
  });
});
